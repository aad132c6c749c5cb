public import PBFTByzantine
public import PBFTCore
import PBFTCrypto
public import PBFTKeyValue
public import PBFTWire

/// Everything that decides a simulated run. The same options give the same run, bit for bit.
public struct SimulationOptions: Hashable, Sendable {
    public var seed: UInt64
    public var replicas: Int
    /// f of the first membership; nil: the largest `replicas` allows, (n - 1) / 3.
    public var faultTolerance: Int?
    public var clients: Int
    public var requestsPerClient: Int
    /// Distinct keys the clients' operations touch.
    public var keySpace: Int
    public var valueBytes: Int
    public var faults: NetworkFaults
    public var isolations: [Isolation]
    /// Real Ed25519 instead of the keyed-BLAKE2b stand-in.
    public var realSignatures: Bool
    public var checkpointInterval: Int
    public var logWindow: Int
    public var batchSizeMax: Int
    public var sequencesInFlightMax: Int
    public var clientRetransmitTicks: Int
    /// The run stops here whether or not every request completed.
    public var ticksMax: UInt64
    /// Faulty replicas and what they do (at most f together with crashed ones).
    public var byzantine: [ReplicaID: ByzantineBehaviour] = [:]
    /// Replicas that stop at a tick and, if `restartTick` is set, resume with their state.
    public var crashes: [Crash] = []
    /// Global stabilisation time: from here on the network neither loses, duplicates nor
    /// partitions, and every operation must complete within `livenessBoundTicks`.
    public var healTick: UInt64?
    public var livenessBoundTicks: UInt64 = 20_000
    public var viewChangeTimeoutTicks: Int = 400
    /// Clients only put (to grow the state quickly).
    public var writeOnly = false
    /// Junk datagrams a `garbageFlood` replica sends each other replica per tick, at most
    /// (the runtime's 50 would make runs slow without testing anything more).
    public var garbagePerPeerMax = 2
    /// Reconfigurations the operator submits, in order: each at its tick or once the one
    /// before it completed, whichever is later. A replica a change adds starts (empty, from
    /// the configuration it joins) when the change is submitted.
    public var reconfigurations: [ScheduledReconfiguration] = []
    /// Copies of the same bytes (a broadcast's, a duplicate's) are decoded and verified once
    /// for all their receivers: they share one authenticator, so the outcome is the same for
    /// each (`Payload`). Off, every receiver decodes and verifies its own copy, as separate
    /// processes do; the swarm keeps it off in a tenth of its runs.
    public var authenticateOncePerPayload = true
    /// End the run once its correct replicas stalled after the clients finished, rather
    /// than wait the full 20,000 ticks for them to converge (`Simulation.run`). The swarm
    /// sets it; scenarios that wait for something slow (a large state transfer) do not.
    public var stopWhenStalled = false
    /// The shortest stall that ends a run.
    public var stallTicksMin: UInt64 = 2_000
    /// Replicas whose every message in and out, and every change of where they stand, the
    /// run writes to `SimulationResult.trace` (`pbft sim --trace`): for diagnosing a seed.
    public var traced: Set<ReplicaID> = []

    public init(
        seed: UInt64, replicas: Int = 4, clients: Int = 4, requestsPerClient: Int = 25, keySpace: Int = 16,
        valueBytes: Int = 8, faults: NetworkFaults = .none, isolations: [Isolation] = [], realSignatures: Bool = false,
        checkpointInterval: Int = 8, logWindow: Int = 16, batchSizeMax: Int = 8, sequencesInFlightMax: Int = 8,
        clientRetransmitTicks: Int = 60, ticksMax: UInt64 = 20_000
    ) {
        self.seed = seed
        self.replicas = replicas
        self.clients = clients
        self.requestsPerClient = requestsPerClient
        self.keySpace = keySpace
        self.valueBytes = valueBytes
        self.faults = faults
        self.isolations = isolations
        self.realSignatures = realSignatures
        self.checkpointInterval = checkpointInterval
        self.logWindow = logWindow
        self.batchSizeMax = batchSizeMax
        self.sequencesInFlightMax = sequencesInFlightMax
        self.clientRetransmitTicks = clientRetransmitTicks
        self.ticksMax = ticksMax
    }

    /// The adversarial swarm's run: on top of `random`, up to f faulty replicas (each
    /// Byzantine with a random behaviour, or crashed, some restarting), partitions, and loss
    /// until a global stabilisation time, after which every operation must complete.
    public static func adversarial(seed: UInt64, replicas: Int) -> SimulationOptions {
        var options = random(seed: seed, replicas: replicas)
        var rng = SplitMix64(seed: seed ^ 0xBAD5EED)
        let f = Membership.maxFaultTolerance(replicas: replicas)
        let heal = UInt64.random(in: 500...2_500, using: &rng)
        options.healTick = heal
        options.viewChangeTimeoutTicks = Int.random(in: 100...300, using: &rng)
        options.livenessBoundTicks = 30_000
        options.ticksMax = heal + 60_000
        var ids = (0..<replicas).map { ReplicaID(UInt32($0)) }
        ids.shuffle(using: &rng)
        let faulty = Int.random(in: 0...f, using: &rng)
        for id in ids.prefix(faulty) {
            if rng.chance(0.6) {
                options.byzantine[id] = ByzantineBehaviour.allCases.randomElement(using: &rng)!
            } else {
                let at = UInt64.random(in: 0...heal, using: &rng)
                let restart: UInt64? = rng.chance(0.5) ? at + UInt64.random(in: 50...1_000, using: &rng) : nil
                // A third of the restarts come back without their durable state (amnesia).
                options.crashes.append(Crash(replica: id, tick: at, restartTick: restart, amnesia: restart != nil && rng.chance(0.33)))
            }
        }
        // Partitions before GST may cut off any replica, faulty or not.
        for _ in 0..<Int.random(in: 0...2, using: &rng) {
            let start = UInt64.random(in: 0..<heal, using: &rng)
            let end = min(heal, start + UInt64.random(in: 50...800, using: &rng))
            options.isolations.append(Isolation(replica: ReplicaID(UInt32.random(in: 0..<UInt32(replicas), using: &rng)), ticks: start..<end))
        }
        let faultyReplicas = Set(ids.prefix(faulty))
        options.reconfigurations = randomReconfigurations(seed: seed, replicas: replicas, faulty: faultyReplicas, before: heal + 2_000)
        return options
    }

