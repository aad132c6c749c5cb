#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write-ahead log of a replica: an append-only file of opaque records that are read back,
/// in order, when the replica restarts.
///
/// ## File format (`<directory>/wal.log`, see also docs/storage.md)
///
/// All integers are unsigned big-endian.
///
/// ```
/// file    = magic record*
/// magic   = "PBFTWAL1"                      8 bytes
/// record  = length:u32 crc:u32 payload      8 + length bytes
/// ```
///
/// - `length` is the payload's size, at most `recordBytesMax` (64 MiB).
/// - `crc` is CRC-32C (Castagnoli) over the 4 length bytes followed by the payload. Covering
///   the length means a run of zero bytes (what some file systems show after a crash) is never
///   a valid empty record, and a damaged length is caught, not followed.
///
/// ## Recovery
///
/// `open` reads every record. At the first record that is incomplete, has an impossible length
/// or fails its CRC, it searches forward byte by byte for a position where a complete record
/// with a good CRC starts:
/// - none: the damage is a torn tail (a crash during an append that was never synced and so
///   never acknowledged); it is truncated away and described in the `RecoveryReport`;
/// - one: records after the damage were written, so the damage is not from a crash but from
///   the disk or an operator; `open` throws `StorageError.corruptRecord` rather than run on a
///   log with a hole in it.
///
/// A file shorter than the header that is a prefix of the magic (zero bytes included) is a log
/// whose creation was interrupted and starts fresh; any other header is `notALog`.
///
/// ## Durability
///
/// `append` hands a record to the kernel (one `pwritev` per record); `sync` makes every
/// appended record durable with one `fdatasync`. Append the records a step produced, call
/// `sync()` once, and only then send the messages that depend on them. After any failed write
/// or sync the log refuses further use (`StorageError.unusable`): what reached the disk is
/// unknown, and only a restart, which recovers from the file, can tell.
///
/// Used from one thread: the class is not `Sendable`. The file is locked (`flock`) while open.
public final class WriteAheadLog {
    public static let fileName = "wal.log"
    public static let temporaryFileName = "wal.log.tmp"
    public static let fileMagic: [UInt8] = Array("PBFTWAL1".utf8)
    public static let fileHeaderBytes = 8
    public static let recordHeaderBytes = 8
    /// The largest payload. Recovery treats a larger length as damage, so `append` refuses one.
    public static let recordBytesMax = 64 << 20
    /// `rewrite` gathers small records into writes of about this size.
    static let rewriteChunkBytes = 1 << 20

    public let directory: String
    public let path: String
    /// When false, `sync` and every fsync in `open` and `rewrite` are skipped: for tests and
    /// benchmarks only, a crash then loses acknowledged state.
    public let syncEnabled: Bool
    /// The size of the file, header included.
    public private(set) var bytes: Int
    /// The records in the file.
    public private(set) var recordCount: Int
    /// How many bytes were durable at the last sync, so a `sync` with nothing new is free.
    private var syncedBytes: Int
    private var file: OpenFile?
    private var failure: StorageError?

    private init(directory: String, file: OpenFile, syncEnabled: Bool, bytes: Int, recordCount: Int) {
        self.directory = directory
        self.path = file.path
        self.file = file
        self.syncEnabled = syncEnabled
        self.bytes = bytes
        self.recordCount = recordCount
        self.syncedBytes = bytes
    }

