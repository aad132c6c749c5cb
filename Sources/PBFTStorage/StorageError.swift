/// Why storage failed. Each description is one line naming the file and what is wrong.
public enum StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed; `reason` is the system's text for `errno` (or says what was
    /// found instead of what was expected).
    case io(path: String, operation: String, reason: String)
    /// Another open log (in this or another process) holds the file's lock.
    case locked(path: String)
    /// The file does not start with the write-ahead log's magic bytes.
    case notALog(path: String, header: [UInt8])
    /// A damaged record is followed by a valid one, so the damage is not a torn tail from a
    /// crash: starting would silently drop or misread acknowledged state.
    case corruptRecord(path: String, offset: Int, reason: RecordDamage)
    /// A record above `WriteAheadLog.recordBytesMax`; recovery would reject it, so it is never
    /// written. Nothing was written and the log is still usable.
    case recordTooLarge(path: String, bytes: Int, limit: Int)
    /// An earlier write or sync failed, so what reached the disk is unknown (after a failed
    /// fsync the kernel may have dropped the dirty pages). Reopen the log to recover.
    case unusable(path: String, cause: String)
    /// A checkpoint file is damaged. Not fatal: the replica starts without it and fetches a
    /// stable checkpoint from its peers.
    case damagedCheckpoint(path: String, reason: String)
    /// A checkpoint state above `CheckpointStore.stateBytesMax`; nothing was written.
    case stateTooLarge(path: String, bytes: Int, limit: Int)
    /// The control mark file is damaged (a write torn by a crash, or worse). Not fatal: the
    /// replica starts without a mark and relies on the rules that need none (docs/runtime.md).
    case damagedControlMark(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let reason):
            "\(path): \(operation) failed: \(reason)"
        case .locked(let path):
            "\(path): locked by another open log (is another replica using this directory?)"
        case .notALog(let path, let header):
            "\(path): not a PBFT write-ahead log (starts with \(Self.show(header)), expected \"PBFTWAL1\"); refusing to start"
        case .corruptRecord(let path, let offset, let reason):
            "\(path): record at byte \(offset) is corrupt (\(reason)) and is followed by valid records; refusing to start on a damaged log"
        case .recordTooLarge(let path, let bytes, let limit):
            "\(path): record of \(bytes) bytes is above the limit of \(limit) bytes; not written"
        case .unusable(let path, let cause):
            "\(path): unusable after an earlier failure (\(cause)); restart to recover from the log on disk"
        case .damagedCheckpoint(let path, let reason):
            "\(path): damaged checkpoint (\(reason)); ignoring it"
        case .stateTooLarge(let path, let bytes, let limit):
            "\(path): checkpoint state of \(bytes) bytes is above the limit of \(limit) bytes; not written"
        case .damagedControlMark(let path, let reason):
            "\(path): damaged control mark (\(reason)); starting without it"
        }
    }

    /// Printable ASCII in quotes, anything else in hex.
    static func show(_ bytes: [UInt8]) -> String {
        if bytes.allSatisfy({ (0x20..<0x7F).contains($0) && $0 != 0x22 }) {
            return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
        }
        let digits = "0123456789abcdef".map { $0 }
        return "0x" + String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }
}

/// What is wrong with a record, or with the end of the file, found during recovery.
public enum RecordDamage: Hashable, Sendable, CustomStringConvertible {
    /// The file ends inside the 8-byte file header, which is a prefix of the magic: the crash
    /// came before the header was complete.
    case incompleteFileHeader(bytes: Int)
    /// The file ends inside an 8-byte record header.
    case incompleteHeader(bytes: Int)
    /// The record's length runs past the end of the file.
    case incompletePayload(length: Int, bytes: Int)
    /// The length is above `WriteAheadLog.recordBytesMax`.
    case impossibleLength(UInt32)
    /// The CRC-32C over the length and payload does not match the stored one.
    case checksumMismatch(stored: UInt32, computed: UInt32)

    public var description: String {
        switch self {
        case .incompleteFileHeader(let bytes):
            "incomplete file header: \(bytes) of \(WriteAheadLog.fileHeaderBytes) bytes"
        case .incompleteHeader(let bytes):
            "incomplete record header: \(bytes) of \(WriteAheadLog.recordHeaderBytes) bytes"
        case .incompletePayload(let length, let bytes):
            "payload of \(length) bytes runs past the end of the file (\(bytes) present)"
        case .impossibleLength(let length):
            "impossible length \(length), above the limit of \(WriteAheadLog.recordBytesMax)"
        case .checksumMismatch(let stored, let computed):
            "CRC mismatch: stored \(hex(stored)), computed \(hex(computed))"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
