public import PBFTCore
public import PBFTWire

/// What a faulty replica does, in the simulator or in a real replica process started with
/// `--allow-byzantine`. The layer runs after the correct core and rewrites what it sends,
/// signing with the faulty replica's own key: it can lie, but only as itself.
public enum ByzantineBehaviour: String, CaseIterable, Hashable, Sendable {
    /// Receives everything, sends nothing.
    case silent
    /// As primary, sends no pre-prepares; otherwise correct.
    case mutePrimary
    /// As primary, holds back every pre-prepare for three view-change timeouts.
    case slowPrimary
    /// As primary, sends half the backups a different batch for the same sequence number
    /// (the requests reordered, or for a single request the previous batch).
    case equivocatingPrimary
    /// As primary, equivocates as `equivocatingPrimary` does and also votes for both
    /// batches: each half of the backups gets, with its pre-prepare, a prepare and a commit
    /// for its batch signed by the primary, and whatever the primary later sends for that
    /// sequence number (its own commit, retransmissions) tells each backup the same story.
    /// Its commit counts towards both batches: only quorums that share a correct replica
    /// keep them from both committing.
    case equivocatingVoter
    /// Prepares and commits carry a wrong digest.
    case wrongDigests
    /// Also re-sends old messages of its own to random replicas.
    case replayOld
    /// Also sends VIEW-CHANGE messages for far-future views.
    case viewChangeSpam
    /// As new primary, sends a NEW-VIEW whose O drops a prepared request (a null in its place).
    case dropPreparedInNewView
    /// Checkpoint messages carry a wrong state digest.
    case wrongCheckpoints
    /// Replies to clients carry a wrong result.
    case wrongReplies
    /// About half of what it sends, to replicas and to clients, carries a corrupted
    /// signature (a few bits of the real one flipped), decided per receiver, so its traffic
    /// is a mix of valid and invalid. A message that nests signed envelopes (a view-change's
    /// C and P, a new-view's V and O) sometimes has a nested signature corrupted instead,
    /// under an outer signature that verifies.
    case badSignatures
    /// Before each message it sends, sends f+1 copies that each claim another replica as
    /// sender (now and then one outside the membership), signed with its own key; then its
    /// genuine message. The copies agree on a wrong digest (pre-prepare, prepare, commit,
    /// checkpoint) or result (reply), so a receiver that believed the claimed senders would
    /// count conflicting votes of correct replicas ahead of their real ones, or take f+1
    /// matching wrong replies. Messages name their replica only as the envelope's sender, so
    /// that is the field forged. The genuine traffic keeps the faulty replica a useful voter:
    /// the forgeries must be refused without costing the genuine messages anything.
    case forgedSender
    /// Also sends every other replica, each tick, up to `garbagePerPeerMax` junk datagrams
    /// (`garbage(rng:)`, kinds in `GarbageKind`): random bytes, datagram and fragment
    /// headers over random content, its own frames truncated or with bits flipped, frames
    /// with random payloads, and messages with extreme field values signed as itself.
    case garbageFlood
}

public struct ByzantineLayer: Sendable {
    public let behaviour: ByzantineBehaviour
    let signer: any MessageSigner
    /// The membership of the epoch the replica is in (it follows reconfigurations).
    var membership: Membership
    var sentHistory: [Frame] = []
    /// The batch of its last pre-prepare (an equivocating primary's alternative to a single request).
    var previousBatch: [Envelope]?
    /// What an equivocating voter told the backups at its latest sequence numbers, oldest
    /// first, at most `equivocationsMax`.
    var equivocations: [Equivocation] = []
    /// Sequence numbers an equivocating voter keeps telling two stories about: twice the
    /// default log window (L = 128), more than a primary can have in flight; older ones are
    /// settled, by a checkpoint or a view change.
    static let equivocationsMax = 256
    /// Recent frames of its own, encoded, small enough to fit a datagram: a garbage flood
    /// sends them cut short or with bits flipped.
    var recentSmallFrames: [[UInt8]] = []
    /// Frames held back (slow primary) and the tick at which they go out.
    var held: [(release: UInt64, action: Action)] = []
    /// How long a slow primary holds each pre-prepare.
    public var holdTicks: UInt64 = 0
    /// Junk datagrams a garbage flood sends each other replica per tick, at most.
    public var garbagePerPeerMax = 50

