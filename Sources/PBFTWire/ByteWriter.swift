/// Appends fixed-width big-endian integers and length-prefixed fields.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func u32(_ value: UInt32) {
        for shift: UInt32 in [24, 16, 8, 0] { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    mutating func u64(_ value: UInt64) {
        for shift: UInt64 in [56, 48, 40, 32, 24, 16, 8, 0] { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    /// A u32 length followed by the bytes.
    mutating func lengthPrefixed(_ data: [UInt8]) {
        precondition(data.count <= Int(UInt32.max), "field of \(data.count) bytes cannot be encoded")
        u32(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    mutating func count(_ value: Int) {
        precondition(value <= Int(UInt16.max), "list of \(value) elements cannot be encoded")
        u16(UInt16(value))
    }

    mutating func digest(_ d: Digest) { u64(d.w0); u64(d.w1); u64(d.w2); u64(d.w3) }
    mutating func publicKey(_ k: PublicKey) { u64(k.w0); u64(k.w1); u64(k.w2); u64(k.w3) }
    mutating func signature(_ s: Signature) { raw(s.bytes) }
}

/// Reads what `ByteWriter` writes, from a window of an array, checking every length
/// against the bytes left and against its limit before touching memory.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.position = start
        self.end = end ?? bytes.count
    }

    var remaining: Int { end - position }

    private mutating func take(_ count: Int, _ field: String) throws(WireError) -> Int {
        guard count <= remaining else { throw .truncated(field: field, needed: count, available: remaining) }
        let start = position
        position += count
        return start
    }

    mutating func u8(_ field: String) throws(WireError) -> UInt8 {
        bytes[try take(1, field)]
    }

    mutating func u16(_ field: String) throws(WireError) -> UInt16 {
        let i = try take(2, field)
        return UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
    }

    mutating func u32(_ field: String) throws(WireError) -> UInt32 {
        let i = try take(4, field)
        var value: UInt32 = 0
        for k in 0..<4 { value = value << 8 | UInt32(bytes[i + k]) }
        return value
    }

    mutating func u64(_ field: String) throws(WireError) -> UInt64 {
        let i = try take(8, field)
        var value: UInt64 = 0
        for k in 0..<8 { value = value << 8 | UInt64(bytes[i + k]) }
        return value
    }

    mutating func raw(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        let i = try take(count, field)
        return Array(bytes[i..<(i + count)])
    }

    /// A u32 length, checked against `limit` and against the bytes left, then the bytes.
    mutating func lengthPrefixed(_ field: String, limit: Int) throws(WireError) -> [UInt8] {
        let length = try u32(field + ".length")
        guard length <= limit else { throw .limitExceeded(field: field, value: UInt64(length), limit: UInt64(limit)) }
        return try raw(Int(length), field)
    }

    /// A u16 element count, checked against `limit`.
    mutating func count(_ field: String, limit: Int) throws(WireError) -> Int {
        let value = Int(try u16(field + ".count"))
        guard value <= limit else { throw .limitExceeded(field: field + ".count", value: UInt64(value), limit: UInt64(limit)) }
        return value
    }

    mutating func digest(_ field: String) throws(WireError) -> Digest {
        Digest(w0: try u64(field), w1: try u64(field), w2: try u64(field), w3: try u64(field))
    }

    mutating func publicKey(_ field: String) throws(WireError) -> PublicKey {
        PublicKey(bytes: try raw(PublicKey.byteCount, field))!
    }

    mutating func signature(_ field: String) throws(WireError) -> Signature {
        Signature(bytes: try raw(Signature.byteCount, field))!
    }
}
