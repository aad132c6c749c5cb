/// Hand-built wire bytes for tests that need an encoding the encoder would never write.
/// Independent of the module's `ByteWriter`, so the tests also check the layout the
/// specification (docs/wire-format.md) gives.
struct WireBytes {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { append(UInt64(value), width: 2) }
    mutating func u32(_ value: UInt32) { append(UInt64(value), width: 4) }
    mutating func u64(_ value: UInt64) { append(value, width: 8) }
    mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    private mutating func append(_ value: UInt64, width: Int) {
        for k in (0..<width).reversed() { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * k))) }
    }

    /// A whole envelope: header, then `payload` with its real length unless `payloadLength`
    /// overrides it, then a zero signature.
    static func envelope(
        version: UInt8 = 3, type: UInt8, senderKind: UInt8 = 0, senderID: UInt32 = 0,
        epoch: UInt64 = 0, payloadLength: UInt32? = nil, payload: [UInt8]
    ) -> [UInt8] {
        var w = WireBytes()
        w.u8(version)
        w.u8(type)
        w.u8(senderKind)
        w.u32(senderID)
        w.u64(epoch)
        w.u32(payloadLength ?? UInt32(payload.count))
        w.raw(payload)
        w.zeros(64)
        return w.bytes
    }

    /// Writes `value` big-endian over `width` bytes at `offset`.
    static func overwrite(_ bytes: inout [UInt8], at offset: Int, with value: UInt64, width: Int) {
        for k in 0..<width where offset + k < bytes.count {
            bytes[offset + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - k)))
        }
    }
}

/// Byte offsets in the envelope header.
enum HeaderOffset {
    static let version = 0
    static let type = 1
    static let senderKind = 2
    static let senderID = 3
    static let epoch = 7
    static let payloadLength = 15
    static let payload = 19
}