    /// Half the adversarial runs also change the membership: up to three changes (add,
    /// replace or remove a correct replica, raise f) at random ticks, each keeping
    /// n >= 3f+1 and f at least the number of faulty replicas. Drawn from their own
    /// generator, so the faults of a seed are the same with or without them.
    static func randomReconfigurations(seed: UInt64, replicas: Int, faulty: Set<ReplicaID>, before lastTick: UInt64) -> [ScheduledReconfiguration] {
        var rng = SplitMix64(seed: seed ^ 0x5EC0_4F16)
        guard rng.chance(0.5) else { return [] }
        return drawReconfigurations(
            replicas: replicas, f: Membership.maxFaultTolerance(replicas: replicas), faulty: faulty,
            firstTick: 50...lastTick / 2, gapMax: lastTick / 4, mayLowerF: false, using: &rng)
    }

    /// 1 to 3 changes from the first tick drawn in `firstTick`, each up to `gapMax` after the
    /// one before: add, replace or remove a correct replica, raise f (or lower it, with
    /// `mayLowerF`), each keeping n >= 3f+1 and f at least the number of faulty replicas.
    /// Both generators draw with it; the first never lowers f, so its draws are unchanged.
    static func drawReconfigurations(
        replicas: Int, f startF: Int, faulty: Set<ReplicaID>, firstTick: ClosedRange<UInt64>, gapMax: UInt64, mayLowerF: Bool,
        using rng: inout SplitMix64
    ) -> [ScheduledReconfiguration] {
        var members = (0..<replicas).map { ReplicaID(UInt32($0)) }
        var f = startF
        var nextID = UInt32(replicas)
        var changes: [ScheduledReconfiguration] = []
        var tick = UInt64.random(in: firstTick, using: &rng)
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let correct = members.filter { !faulty.contains($0) }
            var options: [SimulatedChange] = [.add(ReplicaID(nextID))]
            if let old = correct.randomElement(using: &rng) { options.append(.replace(old, by: ReplicaID(nextID))) }
            if members.count - 1 >= 3 * f + 1, let old = correct.randomElement(using: &rng) { options.append(.remove(old)) }
            if members.count >= 3 * (f + 1) + 1 { options.append(.setFaultTolerance(f + 1)) }
            if mayLowerF, f - 1 >= max(1, faulty.count) { options.append(.setFaultTolerance(f - 1)) }
            let change = options.randomElement(using: &rng)!
            switch change {
            case .add(let id): members.append(id); nextID += 1
            case .replace(let old, let id): members.removeAll { $0 == old }; members.append(id); nextID += 1
            case .remove(let old): members.removeAll { $0 == old }
            case .setFaultTolerance(let newF): f = newF
            }
            changes.append(ScheduledReconfiguration(tick: tick, change: change))
            tick += UInt64.random(in: 0...gapMax, using: &rng)
        }
        return changes
    }

    /// Random faults and sizes for the swarm, all drawn from `seed`.
    public static func random(seed: UInt64, replicas: Int) -> SimulationOptions {
        var rng = SplitMix64(seed: seed)
        let maxDelay = Int.random(in: 1...8, using: &rng)
        let faults = NetworkFaults(
            loss: Double.random(in: 0...0.15, using: &rng),
            duplication: Double.random(in: 0...0.15, using: &rng),
            delayTicks: 1...maxDelay)
        let k = [2, 4, 8][Int.random(in: 0..<3, using: &rng)]
        return SimulationOptions(
            seed: seed, replicas: replicas, clients: Int.random(in: 1...4, using: &rng),
            requestsPerClient: Int.random(in: 5...20, using: &rng), keySpace: Int.random(in: 2...10, using: &rng),
            faults: faults, checkpointInterval: k, logWindow: k * Int.random(in: 2...4, using: &rng),
            batchSizeMax: Int.random(in: 1...8, using: &rng), sequencesInFlightMax: Int.random(in: 1...k * 2, using: &rng))
    }
}

/// A membership change in a simulated run, by replica ids; a new id gets a key of its own.
public enum SimulatedChange: Hashable, Sendable, CustomStringConvertible {
    case add(ReplicaID)
    case remove(ReplicaID)
    case replace(ReplicaID, by: ReplicaID)
    case setFaultTolerance(Int)

    /// The replica the change brings in, if any.
    var newcomer: ReplicaID? {
        switch self {
        case .add(let id), .replace(_, by: let id): id
        case .remove, .setFaultTolerance: nil
        }
    }

    public var description: String {
        switch self {
        case .add(let id): "add \(id)"
        case .remove(let id): "remove \(id)"
        case .replace(let old, let new): "replace \(old) by \(new)"
        case .setFaultTolerance(let f): "set f = \(f)"
        }
    }
}

public struct ScheduledReconfiguration: Hashable, Sendable {
    public var tick: UInt64
    public var change: SimulatedChange
    public init(tick: UInt64, change: SimulatedChange) {
        self.tick = tick
        self.change = change
    }
}

/// What became of one scheduled reconfiguration.
public struct ReconfigurationOutcome: Hashable, Sendable {
    public var change: SimulatedChange
    public var submittedTick: UInt64
    public var completedTick: UInt64?
    /// The replicas' answer ("ok: ..." or "error: ...").
    public var result: String?
}

public struct Crash: Hashable, Sendable {
    public var replica: ReplicaID
    public var tick: UInt64
    public var restartTick: UInt64?
    /// The replica restarts without its durable state and follows the amnesia rule.
    public var amnesia: Bool

    public init(replica: ReplicaID, tick: UInt64, restartTick: UInt64? = nil, amnesia: Bool = false) {
        self.replica = replica
        self.tick = tick
        self.restartTick = restartTick
        self.amnesia = amnesia
    }

