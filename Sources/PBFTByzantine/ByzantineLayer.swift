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
    /// As primary, sends half the backups a different batch for the same sequence number.
    case equivocatingPrimary
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
}

public struct ByzantineLayer: Sendable {
    public let behaviour: ByzantineBehaviour
    let signer: any MessageSigner
    let membership: Membership
    var sentHistory: [Frame] = []
    /// Frames held back (slow primary) and the tick at which they go out.
    var held: [(release: UInt64, action: Action)] = []
    /// How long a slow primary holds each pre-prepare.
    public var holdTicks: UInt64 = 0

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

    /// Rewrites one action of the faulty replica into what it actually sends.
    public mutating func rewrite(_ action: Action, replica: Replica<some StateMachine>, now: UInt64, rng: inout SplitMix64) -> [Action] {
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
            guard case .broadcast(let frame) = action, case .prePrepare(let p) = frame.envelope.message, frame.batch.count >= 2 else {
                return [action]
            }
            let other = Array(frame.batch.reversed())
            let forged = Frame(envelope: seal(.prePrepare(PrePrepare(view: p.view, sequence: p.sequence, batchDigest: digest(other, replica: replica)))), batch: other)
            return backups(of: replica).enumerated().map { index, backup in
                .send(index % 2 == 0 ? frame : forged, to: backup)
            }
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
            guard case .reply(let envelope, let to) = action, case .reply(var r) = envelope.message else { return [action] }
            r.result = [UInt8(truncatingIfNeeded: rng.next())] + r.result.reversed()
            return [.reply(seal(.reply(r)), to: to)]
        }
    }

    private mutating func remember(_ frame: Frame) {
        sentHistory.append(frame)
        if sentHistory.count > 64 { sentHistory.removeFirst() }
    }

    private func seal(_ message: Message) -> Envelope { Envelope.seal(message, epoch: membership.epoch, signer: signer) }

    private func backups(of replica: Replica<some StateMachine>) -> [ReplicaID] {
        membership.replicas.map(\.id).filter { $0 != replica.id }
    }

    private func randomDigest(_ rng: inout SplitMix64) -> Digest {
        Digest(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next())
    }

    private func digest(_ batch: [Envelope], replica: Replica<some StateMachine>) -> Digest {
        replica.digest(ofBatch: batch)
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
