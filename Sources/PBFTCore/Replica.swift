public import PBFTWire

/// What happens to a replica: time passes, or an authenticated message arrives.
public enum Event: Sendable {
    /// One tick of the replica's clock; every timeout is a number of ticks.
    case tick
    /// A frame whose signatures the shell has verified.
    case message(Authenticated<Frame>)
}

/// What a replica asks its shell to do, in order. Every envelope in an action is already
/// signed by this replica; the shell encodes and sends it.
public enum Action: Sendable, Equatable {
    /// Append to the write-ahead log; the shell syncs it before carrying out any later send.
    case persist(DurableRecord)
    case send(Frame, to: ReplicaID)
    /// To every other replica of the configuration.
    case broadcast(Frame)
    /// To a client (or the operator): a reply root's frame with its proven reply, or an
    /// epoch announcement.
    case reply(Frame, to: Principal)
    /// A batch was executed: the record the execution log and the checkers read.
    case executed(ExecutedBatch)
    /// State transfer installed this checkpoint's state: the sequence numbers up to it were
    /// not executed here one by one.
    case stateInstalled(Checkpoint)
    /// This replica took a checkpoint after executing `sequence`.
    case checkpointTaken(Checkpoint)
    /// A checkpoint became stable; the log at and below it was discarded.
    case checkpointStable(Checkpoint)
    /// Two messages one replica signed that conflict (`Envelope.conflicts(with:)`): proof
    /// that it is faulty, for the shell to keep where checkers can read it.
    case evidence(Envelope, Envelope)
    /// A new configuration epoch is in force from `firstSequence` on: the shell now knows
    /// the keys and addresses of `Replica.knownMemberships` and broadcasts to `peers`.
    case epochStarted(Membership, firstSequence: SequenceNumber)
    /// This replica is not a member of the epoch now in force: it takes no further part
    /// (it still serves state transfer while its shell lets it run).
    case retired(Epoch)
}

/// One executed sequence number, for the execution log.
public struct ExecutedBatch: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var view: ViewNumber
    public var batchDigest: Digest
    /// The requests that executed, in order; retransmitted or superseded ones that the
    /// reply cache skipped are not listed.
    public var requests: [ExecutedRequest]
}

public struct ExecutedRequest: Hashable, Sendable {
    public var requester: Principal
    public var timestamp: Timestamp
    public var requestDigest: Digest
    public var resultDigest: Digest
}

/// Why a message was dropped. Each is an ordinary event: counted, never a crash.
public enum DropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    case staleView, futureView, outsideWaterMarks, notFromPrimary, wrongDigest, conflicting
    case duplicate, staleRequest, unexpectedSender, invalidBatch, pendingFull, unexpectedMessage
    case viewChanging, invalidViewChange, invalidNewView, recovering
    case staleEpoch, futureEpoch, joining, retired

    public var description: String {
        switch self {
        case .staleView: "stale view"
        case .futureView: "future view"
        case .outsideWaterMarks: "outside water marks"
        case .notFromPrimary: "not from the primary"
        case .wrongDigest: "wrong digest"
        case .conflicting: "conflicting"
        case .duplicate: "duplicate"
        case .staleRequest: "stale request"
        case .unexpectedSender: "unexpected sender"
        case .invalidBatch: "invalid batch"
        case .pendingFull: "pending requests full"
        case .unexpectedMessage: "unexpected message"
        case .viewChanging: "view changing"
        case .invalidViewChange: "invalid view-change"
        case .invalidNewView: "invalid new-view"
        case .recovering: "recovering from amnesia"
        case .staleEpoch: "stale epoch"
        case .futureEpoch: "future epoch"
        case .joining: "joining"
        case .retired: "retired"
        }
    }
}

