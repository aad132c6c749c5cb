public import PBFTWire

/// A PBFT client as a pure state machine (§4.1): it signs a request, sends it to every
/// replica, waits for f+1 matching replies from different replicas, and on timeout sends
/// it to every replica again. One request is outstanding at a time; timestamps only grow.
///
/// The paper's client sends to the primary first and to everyone only on timeout; then a
/// crashed primary is noticed one retransmission timeout late, because the backups start
/// their view-change timers only when the request reaches them. Sending to every replica
/// at once starts those timers at once (a SIGKILLed primary is replaced one view-change
/// timeout after the kill), and costs no extra signature check: the copy a backup gets in
/// the pre-prepare is one it verified already (the shell's memo of verified signatures).
///
/// Clients follow reconfigurations: a replica that gets a request signed for an epoch no
/// longer in force answers with an `EpochAnnouncement` signed in that epoch. Once f+1
/// members of the epoch the client knows announce the same configuration, the client
/// adopts it (its keys, addresses and quorum sizes), signs the outstanding request again
/// for the new epoch and sends it to every replica of it.
public struct Client: Sendable {
    public enum Event: Sendable {
        case tick
        case message(Authenticated<Frame>)
    }

    public enum Action: Sendable, Equatable {
        /// To every replica of the client's membership.
        case broadcast(Frame)
        /// The outstanding request completed with this result, vouched for by f+1 replicas.
        case completed(timestamp: Timestamp, result: [UInt8])
        /// f+1 members of the old epoch announced this configuration: the shell now verifies
        /// with its keys and sends to its addresses.
        case epochChanged(Membership)
    }

    public private(set) var membership: Membership
    public let retransmitTimeoutTicks: Int
    let signer: any MessageSigner
    /// Checks the Merkle path of each reply against the root its replica signed.
    let digester: any MessageDigester

    /// The view learned from replies (f+1 of them vouch for it).
    public private(set) var view = ViewNumber(0)
    public private(set) var lastTimestamp: Timestamp
    public private(set) var now: UInt64 = 0
    private var outstanding: Envelope?
    private var deadline: UInt64 = 0
    private var replies: [ReplicaID: Reply] = [:] {
        didSet { if replies.isEmpty { proofs = [] } }
    }
    /// Proofs of the outstanding request's reply that checked out. Correct replicas build
    /// the same tree over the same batch, so their proofs are equal: an equal one (same
    /// root, reply, index and path) proves the same again without hashing its path.
    private var proofs: [(root: ReplyRoot, proven: ProvenReply)] = []
    private var announcements: [ReplicaID: EpochAnnouncement] = [:]
    public private(set) var retransmissions = 0

    /// `firstTimestamp` must exceed every timestamp this principal used before (a real
    /// client passes its clock in microseconds, so restarts keep timestamps growing).
    public init(
        membership: Membership, signer: any MessageSigner, digester: any MessageDigester, retransmitTimeoutTicks: Int, firstTimestamp: Timestamp = Timestamp(1)
    ) {
        precondition(retransmitTimeoutTicks >= 1, "retransmit timeout must be positive")
        precondition(firstTimestamp.rawValue >= 1, "timestamps start at 1")
        self.membership = membership
        self.signer = signer
        self.digester = digester
        self.retransmitTimeoutTicks = retransmitTimeoutTicks
        self.lastTimestamp = Timestamp(firstTimestamp.rawValue - 1)
    }

    public var isBusy: Bool { outstanding != nil }

    /// Whether `reply` answers the request outstanding: any other (one that comes after f+1
    /// matching replies completed it, a retransmission's) changes nothing, so a shell may
    /// drop it before checking its signature.
    public func awaits(_ reply: Reply) -> Bool {
        outstanding != nil && reply.requester == principal && reply.timestamp == lastTimestamp
    }
    public var principal: Principal { signer.principal }

    /// Signs and sends a new request. The caller waits for `.completed` before the next.
    public mutating func submit(_ operation: [UInt8]) -> [Action] {
        submit { .request(Request(timestamp: $0, operation: operation)) }
    }