    func isDown(at now: UInt64) -> Bool { now >= tick && now < (restartTick ?? .max) }
}

/// The crashes of a run: the options' and those a scenario adds while it runs.
struct CrashSchedule {
    private(set) var all: [Crash]
    /// Replicas some crash names: for the others, "is it down?" is one lookup.
    private var crashing: Set<ReplicaID>

    init(_ crashes: [Crash]) {
        all = crashes
        crashing = Set(crashes.map(\.replica))
    }

    mutating func append(_ crash: Crash) {
        all.append(crash)
        crashing.insert(crash.replica)
    }

    func isDown(_ replica: ReplicaID, at tick: UInt64) -> Bool {
        !all.isEmpty && crashing.contains(replica) && all.contains { $0.replica == replica && $0.isDown(at: tick) }
    }

    /// Whether a crash or a restart is scheduled after `tick`.
    func pending(after tick: UInt64) -> Bool {
        all.contains { $0.tick > tick || ($0.restartTick ?? 0) > tick }
    }
}

/// When the correct replicas last changed in a way that matters to the checkers, and the
/// longest they have gone without changing: the simulator's test for a stalled run.
///
/// A replica waiting on a timer that doubles (the view-change timeout, §4.5.2) changes
/// after twice its previous wait, so a run counts as stalled only after three times the
/// longest gap seen so far in it, and never before `stallTicksMin`.
struct StallWatch {
    struct ReplicaState: Equatable {
        var id: ReplicaID
        var view: ViewNumber
        var viewActive: Bool
        var viewChangeTimeouts: Int
        var lastExecuted: SequenceNumber
        var lowWaterMark: SequenceNumber
        var stateTransfersStarted: Int
        var stateTransfersCompleted: Int
        var epoch: Epoch
        var retired: Bool
        var down: Bool
    }

    let stallTicksMin: UInt64
    private var states: [ReplicaState] = []
    private var changedTick: UInt64 = 0
    private(set) var longestGap: UInt64 = 0

    init(stallTicksMin: UInt64) {
        self.stallTicksMin = stallTicksMin
    }

    mutating func observe(_ now: [ReplicaState], at tick: UInt64) {
        guard now != states else { return }
        longestGap = max(longestGap, tick - changedTick)
        changedTick = tick
        states = now
    }

    func stalled(at tick: UInt64) -> Bool {
        tick - changedTick > max(stallTicksMin, 3 * longestGap)
    }
}

/// Where a replica stood when the run ended.
public struct ReplicaEndState: Hashable, Sendable, CustomStringConvertible {
    public var id: ReplicaID
    public var view: ViewNumber
    public var viewActive: Bool
    /// The epoch whose membership the replica holds (for a joiner, the one it joins).
    public var epoch: Epoch
    public var members: [ReplicaID]
    public var stableSequence: SequenceNumber
    public var lastExecuted: SequenceNumber
    /// Still passive after amnesia (`Replica.amnesia`).
    public var passive: Bool
    /// Still fetching the state of the epoch it joins (`Replica.epochStart` is nil).
    public var joining: Bool
    public var retired: Bool
    /// Crashed and not restarted.
    public var down: Bool

    public var description: String {
        var words = ["\(epoch)", "\(view)\(viewActive ? "" : " changing")", "h=\(stableSequence.rawValue)", "executed=\(lastExecuted.rawValue)"]
        if passive { words.append("passive") }
        if joining { words.append("joining") }
        if retired { words.append("retired") }
        if down { words.append("down") }
        return words.joined(separator: " ")
    }
}

/// One client operation as the client saw it: invoked at one tick, completed at another.
public struct Operation: Hashable, Sendable {
    public var client: ClientID
    public var timestamp: Timestamp
    public var operation: KeyValueOperation
    public var invokedTick: UInt64
    public var completedTick: UInt64?
    public var result: KeyValueResult?
}

/// What a run produced: each replica's execution log and checkpoints, the clients'
/// history, the network's counts, and the verdicts of the checkers.
public struct SimulationResult: Sendable {
    public var options: SimulationOptions
    public var ticks: UInt64
    public var executions: [ReplicaID: [ExecutedBatch]]
    public var checkpoints: [ReplicaID: [Checkpoint]]
    public var stableCheckpoints: [ReplicaID: [Checkpoint]]
    public var history: [Operation]
    public var signedRequests: Set<Digest>
    public var datagramsSent: Int
    public var datagramsLost: Int
    public var rejectedFrames: Int
    /// What each node refused before its core or client saw it, by reason.
    public var rejections: [NodeID: RejectionCounters] = [:]
    /// Conflicting pairs of signed messages the replicas reported (`Action.evidence`), by
    /// the principal they prove faulty.
    public var evidence: [Principal: Int] = [:]
    public var replicaCounters: [ReplicaID: ReplicaCounters]
    public var maxLogEntries: Int
    public var finalLogEntries: [ReplicaID: Int]
    public var violations: [String]
    /// Replicas restarted without their durable state, and when.
    public var amnesiaRestarts: [(ReplicaID, UInt64)] = []
    /// Sequence numbers of prepares and commits each replica sent, per tick (amnesia tests read it).
    public var votesSent: [ReplicaID: [(tick: UInt64, view: ViewNumber, sequence: SequenceNumber, digest: Digest)]] = [:]
    /// How often each replica was restarted from its durable state.
    public var restarts: [ReplicaID: Int] = [:]
    /// The tick of each entry of `executions`, per replica.
    public var executionTicks: [ReplicaID: [UInt64]] = [:]
    /// Sequence numbers at which each replica installed a state by state transfer.
    public var stateTransfers: [ReplicaID: [SequenceNumber]] = [:]
    /// One line per replica describing where it ended, for diagnosing a failing seed.
    public var finalStates: [String] = []
    /// The operator's reconfigurations, in order.
    public var reconfigurations: [ReconfigurationOutcome] = []
    /// The epochs each replica entered: epoch, membership, first sequence number, tick.
    public var epochs: [ReplicaID: [(membership: Membership, firstSequence: SequenceNumber, tick: UInt64)]] = [:]
    /// Replicas that retired (not members of the epoch in force), and when.
    public var retired: [ReplicaID: UInt64] = [:]
    /// Replicas that joined after the start.
    public var joined: Set<ReplicaID> = []
    /// Joiners the operator stopped before they joined: a later change decided for the same
    /// epoch left them out (`withdrawDroppedJoiners`).
    public var withdrawn: Set<ReplicaID> = []
    /// Where each replica ended: what the convergence checker judges.
    public var endStates: [ReplicaID: ReplicaEndState] = [:]
    /// With `SimulationOptions.traced`: one line per message to or from a traced replica and
    /// per change of its state, in order.
    public var trace: [String] = []