/// Counters a replica keeps about itself, for status and tests.
public struct ReplicaCounters: Hashable, Sendable {
    public var dropped = [Int](repeating: 0, count: DropReason.allCases.count)
    public var requestsExecuted = 0
    public var batchesExecuted = 0
    public var viewChangeTimeouts = 0
    /// View-change timeouts that did not start a view change: the replica was behind, or
    /// cut off from the others.
    public var viewChangeTimeoutsPostponed = 0
    public var viewChangesStarted = 0
    public var newViewsAccepted = 0
    public var statusSent = 0
    public var retransmitted = 0
    public var stateTransfersStarted = 0
    public var stateTransfersCompleted = 0
    /// Batches executed in place of a conflicting pre-prepare, on a quorum's commits
    /// (`adoptCommitted`): the primary equivocated.
    public var committedBatchesAdopted = 0
    /// View changes started because the primary said it was passive after amnesia.
    public var passivePrimaryViewChanges = 0
    /// Times this replica suspected a primary (raised a suspicion; `Replica+ViewChange.swift`).
    public var suspicionsRaised = 0

    public subscript(reason: DropReason) -> Int {
        get { dropped[reason.rawValue] }
        set { dropped[reason.rawValue] = newValue }
    }

    public var droppedTotal: Int { dropped.reduce(0, +) }
}

/// One sequence number's entry in the log (§4.2).
struct Slot {
    /// The accepted pre-prepare of the current view, with its batch.
    var prePrepare: Envelope?
    var batchDigest: Digest?
    var batch: [Envelope] = []
    var prepares = VoteSet()
    var commits = VoteSet()
    var prepared = false
    var committed = false
}

/// A PBFT replica as a pure, deterministic state machine: `step(_:)` takes an event and
/// returns the actions to carry out, in order. No I/O, clock or randomness inside; time is
/// ticks, signatures come from the injected signer and digests from the injected digester.
///
/// Handlers are split by topic: `Replica+Normal.swift` (requests, pre-prepare, prepare,
/// commit, execution), `Replica+Checkpoint.swift` (checkpoints, garbage collection) and
/// `Replica+Status.swift` (retransmission to replicas that missed messages).
public struct Replica<App: StateMachine>: Sendable {
    /// The settings and the membership of the epoch in force (it changes at each epoch).
    public internal(set) var configuration: Configuration
    public let id: ReplicaID
    let signer: any MessageSigner
    public let digester: any MessageDigester

    public internal(set) var app: App
    public internal(set) var view = ViewNumber(0)
    public internal(set) var waterMarks: WaterMarks
    public internal(set) var lastExecuted = SequenceNumber(0)
    /// The last sequence number this replica assigned while primary.
    var lastAssigned = SequenceNumber(0)
    var log: [SequenceNumber: Slot] = [:]
    public internal(set) var replyCache = ReplyCache()

    /// Requests known but not yet in the log (primary) or not yet executed (backups), at
    /// most one per requester, in arrival order.
    var pendingRequests: [Principal: Envelope] = [:]
    var pendingOrder: [Principal] = []
    /// When each pending request arrived (or its view began): the view-change timer
    /// measures the oldest, so a primary that delays any request too long is replaced.
    var pendingSince: [Principal: UInt64] = [:]
    /// The newest timestamp per requester that sits in an accepted, unexecuted pre-prepare.
    var inLog: [Principal: Timestamp] = [:]

    /// Checkpoint messages above h, by sequence number.
    var checkpointVotes: [SequenceNumber: VoteSet] = [:]
    /// This replica's own checkpoints above h and at h: digest and the state bytes.
    var ownCheckpoints: [SequenceNumber: (digest: Digest, state: [UInt8])] = [:]
    /// The states the last few epochs started from (at most `knownMembershipsMax`), kept
    /// after later checkpoints are stable: a replica that joins an epoch, or fell behind in
    /// the one before, can verify only a checkpoint signed by members of an epoch it knows,
    /// so it climbs epoch by epoch, and each step needs the state an epoch started from.
    var epochStartStates: [SequenceNumber: (digest: Digest, state: [UInt8])] = [:]
    /// The proofs (checkpoint messages of the epoch that ended there) of those states, for
    /// replicas still in an older epoch (`onStaleStatus`).
    var epochStartProofs: [SequenceNumber: [Envelope]] = [:]
    /// The 2f+1 checkpoint messages proving h stable (C in a view-change).
    public internal(set) var stableProof: [Envelope] = []
    /// The newest checkpoint messages from each replica beyond H, by sequence number: how a
    /// replica far behind learns that it is. Several per replica, not only the newest: a
    /// peer's newest checkpoint may not be stable yet, and the stable one below it (which
    /// its STATUS answer sends with the proof) is the one 2f+1 replicas agree on. At most
    /// `aheadCheckpointsPerReplica` each, so bounded by n.
    var aheadCheckpoints: [ReplicaID: [SequenceNumber: Envelope]] = [:]
    var stateFetch: StateFetch?
    /// Set while the replica rejoins after losing its durable state (see Replica+Amnesia.swift).
    public internal(set) var amnesia: AmnesiaRecovery?

