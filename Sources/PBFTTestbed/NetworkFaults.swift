public import PBFTWire

/// What the fault proxy does to datagrams on one path, netem-style. Probabilities are in
/// 0...1, times in milliseconds.
public struct PacketFaults: Codable, Hashable, Sendable {
    /// Each datagram is lost with this probability.
    public var drop = 0.0
    /// Each datagram waits this long before it is forwarded ...
    public var delayMs = 0.0
    /// ... give or take up to this much, uniformly.
    public var jitterMs = 0.0
    /// Each datagram is also forwarded a second time (a few milliseconds later) with this probability.
    public var duplicate = 0.0
    /// Each datagram is held back by an extra random wait with this probability, so that
    /// datagrams sent after it overtake it.
    public var reorder = 0.0
    /// Each datagram has one to three of its bytes flipped with this probability.
    public var corrupt = 0.0

    public init() {}

    public var isNone: Bool { self == PacketFaults() }

    /// The faults of two paths one after the other: a datagram must survive both drops and
    /// waits both delays; the chance of each other fault is the chance that either applies it.
    public func then(_ other: PacketFaults) -> PacketFaults {
        func either(_ a: Double, _ b: Double) -> Double { 1 - (1 - a) * (1 - b) }
        var combined = PacketFaults()
        combined.drop = either(drop, other.drop)
        combined.delayMs = delayMs + other.delayMs
        combined.jitterMs = jitterMs + other.jitterMs
        combined.duplicate = either(duplicate, other.duplicate)
        combined.reorder = either(reorder, other.reorder)
        combined.corrupt = either(corrupt, other.corrupt)
        return combined
    }

    /// One line for status and the event log, e.g. `drop 30% delay 20±5 ms`.
    public var summary: String {
        var parts: [String] = []
        func percent(_ p: Double) -> String { p * 100 == (p * 100).rounded() ? "\(Int(p * 100))%" : "\(p * 100)%" }
        func ms(_ x: Double) -> String { x == x.rounded() ? "\(Int(x))" : "\(x)" }
        if drop > 0 { parts.append("drop \(percent(drop))") }
        if delayMs > 0 || jitterMs > 0 { parts.append("delay \(ms(delayMs))" + (jitterMs > 0 ? "±\(ms(jitterMs))" : "") + " ms") }
        if duplicate > 0 { parts.append("duplicate \(percent(duplicate))") }
        if reorder > 0 { parts.append("reorder \(percent(reorder))") }
        if corrupt > 0 { parts.append("corrupt \(percent(corrupt))") }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }
}

/// One fault kind with its value: what `pbft ctl drop|delay|duplicate|reorder|corrupt` sets.
public enum PacketFault: Hashable, Sendable {
    case drop(Double)
    case delay(ms: Double, jitterMs: Double)
    case duplicate(Double)
    case reorder(Double)
    case corrupt(Double)

    /// A probability as commands write it: 0.3 or 30%.
    public static func probability(_ text: String) throws(FaultError) -> Double {
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let value, value.isFinite, (0...1).contains(value) else { throw FaultError("'\(text)': a probability is 0 to 1 or 0% to 100%") }
        return value
    }

    /// Checks the value: probabilities in 0...1, delays in 0...60,000 ms.
    public func validate() throws(FaultError) {
        func probability(_ name: String, _ p: Double) throws(FaultError) {
            guard p.isFinite, (0...1).contains(p) else { throw FaultError("\(name) \(p): a probability is between 0 and 1 (0.3 is 30%)") }
        }
        switch self {
        case .drop(let p): try probability("drop", p)
        case .duplicate(let p): try probability("duplicate", p)
        case .reorder(let p): try probability("reorder", p)
        case .corrupt(let p): try probability("corrupt", p)
        case .delay(let ms, let jitter):
            guard ms.isFinite, (0...60_000).contains(ms) else { throw FaultError("delay \(ms): milliseconds between 0 and 60000") }
            guard jitter.isFinite, (0...60_000).contains(jitter) else { throw FaultError("jitter \(jitter): milliseconds between 0 and 60000") }
        }
    }

    /// `faults` with this fault's field set (others kept).
    public func applied(to faults: PacketFaults) -> PacketFaults {
        var result = faults
        switch self {
        case .drop(let p): result.drop = p
        case .delay(let ms, let jitter): result.delayMs = ms; result.jitterMs = jitter
        case .duplicate(let p): result.duplicate = p
        case .reorder(let p): result.reorder = p
        case .corrupt(let p): result.corrupt = p
        }
        return result
    }
}

