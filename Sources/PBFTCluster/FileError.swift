#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A problem with a file the user gave us: one line naming the file and what is wrong.
public struct FileError: Error, Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// Small POSIX file helpers with errors that name the file.
enum Files {
    /// Bytes above this size are not a key or cluster file; reading stops there.
    static let configBytesMax = 4 << 20

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Reads a small text file; with `secret`, first refuses a file readable or writable by
    /// group or others, as ssh does for private keys.
    static func readText(_ path: String, secret: Bool) throws(FileError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw FileError(path, "cannot read: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw FileError(path, "not a regular file") }
        let mode = info.st_mode & 0o777
        if secret, mode & 0o077 != 0 {
            throw FileError(path, "permissions are \(octal(mode)); a secret key file must be private (chmod 600 \(path))")
        }
        guard info.st_size <= configBytesMax else {
            throw FileError(path, "\(info.st_size) bytes is too large (at most \(configBytesMax))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "read failed: \(errnoText())")
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            guard bytes.count <= configBytesMax else { throw FileError(path, "too large (at most \(configBytesMax) bytes)") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw FileError(path, "not UTF-8 text") }
        return text
    }

    /// Writes `text` with exactly `mode` (umask notwithstanding), synced to disk. Without
    /// `overwrite`, an existing file is an error and is left untouched.
    static func writeText(_ text: String, to path: String, mode: mode_t, overwrite: Bool) throws(FileError) {
        var flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW
        flags |= overwrite ? O_TRUNC : O_EXCL
        let fd = open(path, flags, mode)
        guard fd >= 0 else {
            if errno == EEXIST { throw FileError(path, "already exists (use --force to overwrite)") }
            throw FileError(path, "cannot create: \(errnoText())")
        }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else { throw FileError(path, "cannot set permissions: \(errnoText())") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "write failed: \(errnoText())")
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw FileError(path, "fsync failed: \(errnoText())") }
    }

    /// Creates `path` and its parents (mode 0700 for new ones).
    static func makeDirectory(_ path: String) throws(FileError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if mkdir(prefix, 0o700) != 0, errno != EEXIST { throw FileError(path, "cannot create directory: \(errnoText())") }
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { throw FileError(path, "not a directory") }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
