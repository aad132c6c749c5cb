#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file descriptor, closed when the last reference goes away, so a throw anywhere
/// between `open` and the hand-over to its owner cannot leak it.
final class OpenFile {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { _ = close(fd) }
}

/// The system calls storage needs, each turning a failure into a `StorageError` that names
/// the file and the operation. Calls are retried on `EINTR`; reads and writes loop until
/// every byte is transferred.
enum POSIX {
    static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    static func failure(_ path: String, _ operation: String, _ code: Int32 = errno) -> StorageError {
        .io(path: path, operation: operation, reason: errnoText(code))
    }

    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Opens `path` with `flags` (plus `O_CLOEXEC`), creating it with `mode` if asked.
    static func open(_ path: String, flags: Int32, mode: mode_t = 0o600) throws(StorageError) -> OpenFile {
        while true {
            let fd = systemOpen(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return OpenFile(fd: fd, path: path) }
            if errno != EINTR { throw failure(path, "open") }
        }
    }

    /// Opens `path` for reading, or returns nil if it does not exist.
    static func openIfPresent(_ path: String) throws(StorageError) -> OpenFile? {
        while true {
            let fd = systemOpen(path, O_RDONLY | O_CLOEXEC, 0)
            if fd >= 0 { return OpenFile(fd: fd, path: path) }
            if errno == ENOENT { return nil }
            if errno != EINTR { throw failure(path, "open") }
        }
    }

    /// The size of a regular file; anything else (a directory, a device) is an error.
    static func regularFileSize(_ file: OpenFile) throws(StorageError) -> Int {
        var info = stat()
        guard fstat(file.fd, &info) == 0 else { throw failure(file.path, "fstat") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw .io(path: file.path, operation: "open", reason: "not a regular file")
        }
        return Int(info.st_size)
    }

    /// Takes an exclusive advisory lock, so two replicas (or two logs in one process) never
    /// write the same file.
    static func lockExclusively(_ file: OpenFile) throws(StorageError) {
        while flock(file.fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EWOULDBLOCK { throw .locked(path: file.path) }
            if errno != EINTR { throw failure(file.path, "flock") }
        }
    }

    /// Reads from `offset` until `buffer` is full or the file ends. Returns the number of
    /// bytes read, or minus the errno of a failed read.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                return -Int(errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes at `offset`; a short read (the file ended) is an error.
    static func read(_ file: OpenFile, count: Int, at offset: Int) throws(StorageError) -> [UInt8] {
        var result = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            result = read(file.fd, into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            initialized = max(result, 0)
        }
        if result < 0 { throw failure(file.path, "read", Int32(-result)) }
        guard bytes.count == count else {
            throw .io(path: file.path, operation: "read", reason: "file ended at byte \(offset + bytes.count), expected \(offset + count)")
        }
        return bytes
    }

    /// Writes every byte of `parts`, in order, starting at `offset`: one `pwritev` call
    /// unless the kernel takes less. Returns 0, or the errno of a failed write.
    static func write(_ fd: Int32, _ parts: [UnsafeRawBufferPointer], at offset: Int) -> Int32 {
        var vectors = parts.filter { $0.count > 0 }.map {
            iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
        }
        var first = 0
        var position = offset
        while first < vectors.count {
            let n = vectors[first...].withUnsafeBufferPointer {
                pwritev(fd, $0.baseAddress, Int32($0.count), off_t(position))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            position += n
            var remaining = n
            while remaining > 0 {
                let length = vectors[first].iov_len
                if remaining >= length {
                    remaining -= length
                    first += 1
                } else {
                    vectors[first].iov_base += remaining
                    vectors[first].iov_len -= remaining
                    remaining = 0
                }
            }
        }
        return 0
    }

    static func write(_ file: OpenFile, _ bytes: [UInt8], at offset: Int) throws(StorageError) {
        let code = bytes.withUnsafeBytes { write(file.fd, [$0], at: offset) }
        if code != 0 { throw failure(file.path, "write", code) }
    }

    /// Makes written data durable: `fdatasync` where there is one (it also flushes a size
    /// change, which is all an append changes), `F_FULLFSYNC` on Darwin, where plain `fsync`
    /// does not reach the platter.
    static func syncData(_ file: OpenFile) throws(StorageError) {
        #if canImport(Darwin)
        while fcntl(file.fd, F_FULLFSYNC) != 0 {
            if errno != EINTR { throw failure(file.path, "fcntl(F_FULLFSYNC)") }
        }
        #else
        while fdatasync(file.fd) != 0 {
            if errno != EINTR { throw failure(file.path, "fdatasync") }
        }
        #endif
    }

    /// Makes a directory's entries (a created, renamed or removed file) durable.
    static func syncDirectory(_ path: String) throws(StorageError) {
        let directory = try open(path.isEmpty ? "." : path, flags: O_RDONLY | O_DIRECTORY)
        while fsync(directory.fd) != 0 {
            if errno != EINTR { throw failure(directory.path, "fsync") }
        }
    }

    static func truncate(_ file: OpenFile, to length: Int) throws(StorageError) {
        while ftruncate(file.fd, off_t(length)) != 0 {
            if errno != EINTR { throw failure(file.path, "ftruncate") }
        }
    }

    static func rename(_ source: String, to destination: String) throws(StorageError) {
        guard systemRename(source, destination) == 0 else {
            throw .io(path: destination, operation: "rename from \(source)", reason: errnoText())
        }
    }

    /// Removes `path` if it exists; returns whether it did.
    static func removeIfPresent(_ path: String) throws(StorageError) -> Bool {
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw failure(path, "unlink")
    }

    /// Creates `path` and any missing parents with mode 0700 and, when `sync`, makes each new
    /// entry durable in its parent.
    static func makeDirectory(_ path: String, sync: Bool) throws(StorageError) {
        let absolute = path.hasPrefix("/")
        var prefix = absolute ? "/" : ""
        for component in path.split(separator: "/") {
            let parent = prefix.isEmpty ? "." : prefix
            prefix += component + "/"
            if mkdir(prefix, 0o700) == 0 {
                if sync { try syncDirectory(parent) }
            } else if errno != EEXIST {
                throw failure(path, "mkdir")
            }
        }
        var info = stat()
        guard stat(path.isEmpty ? "." : path, &info) == 0 else { throw failure(path, "stat") }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw .io(path: path, operation: "mkdir", reason: "exists and is not a directory")
        }
    }
}

// The C functions whose names `POSIX` reuses for its throwing wrappers.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemRename(_ source: String, _ destination: String) -> Int32 { rename(source, destination) }
