import PBFTTestSupport
import PBFTStorage
import Testing

/// What `WriteAheadLog.open` does with a damaged file: a torn tail is cut off, damage followed
/// by valid records stops the replica, and no content makes it trap.
@Suite struct RecoveryTests {
    /// Five records; the last has a 40-byte payload.
    static func base() -> [[UInt8]] {
        var random = SplitMix64(seed: 10)
        return random.records(4, bytesMax: 60) + [random.bytes(40)]
    }

    static func encode(_ records: [[UInt8]]) -> [UInt8] {
        Array("PBFTWAL1".utf8) + records.flatMap(encodeRecord)
    }

    @Test func tornTailAtEveryOffsetInTheLastRecordIsTruncated() throws {
        let records = Self.base()
        let file = Self.encode(records)
        let lastStart = recordOffsets(records)[4]
        try withTemporaryDirectory { directory in
            for cut in lastStart + 1..<file.count {
                try writeFile(logPath(directory), Array(file[0..<cut]))
                let (recovered, recovery) = try reopen(directory, syncEnabled: true).get()
                let torn = cut - lastStart
                #expect(recovered == Array(records.prefix(4)), "cut at \(cut)")
                #expect(recovery.truncatedBytes == torn)
                let expected: RecordDamage = torn < 8 ? .incompleteHeader(bytes: torn) : .incompletePayload(length: 40, bytes: torn - 8)
                #expect(recovery.reason == expected, "cut at \(cut)")
                #expect(try readFile(logPath(directory)).count == lastStart, "the torn tail is gone from the file")

                try writeLog(directory, [[0xAB, 0xCD]])
                let (afterAppend, clean) = try reopen(directory).get()
                #expect(afterAppend == Array(records.prefix(4)) + [[0xAB, 0xCD]], "cut at \(cut)")
                #expect(clean.truncatedBytes == 0)
            }
        }
    }

    @Test func flippedBitInTheLastRecordIsATornTail() throws {
        let records = Self.base()
        let file = Self.encode(records)
        let lastStart = recordOffsets(records)[4]
        try withTemporaryDirectory { directory in
            for position in lastStart..<file.count {
                var damaged = file
                damaged[position] ^= 1 << UInt8(position % 8)
                try writeFile(logPath(directory), damaged)
                let result = reopen(directory)
                guard case .success(let (recovered, recovery)) = result else {
                    Issue.record("byte \(position): \(result)")
                    continue
                }
                #expect(recovered == Array(records.prefix(4)), "byte \(position)")
                #expect(recovery.truncatedBytes == file.count - lastStart)
                #expect(try readFile(logPath(directory)).count == lastStart)
            }
        }
    }

    /// Every byte of a middle record: length, CRC and payload.
    @Test func flippedBitInAMiddleRecordIsFatal() throws {
        let records = Self.base()
        let file = Self.encode(records)
        let offsets = recordOffsets(records)
        try withTemporaryDirectory { directory in
            for position in offsets[2]..<offsets[3] {
                var damaged = file
                damaged[position] ^= 1 << UInt8(7 - position % 8)
                try writeFile(logPath(directory), damaged)
                let result = reopen(directory)
                guard case .failure(let error) = result, case .corruptRecord(let path, let offset, _) = error else {
                    Issue.record("byte \(position): expected corruptRecord, got \(result)")
                    continue
                }
                #expect(path == logPath(directory) && offset == offsets[2], "byte \(position)")
                #expect(error.description.hasPrefix("\(logPath(directory)): record at byte \(offsets[2]) is corrupt ("))
                #expect(error.description.hasSuffix("refusing to start on a damaged log"))
                #expect(try readFile(logPath(directory)) == damaged, "a damaged log is left as it was")
            }
        }
    }

    @Test func crcMismatchIsNamed() throws {
        let records = Self.base()
        var file = Self.encode(records)
        let offsets = recordOffsets(records)
        file[offsets[1] + 8] ^= 0x10
        try withTemporaryDirectory { directory in
            try writeFile(logPath(directory), file)
            guard case .corruptRecord(_, _, .checksumMismatch) = reopen(directory).failureValue else {
                Issue.record("expected a CRC mismatch")
                return
            }
            #expect(reopen(directory).failureValue?.description.contains("is corrupt (CRC mismatch: stored 0x") == true)
        }
    }

