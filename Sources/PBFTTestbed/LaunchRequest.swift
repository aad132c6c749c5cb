import PBFTByzantine
public import PBFTWire

/// A command for a running launcher, carried as JSON in the argument of an operator-signed
/// CONTROL message with command `launcher`. `pbft ctl` builds it from its arguments; the
/// launcher checks every field again (`validated(replicas:)`), since what arrives on a
/// socket is checked whoever signed it.
public struct LaunchRequest: Codable, Hashable, Sendable {
    public enum Verb: String, Codable, CaseIterable, Sendable {
        case status, kill, stop, pause, resume, restart, byzantine, twin, fault, heal, partition
        /// Reconfigurations (docs/faults.md): the launcher submits them, signed by the operator.
        case addReplica = "add-replica", removeReplica = "remove-replica", replaceReplica = "replace-replica", setF = "set-f"

        /// Whether the verb changes the membership rather than breaking something.
        public var isReconfiguration: Bool { [.addReplica, .removeReplica, .replaceReplica, .setF].contains(self) }
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
    /// add-replica: the new replica's id (default: the next id never used); replace-replica:
    /// the id of the replica that takes the place of `replica` (default: likewise).
    public var newReplica: String?
    /// add-replica, replace-replica: the new replica's public host and port (default: the
    /// members' host, a free port).
    public var host: String?
    public var port: Int?
    /// set-f: the new fault threshold.
    public var faultTolerance: Int?

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
    /// The new replica's --host and --port, checked.
    mutating func newcomer(_ flags: [String: String?]) throws(FaultError) {
        if case .some(let h?) = flags["host"] {
            guard ReplicaDescriptor.isValidHost(h) else { throw FaultError("--host '\(h)' is not a host name or address") }
            host = h
        }
        if case .some(let p?) = flags["port"] {
            guard let number = Int(p), (1...65535).contains(number) else { throw FaultError("--port '\(p)' is not a UDP port (1 to 65535)") }
            port = number
        }
    }

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

extension LaunchRequest {
    /// Parses a command written as `pbft ctl` takes it, as experiment timelines write them:
    /// `kill primary`, `restart 2 --wipe`, `byzantine 1 equivocatingPrimary`, `twin 3 --copy-data`,
    /// `drop 20% --replica 1`, `delay 50 --jitter 10 --from 0 --to 1`, `partition 0,1/2,3 --one-way`,
    /// `heal`, `pause 1`, `resume 1`, `stop 1`, and the reconfigurations `add-replica [ID]
    /// [--host H] [--port P]`, `remove-replica I|primary`, `replace-replica I|primary [NEW]`, `set-f F`.
    public init(words text: String, replicas: [ReplicaID]) throws(FaultError) {
        var words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard !words.isEmpty else { throw FaultError("an empty command") }
        let verbWord = words.removeFirst()
        var flags: [String: String?] = [:]
        var positional: [String] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word.hasPrefix("--") {
                let name = String(word.dropFirst(2))
                if ["wipe", "stop", "copy-data", "one-way"].contains(name) {
                    flags[name] = .some(nil)
                } else if ["replica", "from", "to", "jitter", "host", "port"].contains(name) {
                    guard index + 1 < words.count else { throw FaultError("\(word) needs a value") }
                    flags[name] = .some(words[index + 1])
                    index += 1
                } else {
                    throw FaultError("unknown option \(word)")
                }
            } else {
                positional.append(word)
            }
            index += 1
        }
        func needs(_ count: Int, _ usage: String) throws(FaultError) {
            guard positional.count == count else { throw FaultError("\(verbWord): expected \(usage)") }
        }
        func allow(_ names: [String]) throws(FaultError) {
            for name in flags.keys where !names.contains(name) { throw FaultError("\(verbWord) takes no --\(name)") }
        }
        switch verbWord {
        case "kill", "stop", "pause", "resume", "restart":
            try needs(1, "a replica id or 'primary'")
            try allow(verbWord == "restart" ? ["wipe"] : [])
            self.init(verb: Verb(rawValue: verbWord)!)
            replica = positional[0]
            if verbWord == "restart" { wipe = flags["wipe"] != nil }
        case "byzantine":
            try needs(2, "a replica and a mode")
            try allow([])
            guard positional[1] == "off" || ByzantineBehaviour(rawValue: positional[1]) != nil else {
                throw FaultError("unknown mode '\(positional[1])'; modes: \(ByzantineBehaviour.allCases.map(\.rawValue).joined(separator: ", ")), off")
            }
            self.init(verb: .byzantine)
            replica = positional[0]
            mode = positional[1]
        case "twin":
            try needs(1, "a replica id or 'primary'")
            try allow(["stop", "copy-data"])
            self.init(verb: .twin)
            replica = positional[0]
            stopTwin = flags["stop"] != nil
            copyData = flags["copy-data"] != nil
        case "drop", "duplicate", "reorder", "corrupt", "delay":
            try needs(1, verbWord == "delay" ? "milliseconds" : "a probability")
            try allow(["replica", "from", "to"] + (verbWord == "delay" ? ["jitter"] : []))
            self.init(verb: .fault)
            fault = verbWord
            if verbWord == "delay" {
                guard let ms = Double(positional[0]) else { throw FaultError("delay '\(positional[0])': milliseconds") }
                value = ms
                if case .some(let text?) = flags["jitter"] {
                    guard let j = Double(text) else { throw FaultError("--jitter '\(text)': milliseconds") }
                    jitter = j
                }
            } else {
                value = try PacketFault.probability(positional[0])
            }
            if case .some(let r?) = flags["replica"] { replica = r }
            if case .some(let a?) = flags["from"] { from = a }
            if case .some(let b?) = flags["to"] { to = b }
            guard (from == nil) == (to == nil) else { throw FaultError("--from and --to go together") }
            guard replica == nil || from == nil else { throw FaultError("give --replica or --from/--to, not both") }
            _ = try packetFault()
        case "partition":
            try needs(1, "groups like 0,1/2,3")
            try allow(["one-way"])
            self.init(verb: .partition)
            groups = positional[0].split(separator: "/", omittingEmptySubsequences: false).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            oneWay = flags["one-way"] != nil
        case "heal":
            try needs(0, "nothing")
            try allow([])
            self.init(verb: .heal)
        case "add-replica":
            guard positional.count <= 1 else { throw FaultError("add-replica: expected at most a new replica id") }
            try allow(["host", "port"])
            self.init(verb: .addReplica)
            newReplica = positional.first
            try newcomer(flags)
        case "replace-replica":
            guard (1...2).contains(positional.count) else { throw FaultError("replace-replica: expected a replica id or 'primary', and optionally the new replica's id") }
            try allow(["host", "port"])
            self.init(verb: .replaceReplica)
            replica = positional[0]
            newReplica = positional.count > 1 ? positional[1] : nil
            try newcomer(flags)
        case "remove-replica":
            try needs(1, "a replica id or 'primary'")
            try allow([])
            self.init(verb: .removeReplica)
            replica = positional[0]
        case "set-f":
            try needs(1, "the new f")
            try allow([])
            guard let f = Int(positional[0]), f >= 1 else { throw FaultError("set-f '\(positional[0])': f is a whole number, at least 1") }
            self.init(verb: .setF)
            faultTolerance = f
        default:
            throw FaultError("unknown command '\(verbWord)'; commands: kill, stop, pause, resume, restart, byzantine, twin, drop, delay, duplicate, reorder, corrupt, partition, heal, add-replica, remove-replica, replace-replica, set-f")
        }
        if let name = newReplica {
            guard UInt32(name) != nil else { throw FaultError("'\(name)' is not a replica id for the new replica") }
            guard !replicas.contains(ReplicaID(UInt32(name)!)) else { throw FaultError("replica \(name) is already in the cluster") }
        }
        // Check the replicas named now, not when the step fires.
        for name in [replica, from, to].compactMap({ $0 }) + (groups ?? []).flatMap({ $0 }) {
            _ = try ReplicaTarget(name, replicas: replicas)
        }
    }
}