    /// Opens the log in `directory`, creating both (mode 0700 and 0600) if missing, and reads
    /// every record back in the order appended. A torn tail is truncated (see the type's
    /// documentation) and described in `recovery`; a damaged record followed by valid ones,
    /// or a file that is not a log, throws. A `wal.log.tmp` left by an interrupted `rewrite`
    /// is removed: `wal.log` is complete until the rename.
    public static func open(
        directory: String,
        syncEnabled: Bool
    ) throws(StorageError) -> (log: WriteAheadLog, records: [[UInt8]], recovery: RecoveryReport) {
        try POSIX.makeDirectory(directory, sync: syncEnabled)
        let removedTemporaryFile = try POSIX.removeIfPresent(POSIX.join(directory, temporaryFileName))
        let file = try POSIX.open(POSIX.join(directory, fileName), flags: O_RDWR | O_CREAT)
        try POSIX.lockExclusively(file)
        let size = try POSIX.regularFileSize(file)
        var recovery = RecoveryReport(path: file.path, removedTemporaryFile: removedTemporaryFile)
        var records: [[UInt8]] = []
        if size < fileHeaderBytes {
            try startFresh(file, size: size, directory: directory, syncEnabled: syncEnabled)
            recovery.createdLog = true
            if size > 0 {
                recovery.truncatedBytes = size
                recovery.reason = .incompleteFileHeader(bytes: size)
            }
            recovery.bytes = fileHeaderBytes
        } else {
            let header = try POSIX.read(file, count: fileHeaderBytes, at: 0)
            guard header == fileMagic else { throw .notALog(path: file.path, header: header) }
            let end: Int
            (records, end, recovery.reason) = try readRecords(file, size: size)
            if end < size {
                try POSIX.truncate(file, to: end)
                recovery.truncatedBytes = size - end
            }
            recovery.bytes = end
            if syncEnabled {
                // The records may have been written but never synced by a process that then
                // crashed: they are in the page cache, not necessarily on disk. Sync them
                // before the replica acts on them.
                try POSIX.syncData(file)
                try POSIX.syncDirectory(directory)
            }
        }
        recovery.recordCount = records.count
        let log = WriteAheadLog(
            directory: directory, file: file, syncEnabled: syncEnabled, bytes: recovery.bytes, recordCount: records.count)
        return (log, records, recovery)
    }

    /// Writes `record` after the last one. It is durable only after the next `sync()`.
    public func append(_ record: [UInt8]) throws(StorageError) {
        let file = try usableFile()
        guard record.count <= Self.recordBytesMax else {
            throw .recordTooLarge(path: path, bytes: record.count, limit: Self.recordBytesMax)
        }
        let header = Self.recordHeader(record)
        let code = header.withUnsafeBytes { header in
            record.withUnsafeBytes { payload in POSIX.write(file.fd, [header, payload], at: bytes) }
        }
        if code != 0 { throw poison(POSIX.failure(path, "write", code)) }
        bytes += Self.recordHeaderBytes + record.count
        recordCount += 1
    }

    /// Makes every appended record durable (`fdatasync`); free when nothing was appended since
    /// the last sync, a no-op when `syncEnabled` is false.
    public func sync() throws(StorageError) {
        let file = try usableFile()
        guard syncEnabled, syncedBytes != bytes else { return }
        do throws(StorageError) {
            try POSIX.syncData(file)
        } catch {
            throw poison(error)
        }
        syncedBytes = bytes
    }

    /// Atomically replaces the log with exactly `records`, in order: writes `wal.log.tmp`,
    /// syncs it, renames it over `wal.log` and syncs the directory. Appends then continue on
    /// the new file. Used to drop records below a stable checkpoint, so `records` must hold
    /// everything still needed, including records appended since that checkpoint. If it throws
    /// before the rename, the old log is untouched and still in use.
    public func rewrite(keeping records: [[UInt8]]) throws(StorageError) {
        _ = try usableFile()
        if let record = records.first(where: { $0.count > Self.recordBytesMax }) {
            throw .recordTooLarge(path: path, bytes: record.count, limit: Self.recordBytesMax)
        }
        let temporaryPath = POSIX.join(directory, Self.temporaryFileName)
        let temporary = try POSIX.open(temporaryPath, flags: O_RDWR | O_CREAT | O_TRUNC)
        let size: Int
        do throws(StorageError) {
            try POSIX.lockExclusively(temporary)
            size = try Self.write(records, to: temporary)
            if syncEnabled { try POSIX.syncData(temporary) }
            try POSIX.rename(temporaryPath, to: path)
        } catch {
            _ = try? POSIX.removeIfPresent(temporaryPath)
            throw error
        }
        file = temporary
        bytes = size
        syncedBytes = size
        recordCount = records.count
        if syncEnabled {
            do throws(StorageError) {
                try POSIX.syncDirectory(directory)
            } catch {
                throw poison(error)
            }
        }
    }

    /// Closes the file and releases its lock. Unsynced appends may or may not survive. Any
    /// later call on this log is a bug and traps.
    public func close() {
        file = nil
    }

    /// The 8-byte header of `payload`: its length and the CRC-32C over length and payload.
    static func recordHeader(_ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        let crc = checksum(length: length, payload: payload)
        return bigEndian(length) + bigEndian(crc)
    }

    static func checksum(length: UInt32, payload: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        crc.update(bigEndian(length))
        crc.update(payload)
        return crc.value
    }

