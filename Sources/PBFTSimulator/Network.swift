import PBFTByzantine
public import PBFTWire

/// A node of the simulated network.
public enum NodeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    case replica(ReplicaID)
    case client(ClientID)
    /// The operator, who submits reconfigurations.
    case operatorNode

    public var description: String {
        switch self {
        case .replica(let id): id.description
        case .client(let id): id.description
        case .operatorNode: "operator"
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

/// What a node refused before its core or client saw it, by reason: the runtime's
/// traffic counters (`pbft ctl status`'s "rejected"), for the simulated network.
public struct RejectionCounters: Hashable, Sendable, CustomStringConvertible {
    public var malformed = 0
    public var unknownSigner = 0
    public var badSignature = 0
    /// Raw datagrams the datagram layer dropped: empty, of an unknown kind, or fragments.
    public var datagramsDropped = 0

    public init() {}

    public var total: Int { malformed + unknownSigner + badSignature + datagramsDropped }

    mutating func count(_ rejection: Rejection) {
        switch rejection {
        case .malformed: malformed += 1
        case .unknownSigner: unknownSigner += 1
        case .badSignature: badSignature += 1
        }
    }

    public var description: String {
        "malformed=\(malformed) unknown_signer=\(unknownSigner) bad_signature=\(badSignature) datagrams_dropped=\(datagramsDropped)"
    }
}

/// The bytes of one datagram, shared by every copy of them on the network (a broadcast's,
/// a duplicate's), with what the receivers' authenticator made of them.
///
/// Every receiver in a simulation opens frames with the same authenticator, and opening is a
/// function of the bytes and the keys alone, so the first receiver's outcome is every
/// receiver's: the simulator remembers it, tagged with the authenticator it came from, and
/// hands the same verified frame (or the same rejection) to the other receivers.
final class Payload {
    let bytes: [UInt8]
    /// Junk in the runtime's datagram format (a kind byte first), not a bare frame.
    let raw: Bool
    var opened: (authenticator: Int, outcome: Result<Authenticated<Frame>, Rejection>)?

    init(_ bytes: [UInt8], raw: Bool = false) {
        self.bytes = bytes
        self.raw = raw
    }
}

/// The deterministic network: datagrams (as bytes, through the real wire code) wait in
/// per-tick buckets and are delivered in the order they were sent within a tick.
///
/// A datagram holds one encoded frame: the simulated network never fragments, so it leaves
/// the runtime's datagram layer out. Only a faulty replica's junk is `raw`, in the runtime's
/// datagram format (a kind byte first, see PBFTByzantine's `GarbageKind`); the receiver
/// unwraps it as the runtime would a whole frame, and drops anything else.
struct Network {
    struct Datagram {
        var from: NodeID
        var to: NodeID
        var payload: Payload
    }

    /// The runtime's kind byte before a whole frame (PBFTRuntime's `DatagramKind.whole`).
    static let wholeFrameKind: UInt8 = 0x50

    /// The frame a raw datagram carries whole; nil for one that is empty, of an unknown kind,
    /// a fragment (no frame here is ever fragmented, so a fragment is junk: the runtime
    /// would drop it, buffer it until it expires, or complete a frame that does not decode),
    /// or a bundle (junk bundles hold only mangled frames, which the runtime would refuse
    /// one by one).
    static func wholeFrame(in datagram: [UInt8]) -> [UInt8]? {
        guard datagram.first == wholeFrameKind else { return nil }
        return Array(datagram.dropFirst())
    }

    var faults: NetworkFaults
    var isolations: [Isolation] {
        didSet { isolatedReplicas = Set(isolations.map(\.replica)) }
    }
    /// Replicas some isolation names: for every other node the per-datagram check is one lookup.
    private var isolatedReplicas: Set<ReplicaID>
    /// Datagrams due at tick t wait in `buckets[t % buckets.count]`: a ring longer than any delay.
    private var buckets: [[Datagram]]
    private(set) var sent = 0
    private(set) var lost = 0
    private(set) var duplicated = 0
    private(set) var inFlight = 0

    init(faults: NetworkFaults, isolations: [Isolation]) {
        self.faults = faults
        self.isolations = isolations
        isolatedReplicas = Set(isolations.map(\.replica))
        buckets = Array(repeating: [], count: faults.delayTicks.upperBound + 1)
    }

    /// Whether a partition is still to end after `tick`.
    func heals(after tick: UInt64) -> Bool {
        isolations.contains { $0.ticks.upperBound > tick }
    }

    func isIsolated(_ node: NodeID, at tick: UInt64) -> Bool {
        guard case .replica(let id) = node, isolatedReplicas.contains(id) else { return false }
        return isolations.contains { $0.replica == id && $0.ticks.contains(tick) }
    }

    mutating func send(_ bytes: [UInt8], from: NodeID, to: NodeID, now: UInt64, rng: inout SplitMix64, raw: Bool = false) {
        send(Payload(bytes, raw: raw), from: from, to: to, now: now, rng: &rng)
    }

    mutating func send(_ payload: Payload, from: NodeID, to: NodeID, now: UInt64, rng: inout SplitMix64) {
        sent += 1
        if isIsolated(from, at: now) || rng.chance(faults.loss) {
            lost += 1
            return
        }
        let copies = rng.chance(faults.duplication) ? 2 : 1
        duplicated += copies - 1
        for _ in 0..<copies {
            let delay = Int.random(in: faults.delayTicks, using: &rng)
            if delay >= buckets.count { grow(to: delay + 1, now: now) }
            buckets[Int((now + UInt64(delay)) % UInt64(buckets.count))].append(Datagram(from: from, to: to, payload: payload))
            inFlight += 1
        }
    }

    /// A longer ring for a longer delay (faults changed mid-run), each datagram in its tick's bucket.
    private mutating func grow(to count: Int, now: UInt64) {
        var ring = Array(repeating: [Datagram](), count: count)
        for offset in 1..<UInt64(buckets.count) {
            let due = now + offset
            ring[Int(due % UInt64(count))] = buckets[Int(due % UInt64(buckets.count))]
        }
        buckets = ring
    }

    /// The datagrams due at `tick`, minus those addressed to a replica isolated then.
    /// Called once for each tick, in order, after everything sent before it.
    mutating func due(at tick: UInt64) -> [Datagram] {
        let slot = Int(tick % UInt64(buckets.count))
        let due = buckets[slot]
        guard !due.isEmpty else { return [] }
        buckets[slot] = []
        inFlight -= due.count
        guard !isolatedReplicas.isEmpty else { return due }
        return due.filter { datagram in
            if isIsolated(datagram.to, at: tick) {
                lost += 1
                return false
            }
            return true
        }
    }
}
