#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The newest operator command timestamp a replica accepted (its control high mark), kept in
/// its data directory so that a restart does not reopen the window for replaying a recorded
/// command (docs/runtime.md, *Control security*; docs/storage.md).
///
/// ## File format (`<directory>/control.mark`)
///
/// ```
/// offset  size  field
///      0     8  magic "PBFTCTM1"
///      8     8  mark: u64, big-endian, microseconds since 1970
///     16     4  crc: u32, big-endian, CRC-32C over bytes 8 ..< 16
/// ```
///
/// `save` overwrites the 20 bytes in place and syncs the file: one `fdatasync` per command
/// that changes anything, on the replica's loop. A write torn by a crash fails the CRC;
/// `load` then throws `.damagedControlMark` and the replica starts without a mark, which
/// the rules that need none cover (a command must be newer than the replica's start).
/// An empty file (created, never written) is no mark.
public final class ControlMarkStore: @unchecked Sendable {
    public static let fileName = "control.mark"
    public static let fileMagic: [UInt8] = Array("PBFTCTM1".utf8)
    public static let fileBytes = 20

    public let path: String
    /// When false, `save` skips its sync: for tests and benchmarks only (`--no-sync`).
    public let syncEnabled: Bool
    private let file: OpenFile

    /// Opens (creating if needed) the mark file in `directory`, which must exist.
    public init(directory: String, syncEnabled: Bool = true) throws(StorageError) {
        path = POSIX.join(directory, Self.fileName)
        self.syncEnabled = syncEnabled
        let existed = try POSIX.openIfPresent(path) != nil
        file = try POSIX.open(path, flags: O_RDWR | O_CREAT)
        // A new file's entry must be durable before a mark in it counts for anything.
        if !existed, syncEnabled { try POSIX.syncDirectory(directory) }
    }

    /// The stored mark, or nil if none was ever saved. Throws `.damagedControlMark` for a
    /// file that is neither empty nor a valid mark, `.io` if it cannot be read.
    public func load() throws(StorageError) -> UInt64? {
        let size = try POSIX.regularFileSize(file)
        if size == 0 { return nil }
        guard size == Self.fileBytes else {
            throw .damagedControlMark(path: path, reason: "\(size) bytes, expected \(Self.fileBytes)")
        }
        let bytes = try POSIX.read(file, count: Self.fileBytes, at: 0)
        guard Array(bytes[0..<8]) == Self.fileMagic else {
            throw .damagedControlMark(path: path, reason: "starts with \(StorageError.show(Array(bytes[0..<8]))), expected \"PBFTCTM1\"")
        }
        let stored = UInt32(Self.integer(bytes[16..<20]))
        let computed = CRC32C.checksum(Array(bytes[8..<16]))
        guard stored == computed else { throw .damagedControlMark(path: path, reason: "CRC mismatch") }
        return Self.integer(bytes[8..<16])
    }

    /// Makes `mark` the stored one, durably (unless syncing is off) before it returns.
    public func save(_ mark: UInt64) throws(StorageError) {
        try POSIX.write(file, Self.encoded(mark), at: 0)
        if syncEnabled { try POSIX.syncData(file) }
    }

    /// The file's 20 bytes for `mark`.
    public static func encoded(_ mark: UInt64) -> [UInt8] {
        let value = bigEndian(mark)
        return fileMagic + value + bigEndian(CRC32C.checksum(value))
    }

    private static func integer(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}
