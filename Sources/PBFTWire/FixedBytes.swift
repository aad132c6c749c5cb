/// A SHA-256 digest: 32 bytes held as four big-endian words, so equality and hashing
/// cost no allocation and `<` is the bytes' lexicographic order.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// All zeros. It stands for "no value" (for example the null request of a new view);
    /// SHA-256 of any input is this value with negligible probability.
    public static let zero = Digest(w0: 0, w1: 0, w2: 0, w3: 0)

    /// Returns nil unless `bytes` holds exactly `byteCount` bytes.
    public init?(bytes: some Collection<UInt8>) {
        self.init(bytes: Array(bytes))
    }

    /// The same for an array: four unaligned loads (every hash output and decoded key takes it).
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        (w0, w1, w2, w3) = FixedWords.four(bytes)
    }

    public var bytes: [UInt8] { FixedWords.store(w0, w1, w2, w3) }
    public static func < (a: Self, b: Self) -> Bool { (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3) }
    public var description: String { Hex.encode(bytes) }
    /// The first 8 hex digits, for logs.
    public var short: String { String(description.prefix(8)) }
}

/// An Ed25519 public key (32 bytes). Whether the point is valid is the crypto module's
/// business; here it is just bytes.
public struct PublicKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public init?(bytes: some Collection<UInt8>) {
        self.init(bytes: Array(bytes))
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        (w0, w1, w2, w3) = FixedWords.four(bytes)
    }

    public var bytes: [UInt8] { FixedWords.store(w0, w1, w2, w3) }
    public static func < (a: Self, b: Self) -> Bool { (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3) }
    public var description: String { Hex.encode(bytes) }
}

/// A detached Ed25519 signature (64 bytes).
public struct Signature: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 64
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    public init?(bytes: some Collection<UInt8>) {
        self.init(bytes: Array(bytes))
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        words = bytes.withUnsafeBytes { p in
            (FixedWords.word(p, 0), FixedWords.word(p, 1), FixedWords.word(p, 2), FixedWords.word(p, 3),
             FixedWords.word(p, 4), FixedWords.word(p, 5), FixedWords.word(p, 6), FixedWords.word(p, 7))
        }
    }

    /// A signature of all zeros; it verifies under no key. Useful as a placeholder in tests.
    public static let zero = Signature(bytes: [UInt8](repeating: 0, count: 64))!

    public var bytes: [UInt8] {
        let w = words
        return FixedWords.store(w.0, w.1, w.2, w.3, w.4, w.5, w.6, w.7)
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2
            && a.words.3 == b.words.3 && a.words.4 == b.words.4 && a.words.5 == b.words.5
            && a.words.6 == b.words.6 && a.words.7 == b.words.7
    }

    public func hash(into hasher: inout Hasher) {
        let w = words
        hasher.combine(w.0); hasher.combine(w.1); hasher.combine(w.2); hasher.combine(w.3)
        hasher.combine(w.4); hasher.combine(w.5); hasher.combine(w.6); hasher.combine(w.7)
    }

    public var description: String { Hex.encode(bytes) }
}

enum FixedWords {
    /// The four big-endian words of 32 bytes (the caller checked the length).
    static func four(_ bytes: [UInt8]) -> (UInt64, UInt64, UInt64, UInt64) {
        bytes.withUnsafeBytes { p in (word(p, 0), word(p, 1), word(p, 2), word(p, 3)) }
    }

    /// The big-endian word at `8 * index` (the caller checked the length).
    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))
    }

    /// The words' bytes, big-endian, in order.
    static func store(_ words: UInt64...) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 8 * words.count) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (i, word) in words.enumerated() { raw.storeBytes(of: word.bigEndian, toByteOffset: 8 * i, as: UInt64.self) }
            initialized = 8 * words.count
        }
    }
}

/// Lower-case hexadecimal, for keys, digests and logs.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        encode(Array(bytes))
    }

    /// The same for an array, written straight into the string's storage (digests in every
    /// execution-log line take this path).
    public static func encode(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: 2 * bytes.count) { out in
            for (i, byte) in bytes.enumerated() {
                out[2 * i] = digit(byte >> 4)
                out[2 * i + 1] = digit(byte & 0x0f)
            }
            return 2 * bytes.count
        }
    }

    @inline(__always)
    private static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// Returns nil for an odd length or any character that is not a hex digit.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