    /// Replicas that were never Byzantine: the checkers judge these.
    public var correctReplicas: Set<ReplicaID> = []
    /// The highest view any correct replica reached.
    public var highestView: ViewNumber = ViewNumber(0)

    public var passed: Bool { violations.isEmpty }
    public var completedOperations: Int { history.filter { $0.completedTick != nil }.count }
    public var executedRequests: Int { executions.values.map { $0.reduce(0) { $0 + $1.requests.count } }.max() ?? 0 }
}

/// A cluster of replicas and clients running the real core over a deterministic network.
public struct Simulation {
    public let options: SimulationOptions
    public private(set) var replicas: [Replica<KeyValueStore>] = []
    private var clients: [Client] = []
    private var network: Network
    private var rng: SplitMix64
    private var authenticator: Authenticator<SimulationVerifier, SimulatedKeys>
    private let verifier: SimulationVerifier
    /// With real Ed25519: the signatures checked already (a request again inside a batch,
    /// prepares inside certificates, retransmissions), as a replica process remembers them.
    private let memo: SignatureMemo?
    private var keys = SimulatedKeys()
    private let membership: Membership
    /// Where each replica sits in `replicas`.
    private var index: [ReplicaID: Int] = [:]
    /// How each replica was first built: what a restart without state starts from.
    private var setups: [ReplicaID: (configuration: Configuration, previous: Membership?)] = [:]
    private var descriptors: [ReplicaID: ReplicaDescriptor] = [:]
    private var operatorClient: Client
    private var nextReconfiguration = 0
    private var tick: UInt64 = 0
    private var remaining: [Int]
    private var result: SimulationResult
    private var byzantineLayers: [ReplicaID: ByzantineLayer] = [:]
    private var crashes: CrashSchedule
    /// Bumped each time the authenticator changes, so a payload opened by an older one is opened again.
    private var authenticatorGeneration = 0
    /// What each replica wrote durably: its write-ahead log and the state of its last stable
    /// checkpoint. A restarted replica is rebuilt from this alone.
    private var disks: [ReplicaID: Disk] = [:]
    private var configuration: Configuration
    private var signers: [Principal: any MessageSigner]
    /// The last state traced of each traced replica.
    private var tracedStates: [ReplicaID: String] = [:]

    struct Disk {
        /// The records as written. Encoding is a function of the record, so the bytes are
        /// made when a restart reads them back rather than at every write: most replicas
        /// never restart.
        var log: [DurableRecord] = []
        var checkpoint: (sequence: SequenceNumber, digest: Digest, state: [UInt8])?
    }

    public init(_ options: SimulationOptions) throws {
        self.options = options
        rng = SplitMix64(seed: options.seed)
        network = Network(faults: options.faults, isolations: options.isolations)
        remaining = Array(repeating: options.requestsPerClient, count: options.clients)
        crashes = CrashSchedule(options.crashes)

        // Keys: real Ed25519 from seeded seeds, or the stand-in over arbitrary public keys.
        let scheme = SimulatedScheme(seed: options.seed)
        var keyRNG = SplitMix64(seed: options.seed ^ 0xC0FFEE)
        var signers: [Principal: any MessageSigner] = [:]
        var publicKeys: [PublicKey] = []
        func makeKey(_ principal: Principal) -> PublicKey {
            let seed = (0..<32).map { _ in UInt8(truncatingIfNeeded: keyRNG.next()) }
            if options.realSignatures {
                let key = SigningKey(seed: seed)!
                signers[principal] = Ed25519Signer(principal: principal, key: key)
                return key.publicKey
            }
            let publicKey = PublicKey(bytes: seed)!
            signers[principal] = scheme.signer(for: principal, publicKey: publicKey)
            publicKeys.append(publicKey)
            return publicKey
        }
        let descriptors = (0..<options.replicas).map { i in
            ReplicaDescriptor(id: ReplicaID(UInt32(i)), host: "sim", port: UInt16(1 + i), publicKey: makeKey(.replica(ReplicaID(UInt32(i)))))
        }
        let clientKeys = (0..<options.clients).map { j in
            Membership.ClientKey(id: ClientID(UInt32(j)), publicKey: makeKey(.client(ClientID(UInt32(j)))))
        }
        membership = try Membership(
            epoch: Epoch(0), f: options.f,
            replicas: descriptors, clients: clientKeys, operatorKey: makeKey(.operator))
        // Keys of replicas that reconfigurations bring in, drawn last so that runs without
        // reconfigurations keep the keys they always had.
        for newcomer in options.reconfigurations.compactMap(\.change.newcomer) where signers[.replica(newcomer)] == nil {
            self.descriptors[newcomer] = ReplicaDescriptor(
                id: newcomer, host: "sim", port: UInt16(1 + newcomer.rawValue), publicKey: makeKey(.replica(newcomer)))
        }
        for descriptor in descriptors { self.descriptors[descriptor.id] = descriptor }
        verifier = options.realSignatures ? .ed25519(Ed25519Verifier()) : .simulated(scheme.verifier(knowing: publicKeys))
        memo = options.realSignatures ? SignatureMemo(capacity: 1 << 16) : nil
        let configuration = Configuration(
            membership: membership, checkpointInterval: options.checkpointInterval, logWindow: options.logWindow,
            batchSizeMax: options.batchSizeMax, sequencesInFlightMax: options.sequencesInFlightMax,
            viewChangeTimeoutTicks: options.viewChangeTimeoutTicks, statusIntervalTicks: 20)
        keys.add(membership)
        authenticator = Authenticator(verifier: verifier, keys: keys, limits: configuration.receiveLimits, memo: memo)
        self.configuration = configuration
        self.signers = signers
        for descriptor in descriptors {
            index[descriptor.id] = replicas.count
            setups[descriptor.id] = (configuration, nil)
            replicas.append(try Replica(
                configuration: configuration, id: descriptor.id, app: KeyValueStore(),
                signer: signers[.replica(descriptor.id)]!, digester: SHA256Digester()))
        }
        operatorClient = Client(membership: membership, signer: signers[.operator]!, digester: SHA256Digester(), retransmitTimeoutTicks: options.clientRetransmitTicks)
        for (replica, behaviour) in options.byzantine {
            var layer = ByzantineLayer(behaviour: behaviour, signer: signers[.replica(replica)]!, membership: membership)
            layer.holdTicks = UInt64(3 * options.viewChangeTimeoutTicks)
            layer.garbagePerPeerMax = options.garbagePerPeerMax
            byzantineLayers[replica] = layer
        }
        for key in clientKeys {
            clients.append(Client(membership: membership, signer: signers[.client(key.id)]!, digester: SHA256Digester(), retransmitTimeoutTicks: options.clientRetransmitTicks))
        }
        result = SimulationResult(
            options: options, ticks: 0, executions: [:], checkpoints: [:], stableCheckpoints: [:], history: [],
            signedRequests: [], datagramsSent: 0, datagramsLost: 0, rejectedFrames: 0, replicaCounters: [:],
            maxLogEntries: 0, finalLogEntries: [:], violations: [])
    }