    public init(behaviour: ByzantineBehaviour, signer: any MessageSigner, membership: Membership, holdTicks: UInt64 = 0) {
        self.behaviour = behaviour
        self.signer = signer
        self.membership = membership
        self.holdTicks = holdTicks
    }

    /// The held frames whose time has come.
    public mutating func release(at now: UInt64) -> [Action] {
        let due = held.filter { $0.release <= now }.map(\.action)
        held.removeAll { $0.release <= now }
        return due
    }

    /// The junk datagrams (runtime datagram format, see `GarbageKind`) to send now, each
    /// straight to a replica, bypassing the frame encoder; none unless the behaviour is
    /// `garbageFlood`. The runtime calls this each tick, the simulator too.
    public mutating func garbage(rng: inout SplitMix64) -> [(to: ReplicaID, bytes: [UInt8])] {
        guard behaviour == .garbageFlood else { return [] }
        let maker = GarbageMaker(signer: signer, epoch: membership.epoch)
        var junk: [(to: ReplicaID, bytes: [UInt8])] = []
        for peer in peers {
            let burst = maker.burst(budget: Int.random(in: 0...garbagePerPeerMax, using: &rng), ownFrames: recentSmallFrames, rng: &rng)
            junk += burst.map { (peer, $0) }
        }
        return junk
    }

    /// Rewrites one action of the faulty replica into what it actually sends.
    public mutating func rewrite(_ action: Action, replica: Replica<some StateMachine>, now: UInt64, rng: inout SplitMix64) -> [Action] {
        membership = replica.configuration.membership
        if case .broadcast(let frame) = action { remember(frame) }
        switch behaviour {
        case .silent:
            return action.isSend ? [] : [action]
        case .mutePrimary:
            if let frame = action.frame, case .prePrepare = frame.envelope.message, frame.envelope.sender == .replica(replica.id) {
                return []
            }
            return [action]
        case .slowPrimary:
            if let frame = action.frame, case .prePrepare = frame.envelope.message, frame.envelope.sender == .replica(replica.id) {
                held.append((now + holdTicks, action))
                return []
            }
            return [action]
        case .equivocatingPrimary:
            return equivocation(action, replica: replica)?.prePrepares ?? [action]
        case .equivocatingVoter:
            if let split = equivocation(action, replica: replica) {
                equivocations.append(split)
                if equivocations.count > Self.equivocationsMax { equivocations.removeFirst() }
                return split.prePrepares + split.votes(.prepare, seal: seal) + split.votes(.commit, seal: seal)
            }
            return retold(action) ?? [action]
        case .wrongDigests:
            guard case .broadcast(let frame) = action else { return [action] }
            switch frame.envelope.message {
            case .prepare(var v): v.batchDigest = randomDigest(&rng); return [.broadcast(Frame(envelope: seal(.prepare(v))))]
            case .commit(var v): v.batchDigest = randomDigest(&rng); return [.broadcast(Frame(envelope: seal(.commit(v))))]
            default: return [action]
            }
        case .replayOld:
            guard action.isSend, !sentHistory.isEmpty, rng.chance(0.5) else { return [action] }
            let old = sentHistory[Int.random(in: 0..<sentHistory.count, using: &rng)]
            let target = membership.replicas[Int.random(in: 0..<membership.n, using: &rng)].id
            return [action, .send(old, to: target)]
        case .viewChangeSpam:
            guard action.isSend, rng.chance(0.3) else { return [action] }
            let far = ViewNumber(replica.view.rawValue + UInt64.random(in: 2...1_000_000, using: &rng))
            let spam = ViewChange(newView: far, stableSequence: replica.lowWaterMark, checkpointProof: replica.lowWaterMark.rawValue == 0 ? [] : replica.stableProof, prepared: [])
            return [action, .broadcast(Frame(envelope: seal(.viewChange(spam))))]
        case .dropPreparedInNewView:
            guard case .broadcast(let frame) = action, case .newView(var newView) = frame.envelope.message,
                  let index = newView.prePrepares.firstIndex(where: { if case .prePrepare(let p) = $0.message { p.batchDigest != .zero } else { false } }),
                  case .prePrepare(var p) = newView.prePrepares[index].message
            else { return [action] }
            p.batchDigest = .zero
            newView.prePrepares[index] = seal(.prePrepare(p))
            return [.broadcast(Frame(envelope: seal(.newView(newView))))]
        case .wrongCheckpoints:
            guard case .broadcast(let frame) = action, case .checkpoint(var c) = frame.envelope.message else { return [action] }
            c.stateDigest = randomDigest(&rng)
            return [.broadcast(Frame(envelope: seal(.checkpoint(c))))]
        case .wrongReplies:
            // A lie it signs: the wrong result in a tree of its own, so the proof holds.
            guard case .reply(let frame, let to) = action, var reply = frame.reply?.reply else { return [action] }
            reply.result = [UInt8(truncatingIfNeeded: rng.next())] + reply.result.reversed()
            let tree = ReplyTree([reply], digester: replica.digester)
            return [.reply(Frame(envelope: seal(.reply(tree.root)), reply: ProvenReply(reply: reply, index: 0, path: tree.paths[0])), to: to)]
        case .badSignatures:
            return corruptSignatures(action, rng: &rng)
        case .forgedSender:
            return forgeries(of: action, rng: &rng) + [action]
        case .garbageFlood:
            return [action]
        }
    }

