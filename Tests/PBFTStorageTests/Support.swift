import PBFTTestSupport
import Foundation
import PBFTStorage
import Testing

/// A fresh directory under the system's temporary directory, removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("PBFTStorageTests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func fileExists(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: path)
}

func logPath(_ directory: String) -> String { directory + "/" + WriteAheadLog.fileName }

/// Opens the log, appends `records`, syncs and closes it.
func writeLog(_ directory: String, _ records: [[UInt8]], syncEnabled: Bool = false) throws {
    let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: syncEnabled)
    for record in records { try log.append(record) }
    try log.sync()
    log.close()
}

/// Opens the log and closes it again, returning what `open` returned, or its error.
func reopen(_ directory: String, syncEnabled: Bool = false) -> Result<(records: [[UInt8]], recovery: RecoveryReport), StorageError> {
    do throws(StorageError) {
        let (log, records, recovery) = try WriteAheadLog.open(directory: directory, syncEnabled: syncEnabled)
        log.close()
        return .success((records, recovery))
    } catch {
        return .failure(error)
    }
}

/// A record as the format defines it, encoded independently of the code under test.
func encodeRecord(_ payload: [UInt8]) -> [UInt8] {
    let length = UInt32(payload.count)
    let lengthBytes = withUnsafeBytes(of: length.bigEndian) { Array($0) }
    let crc = CRC32C.checksum(lengthBytes + payload)
    return lengthBytes + withUnsafeBytes(of: crc.bigEndian) { Array($0) } + payload
}

/// Byte offsets where each record starts in a log holding `records`, and where the last ends.
func recordOffsets(_ records: [[UInt8]]) -> [Int] {
    var offsets = [WriteAheadLog.fileHeaderBytes]
    for record in records { offsets.append(offsets.last! + WriteAheadLog.recordHeaderBytes + record.count) }
    return offsets
}

extension SplitMix64 {
    /// `count` random bytes, eight from each word.
    mutating func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var index = 0
            while index < count {
                var word = next()
                for _ in 0..<min(8, count - index) {
                    buffer[index] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    index += 1
                }
            }
            initialized = count
        }
    }

    /// `count` records of random content, each 0 to `bytesMax` bytes long.
    mutating func records(_ count: Int, bytesMax: Int) -> [[UInt8]] {
        (0..<count).map { _ in bytes(Int.random(in: 0...bytesMax, using: &self)) }
    }
}