    public internal(set) var now: UInt64 = 0
    /// The tick at which a backup suspects the primary, while it knows of a request that
    /// has not executed (§4.4). Its expiry starts a view change.
    public internal(set) var viewChangeDeadline: UInt64?
    /// The current view-change timeout; it doubles with each view change that does not
    /// lead to progress (§4.5.2) and resets when a request executes.
    public internal(set) var viewChangeTimeoutTicks: Int
    /// False between sending a VIEW-CHANGE and accepting the NEW-VIEW: the replica then
    /// takes no pre-prepare, prepare or commit (§4.4).
    public internal(set) var viewActive = true
    /// The highest-view prepared certificate per sequence number above h (P).
    var preparedCertificates: [SequenceNumber: PreparedCertificate] = [:]
    /// Each replica's newest valid VIEW-CHANGE (bounded by n).
    var viewChangeMessages: [ReplicaID: (message: ViewChange, envelope: Envelope)] = [:]
    /// The highest view each replica of this epoch (this one too) asked for by suspicion
    /// (its STATUS said it suspects the primary of the view before; bounded by n). Views
    /// restart with each epoch, and so do these.
    var suspicions: [ReplicaID: ViewNumber] = [:]
    /// The NEW-VIEW that started the current view, forwarded to replicas still behind.
    var newViewEnvelope: Envelope?
    var lastProgressTick: UInt64 = 0
    var lastStatusTick: UInt64 = 0
    var lastStatusAnswer: [ReplicaID: UInt64] = [:]
    /// The tick of the last message from each other replica (members of the current epoch,
    /// and senders since it began): a backup that has not heard from 2f of them is cut off,
    /// not facing a faulty primary.
    var lastHeard: [ReplicaID: UInt64] = [:]
    /// Since when this replica has heard a quorum continuously (`hearsQuorum`, sampled every
    /// status interval); nil while it is cut off. A replica starts out trusting that it is
    /// in touch.
    var connectedSince: UInt64? = 0
    /// Timer expiries in a row postponed on f+1 replicas' word that the view progresses
    /// beyond this replica (`vouchedProgressAhead`); reset by an execution or a view change.
    var weakPostponements = 0
    static var weakPostponementsMax: Int { 2 }
    /// The pacing of NEW-VIEW and VIEW-CHANGE resends, per peer (bounded by n).
    var viewResends: [ReplicaID: ViewResend] = [:]

    public internal(set) var counters = ReplicaCounters()
    var outbox: [Action] = []

