public import PBFTCore
public import PBFTWire

/// An operation on the replicated key-value store.
public enum KeyValueOperation: Hashable, Sendable {
    case get(key: [UInt8])
    case put(key: [UInt8], value: [UInt8])
    case delete(key: [UInt8])
    /// Sets `key` to `new` if its current value is `expected` (nil: the key is absent).
    case compareAndSet(key: [UInt8], expected: [UInt8]?, new: [UInt8])

    public static let keyBytesMax = 1024

    /// Encoding: a kind byte (1 get, 2 put, 3 delete, 4 compare-and-set), then u32-length-
    /// prefixed fields; compare-and-set's `expected` has a presence byte first.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func field(_ bytes: [UInt8]) {
            let n = UInt32(bytes.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
            out += bytes
        }
        switch self {
        case .get(let key): out.append(1); field(key)
        case .put(let key, let value): out.append(2); field(key); field(value)
        case .delete(let key): out.append(3); field(key)
        case .compareAndSet(let key, let expected, let new):
            out.append(4); field(key)
            if let expected { out.append(1); field(expected) } else { out.append(0) }
            field(new)
        }
        return out
    }

    /// Nil for bytes that are not exactly one operation.
    public static func decode(_ bytes: [UInt8]) -> KeyValueOperation? {
        var offset = 0
        func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        func field(limit: Int) -> [UInt8]? {
            guard bytes.count - offset >= 4 else { return nil }
            let n = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            guard n <= limit, n <= bytes.count - offset else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }
        let operation: KeyValueOperation?
        switch byte() {
        case 1: operation = field(limit: keyBytesMax).map { .get(key: $0) }
        case 2:
            guard let key = field(limit: keyBytesMax), let value = field(limit: bytes.count) else { return nil }
            operation = .put(key: key, value: value)
        case 3: operation = field(limit: keyBytesMax).map { .delete(key: $0) }
        case 4:
            guard let key = field(limit: keyBytesMax), let present = byte(), present <= 1 else { return nil }
            var expected: [UInt8]?
            if present == 1 {
                guard let value = field(limit: bytes.count) else { return nil }
                expected = value
            }
            guard let new = field(limit: bytes.count) else { return nil }
            operation = .compareAndSet(key: key, expected: expected, new: new)
        default: operation = nil
        }
        return offset == bytes.count ? operation : nil
    }
}

/// What an operation returned.
public enum KeyValueResult: Hashable, Sendable {
    /// put, delete (the key may not have existed), a successful compare-and-set.
    case ok
    case value([UInt8])
    case notFound
    /// compare-and-set found another value (nil: the key is absent).
    case mismatch(current: [UInt8]?)
    case malformed

    public func encoded() -> [UInt8] {
        switch self {
        case .ok: [0]
        case .value(let v): [1] + v
        case .notFound: [2]
        case .mismatch(nil): [3]
        case .mismatch(let current?): [4] + current
        case .malformed: [5]
        }
    }

    public static func decode(_ bytes: [UInt8]) -> KeyValueResult? {
        guard let kind = bytes.first else { return nil }
        let rest = Array(bytes.dropFirst())
        switch kind {
        case 0 where rest.isEmpty: return .ok
        case 1: return .value(rest)
        case 2 where rest.isEmpty: return .notFound
        case 3 where rest.isEmpty: return .mismatch(current: nil)
        case 4: return .mismatch(current: rest)
        case 5 where rest.isEmpty: return .malformed
        default: return nil
        }
    }
}

/// The default replicated application: a deterministic map from byte keys to byte values.
public struct KeyValueStore: StateMachine, Hashable {
    private var entries: [[UInt8]: [UInt8]] = [:]

    public init() {}

    public var count: Int { entries.count }
    public subscript(key: [UInt8]) -> [UInt8]? { entries[key] }

    public mutating func apply(_ operation: KeyValueOperation) -> KeyValueResult {
        switch operation {
        case .get(let key):
            return entries[key].map(KeyValueResult.value) ?? .notFound
        case .put(let key, let value):
            entries[key] = value
            return .ok
        case .delete(let key):
            entries[key] = nil
            return .ok
        case .compareAndSet(let key, let expected, let new):
            guard entries[key] == expected else { return .mismatch(current: entries[key]) }
            entries[key] = new
            return .ok
        }
    }

    public mutating func execute(_ operation: [UInt8], from requester: Principal) -> [UInt8] {
        guard let decoded = KeyValueOperation.decode(operation) else { return KeyValueResult.malformed.encoded() }
        return apply(decoded).encoded()
    }

    /// Entries sorted by key, each key and value u32-length-prefixed, after a u64 count.
    public func snapshot() -> [UInt8] {
        var out: [UInt8] = []
        Bytes.append(UInt64(entries.count), to: &out)
        for (key, value) in entries.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            Self.appendField(key, to: &out)
            Self.appendField(value, to: &out)
        }
        return out
    }

    public mutating func restore(_ snapshot: [UInt8]) throws(StateMachineError) {
        var offset = 0
        guard let count = Bytes.readU64(snapshot, &offset), count <= UInt64(snapshot.count) else {
            throw StateMachineError("key-value snapshot: bad entry count")
        }
        var restored: [[UInt8]: [UInt8]] = [:]
        var previous: [UInt8]?
        for index in 0..<count {
            guard let key = Self.readField(snapshot, &offset), let value = Self.readField(snapshot, &offset) else {
                throw StateMachineError("key-value snapshot: entry \(index) is truncated")
            }
            if let previous, !previous.lexicographicallyPrecedes(key) {
                throw StateMachineError("key-value snapshot: keys out of order at entry \(index)")
            }
            previous = key
            restored[key] = value
        }
        guard offset == snapshot.count else { throw StateMachineError("key-value snapshot: trailing bytes") }
        entries = restored
    }

    private static func appendField(_ bytes: [UInt8], to out: inout [UInt8]) {
        let n = UInt32(bytes.count)
        out += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
        out += bytes
    }

    private static func readField(_ bytes: [UInt8], _ offset: inout Int) -> [UInt8]? {
        guard bytes.count - offset >= 4 else { return nil }
        let n = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
        guard n <= bytes.count - offset - 4 else { return nil }
        defer { offset += 4 + n }
        return Array(bytes[(offset + 4)..<(offset + 4 + n)])
    }
}
