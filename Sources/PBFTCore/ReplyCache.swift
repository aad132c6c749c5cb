public import PBFTWire

/// The last request executed for each client and its result (§4.1): a retransmitted request
/// gets the cached reply, an older one is ignored, so each request executes at most once.
/// It is part of the checkpointed state, so it is encoded canonically (sorted by client).
public struct ReplyCache: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var timestamp: Timestamp
        public var result: [UInt8]
    }

    private var entries: [Principal: Entry] = [:]

    public init() {}

    public func entry(for requester: Principal) -> Entry? { entries[requester] }

    /// Whether a request with `timestamp` from `requester` was already executed (or
    /// superseded by a newer one).
    public func hasExecuted(_ requester: Principal, _ timestamp: Timestamp) -> Bool {
        guard let entry = entries[requester] else { return false }
        return timestamp <= entry.timestamp
    }

    public mutating func record(_ requester: Principal, _ timestamp: Timestamp, result: [UInt8]) {
        precondition(!hasExecuted(requester, timestamp), "request \(requester)/\(timestamp) executed twice")
        entries[requester] = Entry(timestamp: timestamp, result: result)
    }

    public var count: Int { entries.count }

    /// Canonical bytes: count, then for each requester in order its kind, id, timestamp
    /// and length-prefixed result.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        Bytes.append(UInt64(entries.count), to: &out)
        for (requester, entry) in entries.sorted(by: { $0.key < $1.key }) {
            switch requester {
            case .replica(let id): out.append(0); Bytes.append(UInt64(id.rawValue), to: &out)
            case .client(let id): out.append(1); Bytes.append(UInt64(id.rawValue), to: &out)
            case .operator: out.append(2); Bytes.append(UInt64(0), to: &out)
            }
            Bytes.append(entry.timestamp.rawValue, to: &out)
            Bytes.append(UInt64(entry.result.count), to: &out)
            out.append(contentsOf: entry.result)
        }
        return out
    }

    /// Decodes `encoded()`'s bytes starting at `offset`; advances `offset`. Nil if malformed.
    public static func decode(_ bytes: [UInt8], offset: inout Int) -> ReplyCache? {
        var cache = ReplyCache()
        guard let count = Bytes.readU64(bytes, &offset), count <= UInt64(bytes.count) else { return nil }
        for _ in 0..<count {
            guard offset < bytes.count else { return nil }
            let kind = bytes[offset]
            offset += 1
            guard let id = Bytes.readU64(bytes, &offset), id <= UInt64(UInt32.max),
                  let timestamp = Bytes.readU64(bytes, &offset),
                  let length = Bytes.readU64(bytes, &offset), length <= UInt64(bytes.count - offset)
            else { return nil }
            let requester: Principal
            switch kind {
            case 0: requester = .replica(ReplicaID(UInt32(id)))
            case 1: requester = .client(ClientID(UInt32(id)))
            case 2 where id == 0: requester = .operator
            default: return nil
            }
            let result = Array(bytes[offset..<(offset + Int(length))])
            offset += Int(length)
            cache.entries[requester] = Entry(timestamp: Timestamp(timestamp), result: result)
        }
        return cache
    }
}

/// Big-endian helpers for the core's own canonical encodings (state, reply cache).
public enum Bytes {
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        for shift: UInt64 in [56, 48, 40, 32, 24, 16, 8, 0] { out.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    public static func readU64(_ bytes: [UInt8], _ offset: inout Int) -> UInt64? {
        guard offset >= 0, bytes.count - offset >= 8 else { return nil }
        var value: UInt64 = 0
        for k in 0..<8 { value = value << 8 | UInt64(bytes[offset + k]) }
        offset += 8
        return value
    }
}