    private func usableFile() throws(StorageError) -> OpenFile {
        guard let file else { preconditionFailure("\(path): write-ahead log used after close()") }
        if let failure { throw .unusable(path: path, cause: failure.description) }
        return file
    }

    /// Records that the log can no longer be trusted, and returns `error` to throw.
    private func poison(_ error: StorageError) -> StorageError {
        failure = error
        return error
    }

    /// Writes the magic over a file that holds nothing or a prefix of it.
    private static func startFresh(_ file: OpenFile, size: Int, directory: String, syncEnabled: Bool) throws(StorageError) {
        let header = try POSIX.read(file, count: size, at: 0)
        guard header == Array(fileMagic.prefix(size)) else { throw .notALog(path: file.path, header: header) }
        try POSIX.write(file, fileMagic, at: 0)
        if syncEnabled {
            try POSIX.syncData(file)
            try POSIX.syncDirectory(directory)
        }
    }

    /// Reads records from after the header up to the end or the first damage; returns where
    /// the valid records end and the damage found there, or throws if valid records follow it.
    private static func readRecords(
        _ file: OpenFile,
        size: Int
    ) throws(StorageError) -> (records: [[UInt8]], end: Int, damage: RecordDamage?) {
        var reader = LogReader(file: file, size: size)
        var records: [[UInt8]] = []
        var offset = fileHeaderBytes
        while offset < size {
            switch try reader.record(at: offset) {
            case .valid(let payload):
                records.append(payload)
                offset += recordHeaderBytes + payload.count
            case .damaged(let damage):
                if try RecordSearch.validRecord(in: file, size: size, after: offset) != nil {
                    throw .corruptRecord(path: file.path, offset: offset, reason: damage)
                }
                return (records, offset, damage)
            }
        }
        return (records, offset, nil)
    }

    /// Writes a whole log (magic and records) to an empty file, gathering small records into
    /// large writes. Returns the file's size.
    private static func write(_ records: [[UInt8]], to file: OpenFile) throws(StorageError) -> Int {
        var offset = 0
        var chunk = fileMagic
        chunk.reserveCapacity(rewriteChunkBytes)
        for record in records {
            chunk += recordHeader(record)
            if record.count >= rewriteChunkBytes / 2 {
                try POSIX.write(file, chunk, at: offset)
                offset += chunk.count
                chunk.removeAll(keepingCapacity: true)
                try POSIX.write(file, record, at: offset)
                offset += record.count
            } else {
                chunk += record
            }
            if chunk.count >= rewriteChunkBytes {
                try POSIX.write(file, chunk, at: offset)
                offset += chunk.count
                chunk.removeAll(keepingCapacity: true)
            }
        }
        try POSIX.write(file, chunk, at: offset)
        return offset + chunk.count
    }
}

/// What `WriteAheadLog.open` found and did.
public struct RecoveryReport: Hashable, Sendable, CustomStringConvertible {
    public var path: String
    /// The records read back.
    public var recordCount = 0
    /// The size of the log after recovery.
    public var bytes = 0
    /// Bytes of torn or damaged tail removed; 0 when the file ended cleanly.
    public var truncatedBytes = 0
    /// Why the tail was removed; nil when nothing was.
    public var reason: RecordDamage?
    /// The file was missing, empty or held only part of the magic, and was started afresh.
    public var createdLog = false
    /// A `wal.log.tmp` from an interrupted `rewrite` was found and removed.
    public var removedTemporaryFile = false

    public init(path: String, removedTemporaryFile: Bool = false) {
        self.path = path
        self.removedTemporaryFile = removedTemporaryFile
    }

    public var description: String {
        var text = "\(path): "
        switch (createdLog, reason) {
        case (true, nil): text += "new log"
        case (true, let reason?): text += "new log (discarded \(truncatedBytes) bytes: \(reason))"
        case (false, nil): text += "recovered \(recordCount) records, \(bytes) bytes"
        case (false, let reason?):
            text += "recovered \(recordCount) records, \(bytes) bytes; truncated a torn tail of \(truncatedBytes) bytes at byte \(bytes) (\(reason))"
        }
        if removedTemporaryFile { text += "; removed \(WriteAheadLog.temporaryFileName) left by an interrupted rewrite" }
        return text
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
     UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
}

func bigEndian(_ value: UInt64) -> [UInt8] {
    bigEndian(UInt32(truncatingIfNeeded: value >> 32)) + bigEndian(UInt32(truncatingIfNeeded: value))
}
