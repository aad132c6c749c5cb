/// Reads a log file's records in order during recovery, through a 1 MiB window of `pread`s so
/// small records cost few system calls. Lengths come from the file and are untrusted: each is
/// checked against `recordBytesMax` and the file size before anything is allocated or read.
struct LogReader {
    static let windowBytes = 1 << 20

    let file: OpenFile
    let size: Int
    private var window: [UInt8] = []
    private var windowStart = 0

    init(file: OpenFile, size: Int) {
        self.file = file
        self.size = size
    }

    enum Outcome {
        case valid(payload: [UInt8])
        case damaged(RecordDamage)
    }

    /// The record that starts at `offset`, or what is wrong with it.
    mutating func record(at offset: Int) throws(StorageError) -> Outcome {
        let header: (length: UInt32, stored: UInt32)
        switch try checkedHeader(at: offset) {
        case .possible(let length, let stored): header = (length, stored)
        case .damaged(let damage): return .damaged(damage)
        }
        let payload = try bytes(at: offset + WriteAheadLog.recordHeaderBytes, count: Int(header.length))
        let computed = WriteAheadLog.checksum(length: header.length, payload: payload)
        guard computed == header.stored else {
            return .damaged(.checksumMismatch(stored: header.stored, computed: computed))
        }
        return .valid(payload: payload)
    }

    private enum Header {
        case possible(length: UInt32, stored: UInt32)
        case damaged(RecordDamage)
    }

    private mutating func checkedHeader(at offset: Int) throws(StorageError) -> Header {
        let available = size - offset
        guard available >= WriteAheadLog.recordHeaderBytes else {
            return .damaged(.incompleteHeader(bytes: available))
        }
        try load(offset, count: WriteAheadLog.recordHeaderBytes)
        let start = offset - windowStart
        let length = bigEndian32(start)
        let stored = bigEndian32(start + 4)
        guard length <= WriteAheadLog.recordBytesMax else { return .damaged(.impossibleLength(length)) }
        guard Int(length) <= available - WriteAheadLog.recordHeaderBytes else {
            return .damaged(.incompletePayload(length: Int(length), bytes: available - WriteAheadLog.recordHeaderBytes))
        }
        return .possible(length: length, stored: stored)
    }

    /// `count` bytes at `offset`, which the caller has checked lie inside the file.
    private mutating func bytes(at offset: Int, count: Int) throws(StorageError) -> [UInt8] {
        if count > Self.windowBytes / 2 { return try POSIX.read(file, count: count, at: offset) }
        try load(offset, count: count)
        let start = offset - windowStart
        return Array(window[start..<start + count])
    }

    /// Makes bytes `offset ..< offset + count` (at most a window) resident.
    private mutating func load(_ offset: Int, count: Int) throws(StorageError) {
        if offset >= windowStart, offset + count <= windowStart + window.count { return }
        window = try POSIX.read(file, count: min(Self.windowBytes, size - offset), at: offset)
        windowStart = offset
    }

    private func bigEndian32(_ start: Int) -> UInt32 {
        window[start..<start + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
