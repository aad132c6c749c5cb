/// A replica's identity inside a configuration. Never a bare integer on the wire.
public struct ReplicaID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "r\(rawValue)" }
}

/// A client's identity, as listed in the cluster file.
public struct ClientID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "c\(rawValue)" }
}

/// A view number `v`; the primary of view `v` is replica `v mod n` (§4.1).
public struct ViewNumber: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "v\(rawValue)" }
}

/// A sequence number `n` assigned by the primary (§4.2).
public struct SequenceNumber: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "n\(rawValue)" }
}

/// A configuration epoch; it advances each time a reconfiguration takes effect.
public struct Epoch: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "e\(rawValue)" }
}

/// A client's request timestamp `t`; per client, timestamps only grow (§4.1),
/// which gives exactly-once execution.
public struct Timestamp: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "t\(rawValue)" }
}

/// A launch's identity: 16 random bytes its launcher draws when it starts and writes to
/// `launch.json`. A command for a launcher names the run it is for, so a copy is refused by
/// the launcher of any other run, the same run directory launched again included.
public struct RunID: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 16
    public var high: UInt64, low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Exactly 32 hex digits, as `description` writes them; nil for anything else.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex), bytes.count == Self.byteCount else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        for k in 0..<8 { words.0 = words.0 << 8 | UInt64(bytes[k]) }
        for k in 8..<16 { words.1 = words.1 << 8 | UInt64(bytes[k]) }
        (high, low) = words
    }

    /// Big-endian: the high word's bytes, then the low word's.
    public var bytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) } }
    public var description: String { Hex.encode(bytes) }
}

/// Whoever signs a message: a replica, a client, or the operator (the key that signs
/// reconfiguration and control commands).
public enum Principal: Hashable, Sendable, CustomStringConvertible {
    case replica(ReplicaID)
    case client(ClientID)
    case `operator`

    public var description: String {
        switch self {
        case .replica(let id): id.description
        case .client(let id): id.description
        case .operator: "operator"
        }
    }
}
