import PBFTByzantine
public import PBFTWire

/// A node of the simulated network.
public enum NodeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    case replica(ReplicaID)
    case client(ClientID)

    public var description: String {
        switch self {
        case .replica(let id): id.description
        case .client(let id): id.description
        }
    }
}

/// Faults of the simulated network, drawn per datagram from the simulation's seeded
/// generator: loss, duplication, and a delay in `delayTicks` (so datagrams reorder).
public struct NetworkFaults: Hashable, Sendable {
    public var loss: Double
    public var duplication: Double
    public var delayTicks: ClosedRange<Int>

    public init(loss: Double = 0, duplication: Double = 0, delayTicks: ClosedRange<Int> = 1...1) {
        precondition(delayTicks.lowerBound >= 1, "a datagram takes at least one tick")
        self.loss = loss
        self.duplication = duplication
        self.delayTicks = delayTicks
    }

    public static let none = NetworkFaults()
}

/// A replica cut off from everyone during `ticks`: nothing it sends or is sent arrives.
public struct Isolation: Hashable, Sendable {
    public var replica: ReplicaID
    public var ticks: Range<UInt64>

    public init(replica: ReplicaID, ticks: Range<UInt64>) {
        self.replica = replica
        self.ticks = ticks
    }
}

/// The deterministic network: datagrams (as bytes, through the real wire code) wait in
/// per-tick buckets and are delivered in the order they were sent within a tick.
struct Network {
    struct Datagram {
        var from: NodeID
        var to: NodeID
        var bytes: [UInt8]
    }

    var faults: NetworkFaults
    var isolations: [Isolation]
    private var buckets: [UInt64: [Datagram]] = [:]
    private(set) var sent = 0
    private(set) var lost = 0
    private(set) var duplicated = 0
    private(set) var inFlight = 0

    init(faults: NetworkFaults, isolations: [Isolation]) {
        self.faults = faults
        self.isolations = isolations
    }

    func isIsolated(_ node: NodeID, at tick: UInt64) -> Bool {
        guard case .replica(let id) = node else { return false }
        return isolations.contains { $0.replica == id && $0.ticks.contains(tick) }
    }

    mutating func send(_ bytes: [UInt8], from: NodeID, to: NodeID, now: UInt64, rng: inout SplitMix64) {
        sent += 1
        if isIsolated(from, at: now) || rng.chance(faults.loss) {
            lost += 1
            return
        }
        let copies = rng.chance(faults.duplication) ? 2 : 1
        duplicated += copies - 1
        for _ in 0..<copies {
            let delay = UInt64(Int.random(in: faults.delayTicks, using: &rng))
            buckets[now + delay, default: []].append(Datagram(from: from, to: to, bytes: bytes))
            inFlight += 1
        }
    }

    /// The datagrams due at `tick`, minus those addressed to a replica isolated then.
    mutating func due(at tick: UInt64) -> [Datagram] {
        guard let due = buckets.removeValue(forKey: tick) else { return [] }
        inFlight -= due.count
        return due.filter { datagram in
            if isIsolated(datagram.to, at: tick) {
                lost += 1
                return false
            }
            return true
        }
    }
}
