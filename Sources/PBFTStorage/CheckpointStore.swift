#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A durable copy of the latest stable checkpoint's state, beside the write-ahead log.
///
/// ## File format (`<directory>/checkpoint.state`, see also docs/storage.md)
///
/// All integers are unsigned big-endian; the header is 60 bytes.
///
/// ```
/// offset  size  field
///      0     8  magic "PBFTCKP1"
///      8     8  sequence: u64
///     16    32  digest
///     48     8  length: u64, the state's size
///     56     4  crc: u32, CRC-32C over bytes 8 ..< 56 (sequence, digest, length) and the state
///     60     L  state
/// ```
///
/// The CRC covers the header fields as well as the state, so a damaged sequence number or
/// digest is caught too.
///
/// `save` writes `checkpoint.tmp`, syncs it, renames it over `checkpoint.state` and syncs the
/// directory: after a crash there is either the old checkpoint or the new one, never a mix.
///
/// A damaged file is not fatal to the replica, which can fetch a stable checkpoint from its
/// peers: `load` throws `StorageError.damagedCheckpoint`, which the caller logs before starting
/// as if there were no checkpoint. Other errors from `load` (`.io`) mean the file could not be
/// read at all. The digest is stored, not recomputed: the caller may check it against the
/// state with its own hash.
public struct CheckpointStore: Sendable {
    public static let fileName = "checkpoint.state"
    public static let temporaryFileName = "checkpoint.tmp"
    public static let fileMagic: [UInt8] = Array("PBFTCKP1".utf8)
    public static let headerBytes = 60
    public static let digestBytes = 32
    /// The largest state stored; a larger length in a file's header is damage.
    public static let stateBytesMax = 1 << 30

    public let directory: String
    public let path: String
    /// When false, `save` skips its fsyncs: for tests and benchmarks only.
    public let syncEnabled: Bool

    public init(directory: String, syncEnabled: Bool = true) {
        self.directory = directory
        self.path = POSIX.join(directory, Self.fileName)
        self.syncEnabled = syncEnabled
    }

    /// Atomically replaces the stored checkpoint with this one, creating the directory if
    /// missing. `digest` is the state's 32-byte digest.
    public func save(sequence: UInt64, digest: [UInt8], state: [UInt8]) throws(StorageError) {
        precondition(digest.count == Self.digestBytes, "checkpoint digest is \(digest.count) bytes, expected \(Self.digestBytes)")
        guard state.count <= Self.stateBytesMax else {
            throw .stateTooLarge(path: path, bytes: state.count, limit: Self.stateBytesMax)
        }
        try POSIX.makeDirectory(directory, sync: syncEnabled)
        let temporaryPath = POSIX.join(directory, Self.temporaryFileName)
        do throws(StorageError) {
            let file = try POSIX.open(temporaryPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
            let header = Self.header(sequence: sequence, digest: digest, state: state)
            let code = header.withUnsafeBytes { header in
                state.withUnsafeBytes { state in POSIX.write(file.fd, [header, state], at: 0) }
            }
            if code != 0 { throw POSIX.failure(temporaryPath, "write", code) }
            if syncEnabled { try POSIX.syncData(file) }
            try POSIX.rename(temporaryPath, to: path)
        } catch {
            _ = try? POSIX.removeIfPresent(temporaryPath)
            throw error
        }
        if syncEnabled { try POSIX.syncDirectory(directory) }
    }

    /// The stored checkpoint, or nil if there is none. Throws `.damagedCheckpoint` if the file
    /// is damaged (see the type's documentation), `.io` if it cannot be read.
    public func load() throws(StorageError) -> StoredCheckpoint? {
        guard let file = try POSIX.openIfPresent(path) else { return nil }
        let size = try POSIX.regularFileSize(file)
        guard size >= Self.headerBytes else {
            throw .damagedCheckpoint(path: path, reason: "\(size) bytes, shorter than the \(Self.headerBytes)-byte header")
        }
        let header = try POSIX.read(file, count: Self.headerBytes, at: 0)
        guard Array(header[0..<8]) == Self.fileMagic else {
            throw .damagedCheckpoint(path: path, reason: "starts with \(StorageError.show(Array(header[0..<8]))), expected \"PBFTCKP1\"")
        }
        let length = Self.integer(header[48..<56])
        guard length <= Self.stateBytesMax, Self.headerBytes + Int(length) == size else {
            throw .damagedCheckpoint(path: path, reason: "header says \(length) state bytes but the file holds \(size - Self.headerBytes)")
        }
        let state = try POSIX.read(file, count: Int(length), at: Self.headerBytes)
        var crc = CRC32C()
        crc.update(Array(header[8..<56]))
        crc.update(state)
        let stored = UInt32(Self.integer(header[56..<60]))
        guard crc.value == stored else {
            throw .damagedCheckpoint(path: path, reason: "CRC mismatch")
        }
        return StoredCheckpoint(sequence: Self.integer(header[8..<16]), digest: Array(header[16..<48]), state: state)
    }

    private static func header(sequence: UInt64, digest: [UInt8], state: [UInt8]) -> [UInt8] {
        let fields = bigEndian(sequence) + digest + bigEndian(UInt64(state.count))
        var crc = CRC32C()
        crc.update(fields)
        crc.update(state)
        return fileMagic + fields + bigEndian(crc.value)
    }

    private static func integer(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// A checkpoint read back by `CheckpointStore.load()`.
public struct StoredCheckpoint: Hashable, Sendable {
    /// The sequence number of the last request the state reflects.
    public var sequence: UInt64
    /// The 32-byte digest saved with the state.
    public var digest: [UInt8]
    public var state: [UInt8]

    public init(sequence: UInt64, digest: [UInt8], state: [UInt8]) {
        self.sequence = sequence
        self.digest = digest
        self.state = state
    }
}