    // Reconfiguration (Replica+Reconfiguration.swift).
    /// The first sequence number of the current epoch; nil while the replica joins an epoch
    /// whose start it has not yet reached (it has no state of that epoch yet).
    public internal(set) var epochStart: SequenceNumber?
    /// The next epoch, decided by executed reconfigurations, and the sequence number after
    /// which it takes effect (a checkpoint boundary).
    public internal(set) var nextEpoch: PendingEpoch?
    /// The memberships this replica can verify messages of: the current epoch, the one
    /// before it, the next one once decided, and those its cluster file named.
    public internal(set) var knownMemberships: [Epoch: Membership] = [:]
    /// The stable checkpoint that ended the previous epoch, proven by its members: what a
    /// replica still in that epoch needs to fetch the state and follow.
    var epochStartProof: [Envelope] = []
    /// True once the replica is not a member of the epoch in force.
    public internal(set) var retired = false
    /// Frames of the next epoch that arrived before this replica entered it (bounded).
    var futureFrames: [Frame] = []
    /// When the next epoch was decided: the primary must reach its boundary in time.
    var epochTailSince: UInt64?
    var lastAnnouncement: [Principal: UInt64] = [:]
    /// As primary: null requests to order through this sequence number, for a replica
    /// passive after amnesia (`fillNullsForPassive`); nil when none are owed.
    var nullFillThrough: SequenceNumber?
    /// The view in which each replica last had null requests ordered for it (bounded by n).
    var nullFillsGranted: [ReplicaID: ViewNumber] = [:]
    /// As backup: since when each peer has said it is passive after amnesia with no progress
    /// here since (`awaitFillForPassive`); bounded by n.
    var passiveSince: [ReplicaID: UInt64] = [:]
    /// The view in which progress last followed each peer's passivity: this view's primary
    /// did its part, and the peer is not waited for again in it (bounded by n).
    var passiveServed: [ReplicaID: ViewNumber] = [:]

    /// `previousMembership`: for a replica that joins an epoch after 0, the epoch before it,
    /// whose members' checkpoints certify the state the new epoch starts from.
    public init(
        configuration: Configuration, id: ReplicaID, app: App, signer: any MessageSigner, digester: any MessageDigester,
        previousMembership: Membership? = nil
    ) throws(ConfigurationError) {
        try configuration.validate()
        guard configuration.membership.replica(id) != nil else {
            throw .invalid("replica \(id) is not a member of the configuration")
        }
        guard signer.principal == .replica(id) else {
            throw .invalid("the signer signs as \(signer.principal), not as replica \(id)")
        }
        self.configuration = configuration
        self.id = id
        self.app = app
        self.signer = signer
        self.digester = digester
        self.waterMarks = WaterMarks(window: configuration.logWindow)
        self.viewChangeTimeoutTicks = configuration.viewChangeTimeoutTicks
        let membership = configuration.membership
        self.knownMemberships[membership.epoch] = membership
        if let previous = previousMembership {
            guard previous.epoch.rawValue + 1 == membership.epoch.rawValue else {
                throw .invalid("the previous membership is of \(previous.epoch), not the epoch before \(membership.epoch)")
            }
            self.knownMemberships[previous.epoch] = previous
        }
        // Epoch 0 starts at sequence number 1; a later epoch's start comes with its state.
        self.epochStart = membership.epoch.rawValue == 0 ? SequenceNumber(1) : nil
    }

    var membership: Membership { configuration.membership }
    var epoch: Epoch { membership.epoch }
    var f: Int { membership.f }
    public var primary: ReplicaID { configuration.primary(of: view) }
    public var isPrimary: Bool { primary == id }
    /// Whether this replica suspects the primary of its view (and asks for the next one)
    /// without having left the view yet (`Replica+ViewChange.swift`, "Suspicion").
    public var suspectsPrimary: Bool { (suspicions[id] ?? ViewNumber(0)) > view }