    /// Runs until every client finished its requests (and the network drained a little
    /// longer, so replicas catch up) or `ticksMax`, then checks the run.
    ///
    /// Once the clients (and the operator) are done, the run goes on at least 200 ticks and
    /// until the correct replicas that are up executed as far as each other, for at most
    /// 20,000 ticks. With `stopWhenStalled` it also ends once they have stalled: none of them
    /// changed view, timed out, executed, advanced its low water mark, started or completed
    /// a state transfer, entered an epoch, retired, crashed or restarted for a while
    /// (`StallWatch`), and no crash, restart, end of a partition or GST is still to come. Such a tail holds only retransmissions, status messages and a faulty
    /// replica's junk: in 3,000 adversarial swarm runs, each run it shortened (by some
    /// 17,000 ticks) executed, checkpointed and answered exactly as with the full wait, and
    /// passed the same checkers (docs/simulator.md).
    public mutating func run() -> SimulationResult {
        var quietTicks: UInt64 = 0
        var stall = StallWatch(stallTicksMin: options.stallTicksMin)
        while tick < options.ticksMax {
            step()
            stall.observe(replicaStates, at: tick)
            quietTicks = clientsIdle ? quietTicks + 1 : 0
            guard quietTicks > 200 else { continue }
            if replicasConverged || quietTicks > 20_000 { break }
            if options.stopWhenStalled, stall.stalled(at: tick), !faultsPending { break }
        }
        return finish()
    }

    /// Whether a crash, a restart, the end of a partition or GST is still to come.
    private var faultsPending: Bool {
        crashes.pending(after: tick) || network.heals(after: tick) || options.healTick.map { $0 > tick } == true
    }

    /// What the stall rule watches, for each correct replica.
    private var replicaStates: [StallWatch.ReplicaState] {
        replicas.indices.compactMap { index in
            let id = replicas[index].id
            guard options.byzantine[id] == nil else { return nil }
            return StallWatch.ReplicaState(
                id: id, view: replicas[index].view, viewActive: replicas[index].viewActive,
                viewChangeTimeouts: replicas[index].counters.viewChangeTimeouts, lastExecuted: replicas[index].lastExecuted,
                lowWaterMark: replicas[index].lowWaterMark, stateTransfersStarted: replicas[index].counters.stateTransfersStarted,
                stateTransfersCompleted: replicas[index].counters.stateTransfersCompleted,
                epoch: replicas[index].configuration.membership.epoch, retired: replicas[index].retired, down: isDown(id))
        }
    }

    /// One tick: deliver what is due, then tick every replica and client, then let idle
    /// clients start their next operation.
    public mutating func step() {
        tick += 1
        if let heal = options.healTick, tick == heal {
            network.faults = .none
            network.isolations = []
        }
        for crash in crashes.all where crash.restartTick == tick { restart(crash.replica, amnesia: crash.amnesia) }
        for datagram in network.due(at: tick) { deliver(datagram) }
        for index in replicas.indices where !isDown(replicas[index].id) {
            let actions = replicas[index].step(.tick)
            perform(actions, from: index)
            sendGarbage(from: replicas[index].id)
        }
        for index in clients.indices {
            let actions = clients[index].step(.tick)
            perform(actions, client: index)
            if !clients[index].isBusy, remaining[index] > 0 { submitNext(index) }
        }
        stepOperator()
        for index in replicas.indices { result.maxLogEntries = max(result.maxLogEntries, replicas[index].logCount) }
    }