    /// For a pre-prepare the primary broadcasts, two stories: the backups in id order get
    /// alternately its batch and another valid batch for the same sequence number (the same
    /// requests in another order, or, for a single request, the batch before it: its requests
    /// are signed by their clients; ordered again they would change nothing, but the digest
    /// differs). Nil for any other action, or when there is no other batch to tell.
    private mutating func equivocation(_ action: Action, replica: Replica<some StateMachine>) -> Equivocation? {
        guard case .broadcast(let frame) = action, case .prePrepare(let p) = frame.envelope.message, !frame.batch.isEmpty else {
            return nil
        }
        let previous = previousBatch
        previousBatch = frame.batch
        let other: [Envelope]
        if frame.batch.count >= 2 {
            other = Array(frame.batch.reversed())
        } else if let previous, previous != frame.batch {
            other = previous
        } else {
            return nil
        }
        let forged = PrePrepare(view: p.view, sequence: p.sequence, batchDigest: digest(other, replica: replica))
        let stories = [frame, Frame(envelope: seal(.prePrepare(forged)), batch: other)]
        let told = backups(of: replica).enumerated().map { (backup: $1, story: $0 % 2) }
        return Equivocation(view: p.view, sequence: p.sequence, stories: stories, told: told)
    }

    /// An equivocating voter's later message for a sequence number it equivocated on (the
    /// core's commit once its own batch prepared, a pre-prepare or vote it retransmits), sent
    /// to each backup as the story that backup was told; nil for anything else.
    private func retold(_ action: Action) -> [Action]? {
        guard let frame = action.frame, frame.envelope.sender == signer.principal else { return nil }
        let view: ViewNumber, sequence: SequenceNumber
        switch frame.envelope.message {
        case .prePrepare(let p): (view, sequence) = (p.view, p.sequence)
        case .prepare(let v), .commit(let v): (view, sequence) = (v.view, v.sequence)
        default: return nil
        }
        guard let split = equivocations.last(where: { $0.view == view && $0.sequence == sequence }) else { return nil }
        let receivers: [ReplicaID]
        switch action {
        case .send(_, let to): receivers = [to]
        default: receivers = peers
        }
        return receivers.map { receiver in
            guard let story = split.story(of: receiver) else { return .send(frame, to: receiver) }
            switch frame.envelope.message {
            case .prePrepare: return .send(split.stories[story], to: receiver)
            case .prepare: return .send(split.vote(.prepare, story: story, seal: seal), to: receiver)
            default: return .send(split.vote(.commit, story: story, seal: seal), to: receiver)
            }
        }
    }

