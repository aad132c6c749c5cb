import PBFTTestSupport
import Foundation
import PBFTStorage
import Testing

@Suite struct WriteAheadLogTests {
    @Test(arguments: [true, false])
    func recordsComeBackInOrder(syncEnabled: Bool) throws {
        try withTemporaryDirectory { directory in
            var random = SplitMix64(seed: 1)
            let first = [[]] + random.records(200, bytesMax: 300)
            let second = random.records(50, bytesMax: 300)

            let (log, initial, created) = try WriteAheadLog.open(directory: directory, syncEnabled: syncEnabled)
            #expect(initial.isEmpty)
            #expect(created.createdLog)
            for record in first { try log.append(record) }
            try log.sync()
            try log.sync()
            #expect(log.recordCount == first.count)
            #expect(log.bytes == recordOffsets(first).last!)
            log.close()

            let (again, records, recovery) = try WriteAheadLog.open(directory: directory, syncEnabled: syncEnabled)
            #expect(records == first)
            #expect(recovery.recordCount == first.count)
            #expect(recovery.truncatedBytes == 0 && recovery.reason == nil && !recovery.createdLog)
            #expect(again.bytes == (try readFile(logPath(directory))).count)
            for record in second { try again.append(record) }
            try again.sync()
            again.close()

            #expect(try reopen(directory).get().records == first + second)
        }
    }

    @Test func fileIsMagicThenLengthCrcPayload() throws {
        try withTemporaryDirectory { directory in
            try writeLog(directory, [[], [1, 2, 3]])
            let expected = Array("PBFTWAL1".utf8) + encodeRecord([]) + encodeRecord([1, 2, 3])
            #expect(try readFile(logPath(directory)) == expected)
            // The empty record's CRC covers its four zero length bytes, so it is not zero.
            #expect(expected[8..<16] == [0, 0, 0, 0, 0x48, 0x67, 0x4B, 0xC7])
        }
    }

    @Test func createsMissingDirectoriesPrivately() throws {
        try withTemporaryDirectory { directory in
            let nested = directory + "/data/r0"
            try writeLog(nested, [[42]])
            let attributes = try FileManager.default.attributesOfItem(atPath: nested)
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
            let logAttributes = try FileManager.default.attributesOfItem(atPath: logPath(nested))
            #expect((logAttributes[.posixPermissions] as? Int) == 0o600)
            #expect(try reopen(nested).get().records == [[42]])
        }
    }

    @Test func emptyFileIsAFreshLog() throws {
        try withTemporaryDirectory { directory in
            try writeFile(logPath(directory), [])
            let (records, recovery) = try reopen(directory).get()
            #expect(records.isEmpty)
            #expect(recovery.createdLog && recovery.truncatedBytes == 0)
            #expect(try readFile(logPath(directory)) == Array("PBFTWAL1".utf8))
        }
    }

    @Test func partOfTheMagicIsAFreshLog() throws {
        try withTemporaryDirectory { directory in
            try writeFile(logPath(directory), Array("PBFT".utf8))
            let (records, recovery) = try reopen(directory, syncEnabled: true).get()
            #expect(records.isEmpty)
            #expect(recovery.createdLog)
            #expect(recovery.truncatedBytes == 4 && recovery.reason == .incompleteFileHeader(bytes: 4))
            #expect(try readFile(logPath(directory)) == Array("PBFTWAL1".utf8))
        }
    }

    @Test(arguments: [Array("PBFTWAL2".utf8) + encodeRecord([1]), Array("PBFTCKP1".utf8), Array("XY".utf8), [0xFF]])
    func wrongMagicIsAnError(contents: [UInt8]) throws {
        try withTemporaryDirectory { directory in
            try writeFile(logPath(directory), contents)
            guard case .failure(let error) = reopen(directory), case .notALog(let path, _) = error else {
                Issue.record("expected notALog")
                return
            }
            #expect(path == logPath(directory))
            #expect(error.description.hasPrefix("\(logPath(directory)): not a PBFT write-ahead log"))
            #expect(try readFile(logPath(directory)) == contents, "a file that is not a log is left alone")
        }
    }

    @Test func rewriteKeepsExactlyTheGivenRecords() throws {
        try withTemporaryDirectory { directory in
            var random = SplitMix64(seed: 2)
            let old = random.records(20, bytesMax: 100)
            let new = random.records(5, bytesMax: 100)
            let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: true)
            for record in old { try log.append(record) }
            try log.sync()

            let kept = Array(old[12...])
            try log.rewrite(keeping: kept)
            #expect(log.recordCount == kept.count)
            #expect(log.bytes == recordOffsets(kept).last!)
            #expect(!fileExists(directory + "/" + WriteAheadLog.temporaryFileName))
            for record in new { try log.append(record) }
            try log.sync()
            #expect(log.bytes == (try readFile(logPath(directory))).count)
            log.close()

            #expect(try reopen(directory).get().records == kept + new)
        }
    }

    @Test func rewriteToNothingAndWithLargeRecords() throws {
        try withTemporaryDirectory { directory in
            var random = SplitMix64(seed: 3)
            let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: false)
            try log.append([1, 2, 3])
            try log.rewrite(keeping: [])
            #expect(try readFile(logPath(directory)) == Array("PBFTWAL1".utf8))
            // Large records are written on their own; small ones gathered around them.
            let mixed = [random.bytes(10), random.bytes(700_000), random.bytes(10), random.bytes(2_000_000)]
                + random.records(3000, bytesMax: 500)
            try log.rewrite(keeping: mixed)
            try log.append([9])
            log.close()
            #expect(try reopen(directory).get().records == mixed + [[9]])
        }
    }

    @Test func leftoverTemporaryFileIsRemoved() throws {
        try withTemporaryDirectory { directory in
            try writeLog(directory, [[1], [2]])
            try writeFile(directory + "/" + WriteAheadLog.temporaryFileName, Array("PBFTWAL1".utf8) + [0, 0])
            let (records, recovery) = try reopen(directory).get()
            #expect(records == [[1], [2]])
            #expect(recovery.removedTemporaryFile)
            #expect(!fileExists(directory + "/" + WriteAheadLog.temporaryFileName))
        }
    }

    @Test func secondOpenOfTheSameLogIsRefused() throws {
        try withTemporaryDirectory { directory in
            let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: false)
            #expect(reopen(directory).failureValue == .locked(path: logPath(directory)))
            try log.rewrite(keeping: [[1]])
            #expect(reopen(directory).failureValue == .locked(path: logPath(directory)), "the lock moves to the new file")
            log.close()
            #expect(try reopen(directory).get().records == [[1]])
        }
    }

    @Test func oversizedRecordIsRefusedAndTheLogStaysUsable() throws {
        try withTemporaryDirectory { directory in
            let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: false)
            let oversized = [UInt8](repeating: 0, count: WriteAheadLog.recordBytesMax + 1)
            #expect(throws: StorageError.recordTooLarge(path: logPath(directory), bytes: oversized.count, limit: WriteAheadLog.recordBytesMax)) {
                try log.append(oversized)
            }
            #expect(throws: StorageError.self) { try log.rewrite(keeping: [[1], oversized]) }
            try log.append([7])
            log.close()
            #expect(try reopen(directory).get().records == [[7]])
        }
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
