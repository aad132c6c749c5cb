import PBFTTestSupport
import Foundation
import PBFTStorage
import Testing

@Suite struct CheckpointStoreTests {
    static func digest(_ seed: UInt8) -> [UInt8] { (0..<32).map { $0 &+ seed } }

    func checkpointPath(_ directory: String) -> String { directory + "/" + CheckpointStore.fileName }

    @Test func noFileIsNoCheckpoint() throws {
        try withTemporaryDirectory { directory throws in
            #expect(try CheckpointStore(directory: directory).load() == nil)
            #expect(try CheckpointStore(directory: directory + "/missing").load() == nil)
        }
    }

    @Test func roundTripIncludingATwelveMegabyteState() throws {
        try withTemporaryDirectory { directory in
            var random = SplitMix64(seed: 20)
            let store = CheckpointStore(directory: directory + "/r0")
            try store.save(sequence: 0, digest: Self.digest(0), state: [])
            #expect(try store.load() == StoredCheckpoint(sequence: 0, digest: Self.digest(0), state: []))

            let state = random.bytes(12 << 20)
            try store.save(sequence: 1 << 40, digest: Self.digest(9), state: state)
            let loaded = try #require(try store.load())
            #expect(loaded.sequence == 1 << 40)
            #expect(loaded.digest == Self.digest(9))
            #expect(loaded.state == state)
            #expect(try readFile(checkpointPath(store.directory)).count == CheckpointStore.headerBytes + state.count)
        }
    }

    @Test func saveKeepsOnlyTheLatest() throws {
        try withTemporaryDirectory { directory in
            let store = CheckpointStore(directory: directory)
            try store.save(sequence: 128, digest: Self.digest(1), state: Array(repeating: 1, count: 1000))
            try store.save(sequence: 256, digest: Self.digest(2), state: [2, 2])
            #expect(try store.load() == StoredCheckpoint(sequence: 256, digest: Self.digest(2), state: [2, 2]))
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [CheckpointStore.fileName])
        }
    }

    @Test func fileLayout() throws {
        try withTemporaryDirectory { directory in
            try CheckpointStore(directory: directory).save(sequence: 0x0102, digest: Self.digest(0), state: [7, 8, 9])
            let file = try readFile(checkpointPath(directory))
            #expect(Array(file[0..<8]) == Array("PBFTCKP1".utf8))
            #expect(Array(file[8..<16]) == [0, 0, 0, 0, 0, 0, 0x01, 0x02])
            #expect(Array(file[16..<48]) == Self.digest(0))
            #expect(Array(file[48..<56]) == [0, 0, 0, 0, 0, 0, 0, 3])
            let crc = CRC32C.checksum(Array(file[8..<56]) + [7, 8, 9])
            #expect(Array(file[56..<60]) == withUnsafeBytes(of: crc.bigEndian) { Array($0) })
            #expect(Array(file[60...]) == [7, 8, 9])
        }
    }

    enum Damage: CaseIterable, Sendable {
        case stateBit, sequenceBit, digestBit, crcBit, lengthBit, hugeLength, magic
        case truncatedState, truncatedHeader, empty, trailingByte

        func apply(to file: inout [UInt8]) {
            switch self {
            case .stateBit: file[70] ^= 0x01
            case .sequenceBit: file[15] ^= 0x01
            case .digestBit: file[20] ^= 0x80
            case .crcBit: file[57] ^= 0x02
            case .lengthBit: file[55] ^= 0x01
            case .hugeLength: file.replaceSubrange(48..<56, with: [0xFF] + [UInt8](repeating: 0, count: 7))
            case .magic: file[7] = UInt8(ascii: "2")
            case .truncatedState: file.removeLast()
            case .truncatedHeader: file.removeLast(file.count - 30)
            case .empty: file.removeAll()
            case .trailingByte: file.append(0)
            }
        }
    }

    /// Each kind of damage is reported as `damagedCheckpoint`, never as a checkpoint.
    @Test(arguments: Damage.allCases)
    func damagedFileIsDetected(damage: Damage) throws {
        try withTemporaryDirectory { directory in
            let store = CheckpointStore(directory: directory, syncEnabled: false)
            try store.save(sequence: 5, digest: Self.digest(5), state: Array(repeating: 0x5A, count: 100))
            var file = try readFile(store.path)
            damage.apply(to: &file)
            try writeFile(store.path, file)
            do throws(StorageError) {
                let loaded = try store.load()
                Issue.record("\(damage): loaded \(String(describing: loaded?.sequence))")
            } catch {
                guard case .damagedCheckpoint(let path, _) = error else {
                    Issue.record("\(damage): \(error)")
                    return
                }
                #expect(path == store.path)
                #expect(error.description.hasPrefix("\(store.path): damaged checkpoint ("))
            }
            // The next save replaces the damaged file.
            try store.save(sequence: 6, digest: Self.digest(6), state: [6])
            #expect(try store.load()?.sequence == 6)
        }
    }
}