    /// Each receiver's copy has, with probability one half, a corrupted signature.
    private func corruptSignatures(_ action: Action, rng: inout SplitMix64) -> [Action] {
        switch action {
        case .send(let frame, let to):
            return [.send(rng.chance(0.5) ? corrupted(frame, &rng) : frame, to: to)]
        case .broadcast(let frame):
            return peers.map { .send(rng.chance(0.5) ? corrupted(frame, &rng) : frame, to: $0) }
        case .reply(let frame, let to):
            return [.reply(rng.chance(0.5) ? corrupted(frame, &rng) : frame, to: to)]
        default:
            return [action]
        }
    }

    private func corrupted(_ frame: Frame, _ rng: inout SplitMix64) -> Frame {
        var envelope = frame.envelope
        switch envelope.message {
        case .viewChange(var v) where !v.checkpointProof.isEmpty && rng.chance(0.5):
            let i = Int.random(in: 0..<v.checkpointProof.count, using: &rng)
            v.checkpointProof[i].signature = flipped(v.checkpointProof[i].signature, &rng)
            envelope = seal(.viewChange(v))
        case .viewChange(var v) where !v.prepared.isEmpty && rng.chance(0.5):
            let i = Int.random(in: 0..<v.prepared.count, using: &rng)
            v.prepared[i].prePrepare.signature = flipped(v.prepared[i].prePrepare.signature, &rng)
            envelope = seal(.viewChange(v))
        case .newView(var n) where !n.viewChanges.isEmpty && rng.chance(0.5):
            let i = Int.random(in: 0..<n.viewChanges.count, using: &rng)
            n.viewChanges[i].signature = flipped(n.viewChanges[i].signature, &rng)
            envelope = seal(.newView(n))
        case .newView(var n) where !n.prePrepares.isEmpty && rng.chance(0.5):
            let i = Int.random(in: 0..<n.prePrepares.count, using: &rng)
            n.prePrepares[i].signature = flipped(n.prePrepares[i].signature, &rng)
            envelope = seal(.newView(n))
        case .reply where frame.reply != nil && rng.chance(0.5):
            // The signature holds; the reply no longer matches the root it signed.
            var tampered = frame
            tampered.reply?.reply.result.append(UInt8(truncatingIfNeeded: rng.next()))
            return tampered
        default:
            envelope.signature = flipped(envelope.signature, &rng)
        }
        var result = frame
        result.envelope = envelope
        return result
    }

