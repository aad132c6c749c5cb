public import PBFTWire

/// A command for a running launcher, carried as JSON in the argument of an operator-signed
/// CONTROL message with command `launcher`. `pbft ctl` builds it from its arguments; the
/// launcher checks every field again (`validated(replicas:)`), since what arrives on a
/// socket is checked whoever signed it.
public struct LaunchRequest: Codable, Hashable, Sendable {
    public enum Verb: String, Codable, CaseIterable, Sendable {
        case status, kill, stop, pause, resume, restart, byzantine, twin, fault, heal, partition
    }

    public var verb: Verb
    /// A replica id, or `primary` (kill, stop, pause, resume, restart, byzantine, twin; fault
    /// on one replica).
    public var replica: String?
    /// restart: start with an empty data directory (and `--lost-state`).
    public var wipe: Bool?
    /// byzantine: the mode, or `off`.
    public var mode: String?
    /// twin: stop the twin instead of starting it.
    public var stopTwin: Bool?
    /// twin: start the twin from a copy of the replica's data directory (a cloned machine).
    public var copyData: Bool?
    /// fault: drop, delay, duplicate, reorder or corrupt.
    public var fault: String?
    /// fault: the probability, or the delay in milliseconds.
    public var value: Double?
    /// fault delay: the jitter in milliseconds.
    public var jitter: Double?
    /// fault: one direction of one link, from this replica ...
    public var from: String?
    /// ... to this one.
    public var to: String?
    /// partition: the groups, each a list of replica ids or `primary`.
    public var groups: [[String]]?
    /// partition: only the first group's datagrams to the others are lost.
    public var oneWay: Bool?

    public init(verb: Verb) { self.verb = verb }
}

/// A replica named by a command: an id, or whichever replica is primary when it runs.
public enum ReplicaTarget: Hashable, Sendable, CustomStringConvertible {
    case id(ReplicaID)
    case primary

    /// Parses `primary` or a replica id among `replicas`.
    public init(_ text: String, replicas: [ReplicaID]) throws(FaultError) {
        if text == "primary" {
            self = .primary
            return
        }
        guard let raw = UInt32(text) else { throw FaultError("'\(text)' is not a replica id or 'primary'") }
        guard replicas.contains(ReplicaID(raw)) else {
            throw FaultError("replica \(raw) is not in the cluster (replicas: \(replicas.map { "\($0.rawValue)" }.joined(separator: ", ")))")
        }
        self = .id(ReplicaID(raw))
    }

    public var description: String {
        switch self {
        case .id(let id): "\(id.rawValue)"
        case .primary: "primary"
        }
    }
}

extension LaunchRequest {
    /// The network fault this request sets, checked.
    public func packetFault() throws(FaultError) -> PacketFault {
        guard let name = fault else { throw FaultError("fault: name one of drop, delay, duplicate, reorder, corrupt") }
        guard let value else { throw FaultError("\(name): a value is needed") }
        let result: PacketFault
        switch name {
        case "drop": result = .drop(value)
        case "delay": result = .delay(ms: value, jitterMs: jitter ?? 0)
        case "duplicate": result = .duplicate(value)
        case "reorder": result = .reorder(value)
        case "corrupt": result = .corrupt(value)
        default: throw FaultError("unknown fault '\(name)'; faults: drop, delay, duplicate, reorder, corrupt")
        }
        try result.validate()
        return result
    }

    /// The replica this request names, checked against `replicas`.
    public func target(replicas: [ReplicaID]) throws(FaultError) -> ReplicaTarget {
        guard let replica else { throw FaultError("\(verb.rawValue): name a replica id or 'primary'") }
        return try ReplicaTarget(replica, replicas: replicas)
    }
}