    /// Signs and sends a reconfiguration (the signer must be the operator's).
    public mutating func submit(_ change: ReconfigurationChange) -> [Action] {
        submit { .reconfiguration(Reconfiguration(timestamp: $0, change: change)) }
    }

    private mutating func submit(_ make: (Timestamp) -> Message) -> [Action] {
        precondition(outstanding == nil, "one request at a time")
        lastTimestamp = Timestamp(lastTimestamp.rawValue + 1)
        let message = make(lastTimestamp)
        let envelope = Envelope.seal(message, epoch: membership.epoch, signer: signer)
        outstanding = envelope
        replies = [:]
        deadline = now + UInt64(retransmitTimeoutTicks)
        return [.broadcast(Frame(envelope: envelope))]
    }

    public mutating func step(_ event: Event) -> [Action] {
        switch event {
        case .tick:
            now += 1
            guard let request = outstanding, now >= deadline else { return [] }
            // §4.1: on timeout the client sends to all replicas again; a backup that holds
            // the request relays it to the primary, so a lossy link to the primary is bridged.
            retransmissions += 1
            deadline = now + UInt64(retransmitTimeoutTicks)
            return [.broadcast(Frame(envelope: request))]
        case .message(let frame):
            if case .epochAnnouncement(let announcement) = frame.value.envelope.message {
                return onAnnouncement(announcement, envelope: frame.value.envelope)
            }
            return onReply(frame.value)
        }
    }

    /// Collects announcements of a newer epoch from members of the current one; f+1 that
    /// agree include a correct replica, so the configuration they name is the real one.
    private mutating func onAnnouncement(_ announcement: EpochAnnouncement, envelope: Envelope) -> [Action] {
        guard case .replica(let replica) = envelope.sender, envelope.epoch == membership.epoch,
              membership.replica(replica) != nil, announcement.configuration.epoch > membership.epoch
        else { return [] }
        let first = announcements.isEmpty
        announcements[replica] = announcement
        let agreeing = announcements.values.filter { $0 == announcement }.count
        guard agreeing >= membership.weakQuorum, let next = try? Membership(record: announcement.configuration) else {
            // Ask every member, so that f+1 of them can answer.
            if first, let request = outstanding { return [.broadcast(Frame(envelope: request))] }
            return []
        }
        membership = next
        view = ViewNumber(0)
        announcements = [:]
        replies = [:]
        var actions: [Action] = [.epochChanged(next)]
        if let request = outstanding {
            let resigned = Envelope.seal(request.message, epoch: next.epoch, signer: signer)
            outstanding = resigned
            deadline = now + UInt64(retransmitTimeoutTicks)
            actions.append(.broadcast(Frame(envelope: resigned)))
        }
        return actions
    }

    /// A reply counts once its path leads to the root its replica signed: then the replica
    /// vouched for exactly this reply (the frame's signature is over the root alone).
    private mutating func onReply(_ frame: Frame) -> [Action] {
        guard case .reply(let root) = frame.envelope.message, case .replica(let replica) = frame.envelope.sender,
              let proven = frame.reply
        else { return [] }
        let reply = proven.reply
        guard membership.replica(replica) != nil, awaits(reply) else { return [] }
        if !proofs.contains(where: { $0.root == root && $0.proven == proven }) {
            guard root.proves(proven, digester: digester) else { return [] }
            proofs.append((root, proven))
        }
        replies[replica] = reply
        let matching = replies.values.filter { $0.result == reply.result }
        guard matching.count >= membership.weakQuorum else { return [] }
        // f+1 matching replies include one from a correct replica: the result is right.
        // Learn the view only as far as f+1 replicas vouch for it, so one liar cannot steer us.
        let vouched = matching.map(\.view).sorted(by: >)[membership.f]
        view = max(view, vouched)
        outstanding = nil
        replies = [:]
        return [.completed(timestamp: reply.timestamp, result: reply.result)]
    }
}
