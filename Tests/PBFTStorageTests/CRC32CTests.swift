import PBFTTestSupport
import PBFTStorage
import Testing

@Suite struct CRC32CTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// RFC 3720 (iSCSI) appendix B.4.
    @Test func iscsiTestVectors() {
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
    }

    /// Eight bytes at a time and one at a time agree, whatever the split and alignment.
    @Test func incrementalUpdatesMatchOneShot() {
        var random = SplitMix64(seed: 7)
        let bytes = random.bytes(100)
        for count in 0...bytes.count {
            let whole = CRC32C.checksum(Array(bytes[0..<count]))
            for split in stride(from: 0, through: count, by: 3) {
                var crc = CRC32C()
                crc.update(Array(bytes[0..<split]))
                crc.update(Array(bytes[split..<count]))
                #expect(crc.value == whole, "count \(count), split \(split)")
            }
        }
    }

    /// The CRC of a concatenation from the CRCs of its parts, which recovery's search for a
    /// valid record after damage relies on.
    @Test func combineMatchesTheCRCOfTheConcatenation() {
        var random = SplitMix64(seed: 8)
        for lengths in [(0, 0), (5, 0), (0, 5), (1, 1), (100, 37), (3, 70_000), (4096, 1 << 20)] {
            let first = random.bytes(lengths.0)
            let second = random.bytes(lengths.1)
            let combined = CRC32C.combine(CRC32C.checksum(first), CRC32C.checksum(second), secondBytes: second.count)
            #expect(combined == CRC32C.checksum(first + second), "lengths \(lengths)")
        }
    }
}