/// One end of a path through the proxy: a replica, or any client (clients and the
/// operator's tools are not told apart).
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    case replica(ReplicaID)
    case client

    public var description: String {
        switch self {
        case .replica(let id): "r\(id.rawValue)"
        case .client: "client"
        }
    }
}

/// A directed path between two replicas.
public struct Link: Hashable, Sendable, CustomStringConvertible {
    public var from: ReplicaID
    public var to: ReplicaID

    public init(from: ReplicaID, to: ReplicaID) {
        self.from = from
        self.to = to
    }

    public var description: String { "r\(from.rawValue)->r\(to.rawValue)" }
}

/// A partition of the replicas into groups that cannot reach one another. One-way: only
/// datagrams from the first group to the others are lost.
public struct Partition: Hashable, Sendable, CustomStringConvertible {
    public let groups: [[ReplicaID]]
    public let oneWay: Bool
    /// The directed links this partition cuts, computed once: the proxy asks per datagram.
    public let blockedLinks: Set<Link>

    /// `groups` over `replicas`; replicas named in no group form one more group. Groups must
    /// not overlap, name only members, and leave at least two groups.
    public init(groups named: [[ReplicaID]], oneWay: Bool, replicas: [ReplicaID]) throws(FaultError) {
        var seen = Set<ReplicaID>()
        for group in named {
            guard !group.isEmpty else { throw FaultError("partition: an empty group") }
            for id in group {
                guard replicas.contains(id) else { throw FaultError("partition: replica \(id.rawValue) is not in the cluster") }
                guard seen.insert(id).inserted else { throw FaultError("partition: replica \(id.rawValue) is named twice") }
            }
        }
        var groups = named
        let rest = replicas.filter { !seen.contains($0) }
        if !rest.isEmpty { groups.append(rest) }
        guard groups.count >= 2 else { throw FaultError("partition: every replica is in one group; name at least two groups, e.g. 0,1/2,3, or one group to isolate it") }
        self.groups = groups
        self.oneWay = oneWay
        var links = Set<Link>()
        for (index, group) in groups.enumerated() {
            for (otherIndex, other) in groups.enumerated() where otherIndex != index && (!oneWay || index == 0) {
                for a in group { for b in other { links.insert(Link(from: a, to: b)) } }
            }
        }
        blockedLinks = links
    }

    public var description: String {
        groups.map { $0.map { "\($0.rawValue)" }.joined(separator: ",") }.joined(separator: oneWay ? " -> " : " / ")
    }
}

/// Every network fault in force. The faults of a datagram from `a` to `b` are those set for
/// all traffic, then `a`'s, then the link's, then `b`'s (`effective(from:to:)`).
public struct NetworkFaults: Hashable, Sendable {
    /// Applied to every datagram.
    public var everywhere = PacketFaults()
    /// Applied to every datagram into or out of the replica, client traffic included.
    public var replicas: [ReplicaID: PacketFaults] = [:]
    /// Applied to datagrams from one replica to another.
    public var links: [Link: PacketFaults] = [:]
    /// The partition in force, if any.
    public var partition: Partition?

    public init() {}

    public var isNone: Bool { everywhere.isNone && replicas.values.allSatisfy(\.isNone) && links.values.allSatisfy(\.isNone) && partition == nil }

    /// What happens to a datagram from `from` to `to`; nil when a partition cuts the path.
    public func effective(from: Endpoint, to: Endpoint) -> PacketFaults? {
        if case .replica(let a) = from, case .replica(let b) = to, let partition, partition.blockedLinks.contains(Link(from: a, to: b)) {
            return nil
        }
        var faults = everywhere
        if case .replica(let a) = from, let own = replicas[a] { faults = faults.then(own) }
        if case .replica(let a) = from, case .replica(let b) = to, let link = links[Link(from: a, to: b)] { faults = faults.then(link) }
        if case .replica(let b) = to, let own = replicas[b] { faults = faults.then(own) }
        return faults
    }

    /// Lines for status, one per fault in force.
    public var summaryLines: [String] {
        var lines: [String] = []
        if !everywhere.isNone { lines.append("all traffic: \(everywhere.summary)") }
        for (id, faults) in replicas.sorted(by: { $0.key < $1.key }) where !faults.isNone {
            lines.append("r\(id.rawValue) in and out: \(faults.summary)")
        }
        for (link, faults) in links.sorted(by: { ($0.key.from, $0.key.to) < ($1.key.from, $1.key.to) }) where !faults.isNone {
            lines.append("\(link): \(faults.summary)")
        }
        if let partition { lines.append("partition \(partition)") }
        return lines
    }
}

/// A fault command that cannot be carried out, with the reason in one line.
public struct FaultError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