    /// Enough records that recovery reads the file through several windows, and records too
    /// large for the window.
    @Test func recoveryAcrossReadWindows() throws {
        var random = SplitMix64(seed: 11)
        let records = random.records(2000, bytesMax: 1500) + [random.bytes(3 << 20)] + random.records(10, bytesMax: 100)
            + [random.bytes(1 << 20)]
        let offsets = recordOffsets(records)
        try withTemporaryDirectory { directory in
            try writeLog(directory, records)
            let file = try readFile(logPath(directory))
            #expect(try reopen(directory).get().records == records)

            var middle = file
            middle[offsets[1500] + 20] ^= 0x01
            try writeFile(logPath(directory), middle)
            #expect(reopen(directory).failureValue.map(corruptOffset) == offsets[1500])

            var big = file
            big[offsets[2000] + 1_000_000] ^= 0x80
            try writeFile(logPath(directory), big)
            #expect(reopen(directory).failureValue.map(corruptOffset) == offsets[2000])

            var last = file
            last[file.count - 1] ^= 0x04
            try writeFile(logPath(directory), last)
            let (recovered, recovery) = try reopen(directory).get()
            #expect(recovered == Array(records.dropLast()))
            #expect(recovery.truncatedBytes == 8 + (1 << 20))
        }
    }

    /// Damage followed by one valid record of each size the search treats differently: within
    /// a CRC block, longer but inside the read window, past the window, and ending exactly on a
    /// block boundary at the end of the file. Each must be found, so each is fatal.
    @Test(arguments: [0, 1, 1023, 1024, 1025, 50_000, (1 << 20) - 100, 1 << 20, 3 << 20, -1])
    func validRecordOfAnySizeAfterDamageIsFound(payloadBytes: Int) throws {
        var random = SplitMix64(seed: UInt64(payloadBytes + 2))
        let damaged = random.bytes(37)
        // -1: a length that makes the searched region (from the damaged record's second byte
        // to the end of the file) a whole number of 1 KiB blocks.
        let length = payloadBytes >= 0 ? payloadBytes : 2048 * 1024 - (damaged.count - 1) - 8
        let prefix = Self.encode(random.records(3, bytesMax: 50))
        let file = prefix + damaged + encodeRecord(random.bytes(length))
        try withTemporaryDirectory { directory in
            try writeFile(logPath(directory), file)
            #expect(reopen(directory).failureValue.map(corruptOffset) == prefix.count)
            // Without the valid record, the same damage is a torn tail.
            try writeFile(logPath(directory), prefix + damaged)
            #expect(try reopen(directory).get().recovery.truncatedBytes == damaged.count)
        }
    }

    /// Open's verdict on small random logs against a brute-force search written here from the
    /// format's definition: damage followed by a valid record anywhere is fatal, otherwise the
    /// tail is truncated at the damage.
    @Test func verdictMatchesBruteForceSearch() throws {
        try withTemporaryDirectory { directory in
            var verdicts = (truncated: 0, corrupt: 0)
            for seed in UInt64(0)..<300 {
                var random = SplitMix64(seed: 1000 + seed)
                var file = Self.encode(random.records(Int.random(in: 0...3, using: &random), bytesMax: 40))
                file += random.bytes(Int.random(in: 1...3000, using: &random))
                if random.next() & 1 == 0 { file += encodeRecord(random.bytes(Int.random(in: 0...5000, using: &random))) }
                file += random.bytes(Int.random(in: 0...1500, using: &random))
                try writeFile(logPath(directory), file)

                let expected = bruteForceVerdict(file)
                if case .corrupt = expected { verdicts.corrupt += 1 } else { verdicts.truncated += 1 }
                switch (reopen(directory), expected) {
                case (.success(let (_, recovery)), .truncated(let end)):
                    #expect(recovery.bytes == end, "seed \(seed)")
                case (.failure(.corruptRecord(_, let offset, _)), .corrupt(let damage)):
                    #expect(offset == damage, "seed \(seed)")
                case (let actual, _):
                    Issue.record("seed \(seed): expected \(expected), got \(actual)")
                }
            }
            #expect(verdicts.truncated > 100 && verdicts.corrupt > 100, "\(verdicts)")
        }
    }

    enum Damage: CaseIterable {
        /// Random bytes after the last record.
        case garbage
        /// Zero bytes after the last record, as a file system may show after a crash.
        case zeros
        /// Random bytes and then a valid record: not a torn tail.
        case garbageThenRecord
        /// The file cut at a random point and random bytes after it.
        case cutThenGarbage
        /// One to four bits flipped anywhere, file header included.
        case bitFlips
    }