    /// The one entry point. Actions come out in the order they must be carried out.
    public mutating func step(_ event: Event) -> [Action] {
        precondition(outbox.isEmpty, "step re-entered")
        switch event {
        case .tick: onTick()
        case .message(let frame): onFrame(frame.value)
        }
        #if DEBUG
        checkInvariants()
        #endif
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    /// What must hold between any two steps; checked after each step in debug builds (the
    /// test suite's swarms), where a broken one stops the run at the step that broke it.
    func checkInvariants() {
        precondition(Set(pendingOrder) == Set(pendingRequests.keys) && pendingOrder.count == pendingRequests.count,
                     "pendingOrder and pendingRequests disagree")
        precondition(pendingSince.keys.allSatisfy { pendingRequests[$0] != nil || inLog[$0] != nil },
                     "a request neither queued nor logged still runs the view-change timer")
        precondition(lastExecuted >= waterMarks.low || stateFetch != nil || amnesia != nil,
                     "stable checkpoint \(waterMarks.low) above what was executed (\(lastExecuted)) with no fetch under way")
        precondition(viewActive || viewChangeMessages[id].map { $0.message.newView == view } ?? true,
                     "changing to view \(view) but own VIEW-CHANGE is for another view")
    }

    mutating func onTick() {
        now += 1
        if now % UInt64(configuration.statusIntervalTicks) == 0 { noteConnectivity() }
        if let deadline = viewChangeDeadline, now >= deadline { onViewChangeTimeout() }
        sendStatusIfStuck()
        driveStateTransfer()
        endAmnesiaIfSafe()
    }

    mutating func onFrame(_ frame: Frame) {
        let envelope = frame.envelope
        if case .replica(let sender) = envelope.sender, sender != id { lastHeard[sender] = now }
        guard envelope.epoch == epoch, epochStart != nil, !retired else { return onFrameOutsideEpoch(frame) }
        switch envelope.message {
        case .request, .reconfiguration: onRequest(envelope)
        case .prePrepare(let p): onPrePrepare(p, envelope: envelope, batch: frame.batch)
        case .prepare(let vote): onPrepare(vote, envelope: envelope)
        case .commit(let vote): onCommit(vote, envelope: envelope)
        case .checkpoint(let c): onCheckpoint(c, envelope: envelope)
        case .status(let s): onStatus(s, envelope: envelope)
        case .stateRequest(let r): onStateRequest(r, envelope: envelope)
        case .stateChunk(let c): onStateChunk(c, envelope: envelope)
        case .viewChange(let v): onViewChange(v, envelope: envelope)
        case .newView(let v): onNewView(v, envelope: envelope)
        case .reply, .control, .controlReply, .epochAnnouncement:
            // Control commands are the replica process's business, not the protocol's.
            drop(.unexpectedMessage)
        }
    }

    /// The sender as a replica of the epoch it signed in, or nil (counted) if it is not one.
    mutating func replicaSender(_ envelope: Envelope) -> ReplicaID? {
        guard case .replica(let sender) = envelope.sender, knownMemberships[envelope.epoch]?.replica(sender) != nil, sender != id else {
            drop(.unexpectedSender)
            return nil
        }
        return sender
    }

    mutating func emit(_ action: Action) { outbox.append(action) }

    /// Drops the message being handled: counted by reason, nothing else changes.
    mutating func drop(_ reason: DropReason) { counters[reason] += 1 }

    /// Drops a message that conflicts with one its sender signed before, and reports the
    /// pair as evidence when it proves the sender faulty.
    mutating func dropConflicting(_ received: Envelope, earlier: Envelope?) {
        drop(.conflicting)
        if let earlier, earlier.conflicts(with: received) { emit(.evidence(earlier, received)) }
    }

    func sign(_ message: Message) -> Envelope { Envelope.seal(message, epoch: epoch, signer: signer) }

    /// The batch digest: the digest of the length-prefixed encodings of its requests; zero
    /// for the empty batch (a null request, as a new view fills gaps with).
    func batchDigest(_ batch: [Envelope]) -> Digest {
        guard !batch.isEmpty else { return .zero }
        var bytes: [UInt8] = []
        for request in batch {
            let encoded = request.encoded()
            Bytes.append(UInt64(encoded.count), to: &bytes)
            bytes.append(contentsOf: encoded)
        }
        return digester.digest(bytes)
    }

    /// The digest this replica would compute for `batch` (the simulator's Byzantine layer
    /// uses it to forge well-formed conflicting pre-prepares).
    public func digest(ofBatch batch: [Envelope]) -> Digest { batchDigest(batch) }

    /// Sequence numbers prepared here but not yet executed.
    public var preparedButNotExecuted: Int { log.filter { $0.key > lastExecuted && $0.value.prepared }.count }

    /// The last stable checkpoint h.
    public var lowWaterMark: SequenceNumber { waterMarks.low }
    /// Entries held in the log; bounded by the window L.
    public var logCount: Int { log.count }
    public var pendingCount: Int { pendingRequests.count }
    public var checkpointVoteCount: Int { checkpointVotes.values.reduce(0) { $0 + $1.count } }
    public var ownCheckpointCount: Int { ownCheckpoints.count }
}