    private mutating func submitNext(_ index: Int) {
        remaining[index] -= 1
        let key = Array("k\(Int.random(in: 0..<options.keySpace, using: &rng))".utf8)
        let value = (0..<options.valueBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let operation: KeyValueOperation
        switch options.writeOnly ? 5 : Int.random(in: 0..<10, using: &rng) {
        case 0..<3: operation = .get(key: key)
        case 3..<7: operation = .put(key: key, value: value)
        case 7: operation = .delete(key: key)
        default:
            let expected: [UInt8]? = Bool.random(using: &rng) ? nil : value
            operation = .compareAndSet(key: key, expected: expected, new: value)
        }
        let actions = clients[index].submit(operation.encoded())
        let client = ClientID(UInt32(index))
        result.history.append(Operation(client: client, timestamp: clients[index].lastTimestamp, operation: operation, invokedTick: tick))
        perform(actions, client: index)
    }

    /// The operator ticks like a client and submits the next reconfiguration when due.
    private mutating func stepOperator() {
        perform(operatorClient.step(.tick), client: nil)
        guard !operatorClient.isBusy, nextReconfiguration < options.reconfigurations.count else { return }
        let scheduled = options.reconfigurations[nextReconfiguration]
        guard tick >= scheduled.tick else { return }
        nextReconfiguration += 1
        let change: ReconfigurationChange
        switch scheduled.change {
        case .add(let id): change = .addReplica(descriptors[id]!)
        case .remove(let id): change = .removeReplica(id)
        case .replace(let old, let new): change = .replaceReplica(old: old, new: descriptors[new]!)
        case .setFaultTolerance(let f): change = .setFaultTolerance(UInt32(f))
        }
        result.reconfigurations.append(ReconfigurationOutcome(change: scheduled.change, submittedTick: tick))
        let actions = operatorClient.submit(change)
        perform(actions, client: nil)
    }

    /// Once the replicas accepted a change that brings a replica in, the operator starts it
    /// from the cluster file of the epoch it joins (as `pbft ctl add-replica` does): that
    /// epoch's membership and the one before, as the replicas decided them.
    private mutating func startNewcomer(of outcome: ReconfigurationOutcome) {
        guard outcome.result?.hasPrefix("ok:") == true, let newcomer = outcome.change.newcomer, index[newcomer] == nil else { return }
        let known = replicas.filter { options.byzantine[$0.id] == nil }.flatMap(\.knownMemberships.values)
        guard let joining = known.filter({ $0.replica(newcomer) != nil }).max(by: { $0.epoch < $1.epoch }),
              let previous = known.first(where: { $0.epoch.rawValue + 1 == joining.epoch.rawValue })
        else { return }
        startJoiner(newcomer, joining: joining, previous: previous)
    }

    /// Two changes can be decided for one epoch (add r5, then replace r5 by r6, before the
    /// epoch starts): the first one's newcomer, already started, is then left out of the
    /// epoch it was to join. No member of that epoch knows its key or address, so nothing it
    /// could hear tells it; the operator, who saw both answers, stops it (seeds 400186,
    /// 10016808: it waited to join for ever). The same holds for a joiner that a later epoch
    /// removes before it ever joined. `pbft launch` never gets here: it submits a change only
    /// once the epoch the previous one decided has begun (`waitForPendingEpoch`).
    private mutating func withdrawDroppedJoiners() {
        // The replica furthest ahead executed the change just answered (f+1 did before the
        // answer): its newest membership is the one decided last.
        guard let ahead = replicas.filter({ options.byzantine[$0.id] == nil && $0.epochStart != nil }).max(by: { $0.lastExecuted < $1.lastExecuted }),
              let newest = ahead.knownMemberships.values.max(by: { $0.epoch < $1.epoch })
        else { return }
        for id in result.joined.sorted() where !result.withdrawn.contains(id) {
            guard let i = index[id], replicas[i].epochStart == nil, replicas[i].configuration.membership.epoch <= newest.epoch, newest.replica(id) == nil else { continue }
            result.withdrawn.insert(id)
            crash(id)
        }
    }

    private mutating func startJoiner(_ id: ReplicaID, joining: Membership, previous: Membership) {
        var joinerConfiguration = configuration
        joinerConfiguration.membership = joining
        keys.add(joining)
        refreshAuthenticator()
        do {
            let replica = try Replica(
                configuration: joinerConfiguration, id: id, app: KeyValueStore(), signer: signers[.replica(id)]!,
                digester: SHA256Digester(), previousMembership: previous)
            index[id] = replicas.count
            setups[id] = (joinerConfiguration, previous)
            replicas.append(replica)
            result.joined.insert(id)
        } catch {
            preconditionFailure("joiner \(id) cannot be built: \(error)")
        }
    }

    /// Keys of every epoch seen so far, and limits for the largest membership among them.
    private mutating func refreshAuthenticator() {
        var limits = configuration.receiveLimits
        limits.replicasMax = max(limits.replicasMax, keys.replicasMax)
        authenticator = Authenticator(verifier: verifier, keys: keys, limits: limits, memo: memo)
        authenticatorGeneration += 1
    }

    /// A crashed replica comes back with only what it wrote durably.
    private mutating func restart(_ id: ReplicaID, amnesia: Bool = false) {
        guard let index = index[id], let setup = setups[id] else { return }
        if amnesia { disks[id] = Disk() }
        let disk = disks[id] ?? Disk()
        let records = disk.log.map { written -> DurableRecord in
            guard let record = DurableRecord.decode(written.encoded()) else { preconditionFailure("\(id): a durable record does not decode") }
            return record
        }
        do {
            replicas[index] = try Replica.recover(
                configuration: setup.configuration, id: id, app: KeyValueStore(), signer: signers[.replica(id)]!,
                digester: SHA256Digester(), records: records, checkpoint: disk.checkpoint, previousMembership: setup.previous)
            noteMemberships(of: replicas[index])
            result.restarts[id, default: 0] += 1
            if amnesia {
                replicas[index].beginAmnesiaRecovery()
                result.amnesiaRestarts.append((id, tick))
            }
            // Like an execution log recovered with the state: what lies beyond the restored
            // checkpoint will be executed (identically) again.
            let restored = replicas[index].lastExecuted
            if let batches = result.executions[id] {
                let keep = batches.prefix { $0.sequence <= restored }.count
                result.executions[id] = Array(batches.prefix(keep))
                result.executionTicks[id] = Array((result.executionTicks[id] ?? []).prefix(keep))
            }
        } catch {
            preconditionFailure("\(id) cannot be rebuilt: \(error)")
        }
    }

    private func isDown(_ replica: ReplicaID) -> Bool {
        crashes.isDown(replica, at: tick)
    }

    /// Crashes a replica now (for scenarios that wait for a protocol state first).
    public mutating func crash(_ replica: ReplicaID, restartAfterTicks: UInt64? = nil) {
        crashes.append(Crash(replica: replica, tick: tick, restartTick: restartAfterTicks.map { tick + $0 }))
    }

    /// A faulty replica's junk datagrams go onto the network like any other.
    private mutating func sendGarbage(from me: ReplicaID) {
        // Taken out while it changes, so that its history grows in place instead of being copied.
        guard !byzantineLayers.isEmpty, var layer = byzantineLayers.removeValue(forKey: me) else { return }
        for (to, bytes) in layer.garbage(rng: &rng) {
            network.send(bytes, from: .replica(me), to: .replica(to), now: tick, rng: &rng, raw: true)
        }
        byzantineLayers[me] = layer
    }

    private mutating func deliver(_ datagram: Network.Datagram) {
        if case .replica(let id) = datagram.to, isDown(id) { return }
        let payload = datagram.payload
        let outcome: Result<Authenticated<Frame>, Rejection>
        if let opened = payload.opened, opened.authenticator == authenticatorGeneration {
            outcome = opened.outcome
        } else {
            var bytes = payload.bytes
            if payload.raw {
                guard let whole = Network.wholeFrame(in: payload.bytes) else {
                    result.rejections[datagram.to, default: RejectionCounters()].datagramsDropped += 1
                    return
                }
                bytes = whole
            }
            outcome = Result { () throws(Rejection) in try authenticator.open(bytes) }
            if options.authenticateOncePerPayload { payload.opened = (authenticatorGeneration, outcome) }
        }
        let frame: Authenticated<Frame>
        switch outcome {
        case .success(let opened): frame = opened
        case .failure(let error):
            result.rejectedFrames += 1
            result.rejections[datagram.to, default: RejectionCounters()].count(error)
            return
        }
        switch datagram.to {
        case .replica(let id):
            guard let index = index[id] else { return }
            if options.traced.contains(id) { note("\(id) <- \(Trace.describe(frame.value))") }
            let actions = replicas[index].step(.message(frame))
            perform(actions, from: index)
        case .client(let id):
            let index = Int(id.rawValue)
            let actions = clients[index].step(.message(frame))
            perform(actions, client: index)
        case .operatorNode:
            perform(operatorClient.step(.message(frame)), client: nil)
        }
    }

    private mutating func perform(_ produced: [Action], from index: Int) {
        let me = replicas[index].id
        var compactAfterStep = false
        defer {
            // The log is compacted at each stable checkpoint to what the replica still promises.
            if compactAfterStep { disks[me, default: Disk()].log = replicas[index].durableRecords() }
        }
        var actions = produced
        if !byzantineLayers.isEmpty, var layer = byzantineLayers.removeValue(forKey: me) {
            actions = produced.flatMap { layer.rewrite($0, replica: replicas[index], now: tick, rng: &rng) }
            actions += layer.release(at: tick)
            byzantineLayers[me] = layer
        }
        if options.traced.contains(me) { traceState(index, actions) }
        for action in actions {
            switch action {
            case .send(let frame, let to):
                network.send(frame.encoded(), from: .replica(me), to: .replica(to), now: tick, rng: &rng)
            case .broadcast(let frame):
                recordVote(frame.envelope, of: me)
                let payload = Payload(frame.encoded())
                for other in replicas[index].peers {
                    network.send(payload, from: .replica(me), to: .replica(other.id), now: tick, rng: &rng)
                }
            case .reply(let frame, let requester):
                switch requester {
                case .client(let client):
                    network.send(frame.encoded(), from: .replica(me), to: .client(client), now: tick, rng: &rng)
                case .operator:
                    network.send(frame.encoded(), from: .replica(me), to: .operatorNode, now: tick, rng: &rng)
                case .replica: continue
                }
            case .epochStarted(let membership, let first):
                result.epochs[me, default: []].append((membership, first, tick))
                noteMemberships(of: replicas[index])
            case .retired:
                result.retired[me] = tick
            case .executed(let batch):
                result.executions[me, default: []].append(batch)
                if batch.requests.contains(where: { $0.requester == .operator }) { noteMemberships(of: replicas[index]) }
                result.executionTicks[me, default: []].append(tick)
            case .checkpointTaken(let checkpoint):
                result.checkpoints[me, default: []].append(checkpoint)
            case .evidence(let first, _):
                result.evidence[first.sender, default: 0] += 1
            case .persist(let record):
                disks[me, default: Disk()].log.append(record)
            case .stateInstalled(let checkpoint):
                result.stateTransfers[me, default: []].append(checkpoint.sequence)
            case .checkpointStable(let checkpoint):
                result.stableCheckpoints[me, default: []].append(checkpoint)
                if let stable = replicas[index].stableState, stable.checkpoint == checkpoint {
                    disks[me, default: Disk()].checkpoint = (checkpoint.sequence, checkpoint.stateDigest, stable.state)
                }
                compactAfterStep = true
            }
        }
    }

    private mutating func note(_ line: String) {
        result.trace.append("t=\(tick) \(line)")
    }

    /// A traced replica's actions, and where it stands when that changed.
    private mutating func traceState(_ index: Int, _ actions: [Action]) {
        let me = replicas[index].id
        for action in actions {
            switch action {
            case .send(let frame, let to): note("\(me) -> \(to) \(Trace.describe(frame))")
            case .broadcast(let frame): note("\(me) -> all \(Trace.describe(frame))")
            case .reply(let frame, let to): note("\(me) -> \(to) \(Trace.describe(frame))")
            case .executed(let batch): note("\(me) executed \(batch.sequence) (\(batch.requests.count) requests)")
            case .epochStarted(let membership, let first): note("\(me) entered \(membership.epoch) at \(first): \(membership.replicas.map(\.id))")
            case .retired: note("\(me) retired")
            case .stateInstalled(let checkpoint): note("\(me) installed state at \(checkpoint.sequence)")
            case .checkpointStable(let checkpoint): note("\(me) stable \(checkpoint.sequence)")
            case .evidence(let first, _): note("\(me) evidence against \(first.sender)")
            case .persist, .checkpointTaken: break
            }
        }
        let state = endState(index).description
        if tracedStates[me] != state {
            tracedStates[me] = state
            note("\(me) now \(state)")
        }
    }

    /// A prepare or commit the replica sent as itself (a faulty one's forgeries are not its votes).
    private mutating func recordVote(_ envelope: Envelope, of me: ReplicaID) {
        guard envelope.sender == .replica(me) else { return }
        switch envelope.message {
        case .prepare(let v), .commit(let v): result.votesSent[me, default: []].append((tick, v.view, v.sequence, v.batchDigest))
        default: break
        }
    }

    /// What a client (or, with `index` nil, the operator) asks for.
    private mutating func perform(_ actions: [Client.Action], client index: Int?) {
        let me = index.map { NodeID.client(ClientID(UInt32($0))) } ?? .operatorNode
        for action in actions {
            switch action {
            case .broadcast(let frame):
                // Every request a client sends is one it signed (retransmissions and requests
                // signed again for a new epoch included).
                result.signedRequests.insert(SHA256Digester().digest(frame.envelope.encoded()))
                let payload = Payload(frame.encoded())
                let members = index.map { clients[$0].membership } ?? operatorClient.membership
                for replica in members.replicas { network.send(payload, from: me, to: .replica(replica.id), now: tick, rng: &rng) }
            case .epochChanged(let membership):
                keys.add(membership)
                refreshAuthenticator()
            case .completed(let timestamp, let bytes):
                guard let index else {
                    if let last = result.reconfigurations.indices.last {
                        result.reconfigurations[last].completedTick = tick
                        result.reconfigurations[last].result = String(decoding: bytes, as: UTF8.self)
                        startNewcomer(of: result.reconfigurations[last])
                        withdrawDroppedJoiners()
                    }
                    continue
                }
                let client = ClientID(UInt32(index))
                guard let i = result.history.lastIndex(where: { $0.client == client && $0.timestamp == timestamp }) else { continue }
                result.history[i].completedTick = tick
                result.history[i].result = KeyValueResult.decode(bytes)
            }
        }
    }

    private mutating func finish() -> SimulationResult {
        result.ticks = tick
        result.datagramsSent = network.sent
        result.datagramsLost = network.lost
        result.correctReplicas = Set(replicas.map(\.id).filter { options.byzantine[$0] == nil })
        for replica in replicas where replica.epochStart == nil {
            // A joiner that never reached its epoch executed nothing: there is nothing to judge.
            let fate = result.withdrawn.contains(replica.id) ? "stopped by the operator: a later change left it out of" : "still joining"
            result.finalStates.append("\(replica.id): \(fate) \(replica.configuration.membership.epoch)")
        }
        for index in replicas.indices { result.endStates[replicas[index].id] = endState(index) }
        for (i, scheduled) in options.reconfigurations.enumerated() {
            let outcome = i < result.reconfigurations.count ? result.reconfigurations[i] : nil
            let fate = outcome.map { "submitted at \($0.submittedTick), " + ($0.completedTick.map { "answered at \($0): " } ?? "never answered") + ($0.result ?? "") } ?? "never submitted"
            result.finalStates.append("reconfiguration \(scheduled.change) (due at \(scheduled.tick)): \(fate)")
        }
        result.highestView = replicas.filter { result.correctReplicas.contains($0.id) }.map(\.view).max() ?? ViewNumber(0)
        for replica in replicas {
            result.replicaCounters[replica.id] = replica.counters
            result.finalLogEntries[replica.id] = replica.logCount
            let dropped = DropReason.allCases.filter { replica.counters[$0] > 0 }.map { "\($0)=\(replica.counters[$0])" }
                + (result.rejections[.replica(replica.id)].map { ["rejected: \($0)"] } ?? [])
            result.finalStates.append(
                "\(replica.id)\(options.byzantine[replica.id].map { " (\($0.rawValue))" } ?? ""): \(replica.view)\(replica.viewActive ? "" : " changing") h=\(replica.lowWaterMark.rawValue) executed=\(replica.lastExecuted.rawValue) log=\(replica.logCount) pending=\(replica.pendingCount) timeouts=\(replica.counters.viewChangeTimeouts) status=\(replica.counters.statusSent) resent=\(replica.counters.retransmitted) transfers=\(replica.counters.stateTransfersStarted)/\(replica.counters.stateTransfersCompleted) dropped: \(dropped.joined(separator: " "))")
        }
        result.violations = Checkers.check(result)
        return result
    }

    /// Every correct replica that is up has executed as far as the others, and they agree
    /// on where they stand (`Checkers.convergence`): the run need not wait for anything more.
    var replicasConverged: Bool {
        var executed: SequenceNumber?
        var states: [ReplicaEndState] = []
        for index in replicas.indices {
            let id = replicas[index].id
            guard options.byzantine[id] == nil, !isDown(id), !replicas[index].retired else { continue }
            let last = replicas[index].lastExecuted
            if let executed, executed != last { return false }
            executed = last
            states.append(endState(index))
        }
        return Checkers.unconverged(states).isEmpty
    }

    private func endState(_ index: Int) -> ReplicaEndState {
        let replica = replicas[index]
        return ReplicaEndState(
            id: replica.id, view: replica.view, viewActive: replica.viewActive, epoch: replica.configuration.membership.epoch,
            members: replica.configuration.membership.replicas.map(\.id), stableSequence: replica.lowWaterMark,
            lastExecuted: replica.lastExecuted, passive: replica.amnesia != nil, joining: replica.epochStart == nil,
            retired: replica.retired, down: isDown(replica.id))
    }

    /// Learns the keys of every membership a replica knows (new epochs, decided next ones).
    private mutating func noteMemberships(of replica: Replica<KeyValueStore>) {
        var added = false
        for membership in replica.knownMemberships.values where !keys.knows(membership) {
            keys.add(membership)
            added = true
        }
        if added { refreshAuthenticator() }
    }

    /// Read access for scenario tests.
    public var currentTick: UInt64 { tick }
    public var clientsIdle: Bool {
        remaining.allSatisfy { $0 == 0 } && clients.allSatisfy { !$0.isBusy }
            && nextReconfiguration == options.reconfigurations.count && !operatorClient.isBusy
    }
}