    /// The signature with one to three of its bits flipped.
    private func flipped(_ signature: Signature, _ rng: inout SplitMix64) -> Signature {
        var bytes = signature.bytes
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
        }
        guard let result = Signature(bytes: bytes) else { preconditionFailure("a signature of \(bytes.count) bytes") }
        return result
    }

    /// Forged copies of a send, each claiming another replica, to the same receivers.
    private func forgeries(of action: Action, rng: inout SplitMix64) -> [Action] {
        let envelope: Envelope
        switch action {
        case .send(let frame, _), .broadcast(let frame): envelope = frame.envelope
        case .reply(let frame, _): envelope = frame.envelope
        default: return []
        }
        let message = falsified(envelope.message, rng: &rng)
        return claimants(rng: &rng).map { claimed in
            let forged = Envelope(
                sender: .replica(claimed), epoch: envelope.epoch, message: message,
                signature: signer.sign(Envelope.signedBytes(sender: .replica(claimed), epoch: envelope.epoch, message: message)))
            switch action {
            case .send(_, let to): return .send(Frame(envelope: forged), to: to)
            case .reply(let frame, let to): return .reply(Frame(envelope: forged, reply: frame.reply), to: to)
            default: return .broadcast(Frame(envelope: forged))
            }
        }
    }

    /// f+1 other replicas, and with probability 1/8 one id no replica has.
    private func claimants(rng: inout SplitMix64) -> [ReplicaID] {
        var others = peers
        others.shuffle(using: &rng)
        var claimed = Array(others.prefix(membership.f + 1))
        if rng.chance(0.125), let highest = membership.replicas.map(\.id).max() {
            claimed.append(ReplicaID(highest.rawValue &+ UInt32.random(in: 1...1_000, using: &rng)))
        }
        return claimed
    }

    /// The message with its digest or result made wrong, where it has one.
    private func falsified(_ message: Message, rng: inout SplitMix64) -> Message {
        switch message {
        case .prePrepare(var p): p.batchDigest = randomDigest(&rng); return .prePrepare(p)
        case .prepare(var v): v.batchDigest = randomDigest(&rng); return .prepare(v)
        case .commit(var v): v.batchDigest = randomDigest(&rng); return .commit(v)
        case .checkpoint(var c): c.stateDigest = randomDigest(&rng); return .checkpoint(c)
        case .reply(var r): r.root = randomDigest(&rng); return .reply(r)
        default: return message
        }
    }

    private mutating func remember(_ frame: Frame) {
        sentHistory.append(frame)
        if sentHistory.count > 64 { sentHistory.removeFirst() }
        guard behaviour == .garbageFlood else { return }
        let bytes = frame.encoded()
        guard bytes.count <= GarbageMaker.ownFrameBytesMax else { return }
        recentSmallFrames.append(bytes)
        if recentSmallFrames.count > 16 { recentSmallFrames.removeFirst() }
    }

    private func seal(_ message: Message) -> Envelope { Envelope.seal(message, epoch: membership.epoch, signer: signer) }

    private func backups(of replica: Replica<some StateMachine>) -> [ReplicaID] {
        membership.replicas.map(\.id).filter { $0 != replica.id }
    }

    /// Every replica but this one.
    private var peers: [ReplicaID] {
        membership.replicas.map(\.id).filter { .replica($0) != signer.principal }
    }

    private func randomDigest(_ rng: inout SplitMix64) -> Digest {
        Digest(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next())
    }

    private func digest(_ batch: [Envelope], replica: Replica<some StateMachine>) -> Digest {
        replica.digest(ofBatch: batch)
    }
}

/// The two stories an equivocating primary told at one view and sequence number.
struct Equivocation: Sendable {
    enum VoteKind { case prepare, commit }

    let view: ViewNumber
    let sequence: SequenceNumber
    /// Two pre-prepares with their batches: the primary's own, and the other.
    let stories: [Frame]
    /// Each backup, in id order, with the index of the story it was told.
    let told: [(backup: ReplicaID, story: Int)]

    /// Each backup's pre-prepare, in id order.
    var prePrepares: [Action] { told.map { .send(stories[$0.story], to: $0.backup) } }

    func story(of backup: ReplicaID) -> Int? { told.first { $0.backup == backup }?.story }

    /// A prepare or commit in the primary's name for one story's batch.
    func vote(_ kind: VoteKind, story: Int, seal: (Message) -> Envelope) -> Frame {
        guard case .prePrepare(let p) = stories[story].envelope.message else { preconditionFailure("a story starts with a pre-prepare") }
        let vote = Vote(view: view, sequence: sequence, batchDigest: p.batchDigest)
        return Frame(envelope: seal(kind == .prepare ? .prepare(vote) : .commit(vote)))
    }

    /// To each backup, the primary's vote for the batch it was told; each signed once.
    func votes(_ kind: VoteKind, seal: (Message) -> Envelope) -> [Action] {
        let signed = stories.indices.map { vote(kind, story: $0, seal: seal) }
        return told.map { .send(signed[$0.story], to: $0.backup) }
    }
}

extension Action {
    var frame: Frame? {
        switch self {
        case .send(let frame, _), .broadcast(let frame): frame
        default: nil
        }
    }

    var isSend: Bool {
        switch self {
        case .send, .broadcast, .reply: true
        default: false
        }
    }
}