    /// 1000 seeds, 200 of each kind of damage. Whatever the bytes, `open` returns or throws a
    /// `StorageError` (typed throws make anything else a crash); when it returns, it returns
    /// the records up to the damage and leaves a file that reopens cleanly.
    @Test func damagedFilesNeverTrap() throws {
        try withTemporaryDirectory { directory in
            var outcomes: [String: Int] = [:]
            for seed in UInt64(0)..<1000 {
                var random = SplitMix64(seed: seed)
                let damage = Damage.allCases[Int(seed) % Damage.allCases.count]
                let records = random.records(Int.random(in: 1...8, using: &random), bytesMax: 64)
                let clean = Self.encode(records)
                let ends = recordOffsets(records)
                var file = clean
                var cut = clean.count
                switch damage {
                case .garbage:
                    file += random.bytes(Int.random(in: 1...300, using: &random))
                case .zeros:
                    file += [UInt8](repeating: 0, count: Int.random(in: 1...300, using: &random))
                case .garbageThenRecord:
                    file += random.bytes(Int.random(in: 1...300, using: &random)) + encodeRecord(random.bytes(20))
                case .cutThenGarbage:
                    cut = Int.random(in: 8...clean.count, using: &random)
                    file = Array(clean[0..<cut]) + random.bytes(Int.random(in: 1...300, using: &random))
                case .bitFlips:
                    for _ in 0..<Int.random(in: 1...4, using: &random) {
                        file[Int.random(in: 0..<file.count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                    }
                }
                try writeFile(logPath(directory), file)

                let kept = ends.dropFirst().filter { $0 <= cut }.count
                switch reopen(directory) {
                case .success(let (recovered, recovery)):
                    outcomes["truncated", default: 0] += 1
                    #expect(damage != .garbageThenRecord, "seed \(seed)")
                    #expect(recovered == Array(records.prefix(recovered.count)), "seed \(seed): not a prefix")
                    if damage != .bitFlips {
                        #expect(recovered.count == kept, "seed \(seed)")
                        #expect(recovery.truncatedBytes == file.count - ends[kept], "seed \(seed)")
                    }
                    #expect(try reopen(directory).get().recovery.truncatedBytes == 0, "seed \(seed)")
                case .failure(let error):
                    outcomes[kind(error), default: 0] += 1
                    switch (damage, error) {
                    case (.garbageThenRecord, .corruptRecord(_, let offset, _)):
                        #expect(offset == clean.count, "seed \(seed)")
                    case (.bitFlips, .corruptRecord), (.bitFlips, .notALog):
                        break
                    default:
                        Issue.record("seed \(seed), \(damage): \(error)")
                    }
                }
            }
            print("damaged logs: \(outcomes.sorted { $0.key < $1.key })")
            #expect(outcomes.count == 3)
        }
    }
}

private func kind(_ error: StorageError) -> String {
    switch error {
    case .corruptRecord: "corruptRecord"
    case .notALog: "notALog"
    default: "\(error)"
    }
}

private func corruptOffset(_ error: StorageError) -> Int? {
    if case .corruptRecord(_, let offset, _) = error { return offset }
    return nil
}

enum Verdict: Equatable {
    case truncated(at: Int)
    case corrupt(at: Int)
}

/// The slow obvious reading of the format: walk records from the header; at the first invalid
/// one, try every later position.
func bruteForceVerdict(_ file: [UInt8]) -> Verdict {
    func isValidRecord(at offset: Int) -> Int? {
        guard offset + 8 <= file.count else { return nil }
        let length = file[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        let stored = file[offset + 4..<offset + 8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard length <= WriteAheadLog.recordBytesMax, offset + 8 + length <= file.count else { return nil }
        let crc = CRC32C.checksum(Array(file[offset..<offset + 4]) + Array(file[offset + 8..<offset + 8 + length]))
        return crc == stored ? offset + 8 + length : nil
    }
    var offset = 8
    while offset < file.count {
        guard let next = isValidRecord(at: offset) else {
            let later = (offset + 1..<file.count).contains { isValidRecord(at: $0) != nil }
            return later ? .corrupt(at: offset) : .truncated(at: offset)
        }
        offset = next
    }
    return .truncated(at: offset)
}
