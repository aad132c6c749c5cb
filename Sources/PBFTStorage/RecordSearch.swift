/// Decides, after a damaged record, whether a valid record starts anywhere later in the file:
/// the difference between a torn tail (truncate) and a damaged middle (refuse to start).
///
/// Every byte position is a candidate. Most fail on their length alone (above
/// `recordBytesMax` or past the end of the file), but in random-looking bytes (digests,
/// signatures) about one position in a thousand has a length that fits, and checking each such
/// candidate by reading its payload would cost the region's size squared: hours for a torn
/// 20 MB record. Instead one pass computes the CRC-32C of every prefix of the region at
/// `blockBytes` intervals; the CRC of any byte range then follows from the prefixes at its two
/// ends (`CRC32C.combine`), so each candidate costs at most two blocks of CRC whatever its
/// length. Candidates that end inside the current window are checked at once, so damage in the
/// middle of a long log is usually found without reading to the end; the rest are checked
/// after the pass, in the order of their ends, reading the file forward.
struct RecordSearch {
    static let blockBytes = 1 << 10
    static let windowBytes = 1 << 20

    let file: OpenFile
    let size: Int
    /// The first position searched.
    let start: Int
    private var window: [UInt8] = []
    private var windowStart: Int
    /// `prefixes[k]` is the CRC of bytes `start ..< start + k * blockBytes`.
    private var prefixes: [UInt32] = [0]
    private var prefix = CRC32C()
    private var prefixEnd: Int
    private var deferred: [Candidate] = []

    private struct Candidate {
        let offset: Int
        let end: Int
        let stored: UInt32
        let lengthCRC: UInt32
        let payloadStartPrefix: UInt32
    }

    /// The offset of some valid record starting after `offset`, or nil if there is none.
    static func validRecord(in file: OpenFile, size: Int, after offset: Int) throws(StorageError) -> Int? {
        var search = RecordSearch(file: file, size: size, start: offset + 1)
        return try search.run()
    }

    private init(file: OpenFile, size: Int, start: Int) {
        self.file = file
        self.size = size
        self.start = start
        self.windowStart = start
        self.prefixEnd = start
    }

    private mutating func run() throws(StorageError) -> Int? {
        let headerBytes = WriteAheadLog.recordHeaderBytes
        var candidate = start
        while candidate + headerBytes <= size {
            if candidate + headerBytes > windowStart + window.count {
                try loadBlock(containing: candidate)
                extendPrefix()
            }
            guard let plausible = nextPlausible(from: candidate) else {
                candidate = windowStart + window.count - headerBytes + 1
                continue
            }
            if try check(plausible) { return plausible }
            candidate = plausible + 1
        }
        deferred.sort { $0.end < $1.end }
        for candidate in deferred {
            if candidate.end < windowStart || candidate.end > windowStart + window.count {
                try loadBlock(containing: candidate.end)
            }
            if recordCRC(candidate, payloadEndPrefix: prefix(at: candidate.end)) == candidate.stored {
                return candidate.offset
            }
        }
        return nil
    }

    /// The first position from `position` whose header lies in the window and whose length is
    /// possible and fits in the file. A tight loop over the window's bytes: it sees every byte.
    private func nextPlausible(from position: Int) -> Int? {
        window.withUnsafeBytes { raw in
            let headerBytes = WriteAheadLog.recordHeaderBytes
            var index = position - windowStart
            while index + headerBytes <= raw.count {
                let length = Int(raw[index]) << 24 | Int(raw[index + 1]) << 16 | Int(raw[index + 2]) << 8 | Int(raw[index + 3])
                if length <= WriteAheadLog.recordBytesMax, length <= size - (windowStart + index) - headerBytes {
                    return windowStart + index
                }
                index += 1
            }
            return nil
        }
    }

    /// Checks the candidate at `offset` (its header is in the window) if it ends in the window,
    /// or defers it. Returns whether it is a valid record.
    private mutating func check(_ offset: Int) throws(StorageError) -> Bool {
        let index = offset - windowStart
        let length = Int(window[index]) << 24 | Int(window[index + 1]) << 16 | Int(window[index + 2]) << 8 | Int(window[index + 3])
        let stored = window[index + 4..<index + 8].reduce(0) { $0 << 8 | UInt32($1) }
        let payloadStart = offset + WriteAheadLog.recordHeaderBytes
        let end = payloadStart + length
        let windowEnd = windowStart + window.count
        if length <= Self.blockBytes, end <= windowEnd {
            var crc = CRC32C()
            window.withUnsafeBytes { raw in
                crc.update(UnsafeRawBufferPointer(rebasing: raw[index..<index + 4]))
                crc.update(UnsafeRawBufferPointer(rebasing: raw[payloadStart - windowStart..<end - windowStart]))
            }
            return crc.value == stored
        }
        let candidate = Candidate(
            offset: offset, end: end, stored: stored,
            lengthCRC: CRC32C.checksum(Array(window[index..<index + 4])),
            payloadStartPrefix: prefix(at: payloadStart))
        if end <= windowEnd { return recordCRC(candidate, payloadEndPrefix: prefix(at: end)) == stored }
        deferred.append(candidate)
        return false
    }

    /// The CRC of a candidate's length bytes and payload, from the prefix CRCs at the ends of
    /// the payload.
    private func recordCRC(_ candidate: Candidate, payloadEndPrefix: UInt32) -> UInt32 {
        let length = candidate.end - candidate.offset - WriteAheadLog.recordHeaderBytes
        // prefix(end) = combine(prefix(payloadStart), payloadCRC, length), and combine is
        // shift-then-xor, so xor-ing the shifted start prefix out leaves the payload's CRC.
        let payloadCRC = payloadEndPrefix ^ CRC32C.combine(candidate.payloadStartPrefix, 0, secondBytes: length)
        return CRC32C.combine(candidate.lengthCRC, payloadCRC, secondBytes: length)
    }

    /// The CRC of bytes `start ..< position`, for a position in the window and the prefix.
    private func prefix(at position: Int) -> UInt32 {
        let block = (position - start) / Self.blockBytes
        let blockStart = start + block * Self.blockBytes
        precondition(blockStart >= windowStart && position <= min(prefixEnd, windowStart + window.count), "prefix at \(position) outside the window")
        var crc = CRC32C(resuming: prefixes[block])
        window.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[blockStart - windowStart..<position - windowStart])) }
        return crc.value
    }

    /// Loads a window starting at the block that holds `position`, so every prefix in the
    /// window can be computed from the window's bytes.
    private mutating func loadBlock(containing position: Int) throws(StorageError) {
        windowStart = start + (position - start) / Self.blockBytes * Self.blockBytes
        window = try POSIX.read(file, count: min(Self.windowBytes, size - windowStart), at: windowStart)
    }

    /// Carries the running CRC to the end of the window, recording it at each block boundary.
    private mutating func extendPrefix() {
        let windowEnd = windowStart + window.count
        while prefixEnd < windowEnd {
            let boundary = start + prefixes.count * Self.blockBytes
            let chunkEnd = min(boundary, windowEnd)
            let (from, to) = (prefixEnd - windowStart, chunkEnd - windowStart)
            window.withUnsafeBytes { prefix.update(UnsafeRawBufferPointer(rebasing: $0[from..<to])) }
            prefixEnd = chunkEnd
            if prefixEnd == boundary { prefixes.append(prefix.value) }
        }
    }
}
