import Foundation
import PBFTStorage
import Testing

@Suite struct ControlMarkStoreTests {
    func markPath(_ directory: String) -> String { directory + "/" + ControlMarkStore.fileName }

    @Test func aNewDirectoryHasNoMark() throws {
        try withTemporaryDirectory { directory throws in
            #expect(try ControlMarkStore(directory: directory).load() == nil)
            #expect(fileExists(markPath(directory)), "the file is created, empty")
            #expect(try ControlMarkStore(directory: directory).load() == nil, "an empty file is no mark")
        }
    }

    @Test func theMarkSurvivesReopeningAndOnlyTheLastCounts() throws {
        try withTemporaryDirectory { directory throws in
            let store = try ControlMarkStore(directory: directory)
            try store.save(1_700_000_000_000_000)
            try store.save(1_700_000_000_000_001)
            #expect(try store.load() == 1_700_000_000_000_001)
            #expect(try ControlMarkStore(directory: directory).load() == 1_700_000_000_000_001, "a restart reads it back")
            try ControlMarkStore(directory: directory).save(UInt64.max)
            #expect(try ControlMarkStore(directory: directory).load() == UInt64.max)
        }
    }

    @Test func theFileHasTheDocumentedLayout() throws {
        try withTemporaryDirectory { directory throws in
            try ControlMarkStore(directory: directory).save(0x0102_0304_0506_0708)
            let bytes = try readFile(markPath(directory))
            #expect(bytes.count == ControlMarkStore.fileBytes)
            #expect(Array(bytes[0..<8]) == Array("PBFTCTM1".utf8))
            #expect(Array(bytes[8..<16]) == [1, 2, 3, 4, 5, 6, 7, 8])
            let crc = CRC32C.checksum([1, 2, 3, 4, 5, 6, 7, 8])
            #expect(Array(bytes[16..<20]) == [UInt8(crc >> 24), UInt8(truncatingIfNeeded: crc >> 16), UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)])
        }
    }

    /// A torn or damaged file is reported, never read as some other mark; the replica then
    /// starts without one (its start-time rule still refuses recordings from before).
    @Test(arguments: ["a flipped mark byte", "a flipped CRC byte", "another magic", "a torn write", "a longer file"])
    func damageIsReportedNotMisread(_ what: String) throws {
        try withTemporaryDirectory { directory throws in
            try ControlMarkStore(directory: directory).save(42)
            var bytes = try readFile(markPath(directory))
            switch what {
            case "a flipped mark byte": bytes[12] ^= 1
            case "a flipped CRC byte": bytes[19] ^= 0x80
            case "another magic": bytes[0] = 0x41
            case "a torn write": bytes.removeLast(7)
            default: bytes.append(0)
            }
            try writeFile(markPath(directory), bytes)
            do {
                let mark = try ControlMarkStore(directory: directory).load()
                Issue.record("\(what): read as \(String(describing: mark))")
            } catch {
                if case StorageError.damagedControlMark = error {} else { Issue.record("\(what): \(error)") }
            }
        }
    }
}
