public import PBFTWire

// Dynamic reconfiguration. An operator-signed reconfiguration is ordered like any request
// and executed at its sequence number s by every correct replica: each checks the change
// against the membership it would produce (n >= 3f+1, no duplicate id, address or key, a
// known replica to remove or replace) and replies with the outcome. A valid change decides
// the next epoch, which takes effect after the checkpoint boundary C at or above s:
//
// - nothing above C is assigned or executed in the old epoch; the primary fills (s, C]
//   with null requests when no request waits, so the switch does not wait for load;
// - the checkpoint at C is taken in the old epoch and signed by its members; its state
//   includes the configuration (see `checkpointState`), so a replica that installs it by
//   state transfer learns the next epoch from 2f+1 signatures;
// - a replica enters the new epoch when C is stable: views restart at 0 (the primary is
//   the first replica of the new membership), the log starts at C+1, and messages of the
//   old epoch are refused except what lets a replica still in it catch up (its
//   checkpoints, status and state transfer) and the announcements that tell clients;
// - a replica that is not a member of the new epoch retires; one that joins starts from
//   the new epoch's cluster file (which names the epoch before it), fetches the state at
//   C from the old members that certified it, and takes part from C+1.

/// The next epoch, decided by executed reconfigurations, and the sequence number after
/// which it takes effect.
public struct PendingEpoch: Hashable, Sendable {
    public var membership: Membership
    public var end: SequenceNumber
}

extension Replica {
    /// Frames of the next epoch kept for when this replica enters it.
    var futureFramesMax: Int { 4 * configuration.logWindow }
    /// Memberships kept for verification: enough for a client a few epochs behind.
    static var knownMembershipsMax: Int { 4 }

    /// The replicas a broadcast goes to: the other members of this epoch and, once the next
    /// epoch is decided, its members too (a joiner must see the checkpoint it starts from).
    public var peers: [ReplicaDescriptor] {
        // The common case, on every broadcast: no next epoch decided.
        guard let next = nextEpoch else { return membership.replicas.filter { $0.id != id } }
        var seen = Set<ReplicaID>([id])
        var peers: [ReplicaDescriptor] = []
        for replica in membership.replicas + next.membership.replicas where seen.insert(replica.id).inserted {
            peers.append(replica)
        }
        return peers
    }

    /// Wire limits for decoding what arrives: as `Configuration.receiveLimits`, for the
    /// largest membership this replica may hear from.
    public var receiveLimits: WireLimits {
        var limits = configuration.receiveLimits
        limits.replicasMax = min(configuration.limits.replicasMax, knownMemberships.values.map(\.n).max() ?? membership.n)
        return limits
    }

    /// The epoch whose members checkpoint sequence number `n` (the epoch that executes it),
    /// or nil while this replica joins and cannot tell.
    func checkpointEpoch(of n: SequenceNumber) -> Epoch? {
        guard let start = epochStart else { return nil }
        if n < start { return epoch.rawValue > 0 ? Epoch(epoch.rawValue - 1) : nil }
        if let next = nextEpoch, n > next.end { return next.membership.epoch }
        return epoch
    }

    // MARK: Executing a reconfiguration

    /// Executes a reconfiguration ordered at `n`: the result the operator sees.
    mutating func reconfigure(_ change: ReconfigurationChange, at n: SequenceNumber) -> [UInt8] {
        // Several changes ordered before the boundary compose into one next epoch.
        let next: Membership
        do { next = try (nextEpoch?.membership ?? membership).applying(change, epoch: Epoch(epoch.rawValue + 1)) } catch {
            return Array("error: \(error)".utf8)
        }
        guard next.n <= configuration.limits.replicasMax else {
            return Array("error: n = \(next.n) exceeds the wire limit replicasMax = \(configuration.limits.replicasMax)".utf8)
        }
        let interval = UInt64(configuration.checkpointInterval)
        let end = nextEpoch?.end ?? SequenceNumber((n.rawValue + interval - 1) / interval * interval)
        nextEpoch = PendingEpoch(membership: next, end: end)
        knownMemberships[next.epoch] = next
        epochTailSince = now
        startViewChangeTimerIfNeeded()
        return Array("ok: \(next.epoch) (n = \(next.n), f = \(next.f)) starts after sequence \(end.rawValue)".utf8)
    }

    // MARK: Entering the next epoch

    /// Called once the checkpoint that ends the epoch is stable here (taken, installed by
    /// state transfer, or restored from disk): the next epoch is in force from here on.
    mutating func enterNextEpoch() {
        guard let next = nextEpoch, lastExecuted == next.end, waterMarks.low == next.end else { return }
        epochStartProof = stableProof
        if let start = ownCheckpoints[next.end] {
            epochStartStates[next.end] = start
            epochStartProofs[next.end] = stableProof
            for old in epochStartStates.keys.sorted(by: >).dropFirst(Self.knownMembershipsMax) {
                epochStartStates[old] = nil
                epochStartProofs[old] = nil
            }
        }
        configuration.membership = next.membership
        knownMemberships[next.membership.epoch] = next.membership
        pruneKnownMemberships()
        epochStart = SequenceNumber(next.end.rawValue + 1)
        nextEpoch = nil
        epochTailSince = nil
        nullFillThrough = nil
        nullFillsGranted = [:]
        passiveSince = [:]
        passiveServed = [:]
        // Views restart with the epoch: the new membership decides the primary.
        view = ViewNumber(0)
        viewActive = true
        newViewEnvelope = nil
        viewChangeMessages = [:]
        suspicions = [:]
        viewChangeDeadline = nil
        viewChangeTimeoutTicks = configuration.viewChangeTimeoutTicks
        log = [:]
        preparedCertificates = [:]
        checkpointVotes = checkpointVotes.filter { $0.key > next.end }
        inLog = [:]
        lastAssigned = next.end
        lastStatusAnswer = [:]
        lastHeard = lastHeard.filter { membership.replica($0.key) != nil }
        lastProgressTick = now
        // Requests signed for the old epoch are not ordered in the new one: their senders
        // learn the new configuration and sign again.
        for requester in pendingOrder where pendingRequests[requester]?.epoch != epoch {
            if let old = pendingRequests[requester]?.epoch { announceEpoch(to: requester, knownEpoch: old) }
            removePending(requester)
        }
        forgetSettledWaits()
        emit(.epochStarted(membership, firstSequence: SequenceNumber(next.end.rawValue + 1)))
        if membership.replica(id) == nil {
            retired = true
            futureFrames = []
            emit(.retired(epoch))
            return
        }
        let frames = futureFrames
        futureFrames = []
        for frame in frames { onFrame(frame) }
        restartViewChangeTimer()
        proposeBatches()
    }

    mutating func pruneKnownMemberships() {
        let keep = Set(knownMemberships.keys.sorted(by: >).prefix(Self.knownMembershipsMax))
            .union([epoch]).union(nextEpoch.map { [$0.membership.epoch] } ?? [])
        knownMemberships = knownMemberships.filter { keep.contains($0.key) }
    }

    // MARK: Messages of other epochs

    /// A frame signed for another epoch than the one in force, or arriving while this replica
    /// joins or after it retired. Only what lets replicas and clients catch up is served.
    mutating func onFrameOutsideEpoch(_ frame: Frame) {
        let envelope = frame.envelope
        if retired {
            // A retired replica still serves the state it holds while its shell lets it run,
            // and the proof of the checkpoint that ended its epoch to members of that epoch
            // that lack it (its own checkpoint message may have been lost, and without it
            // they cannot reach 2f+1 once the others moved on).
            // It also tells clients and the operator still in its last epoch which
            // configuration replaced it: with f of that epoch's members retired this way and
            // one faulty, the others alone could not make the f+1 agreeing announcements a
            // client needs to follow.
            switch envelope.message {
            case .stateRequest(let request): return onStateRequest(request, envelope: envelope)
            case .status(let status): return onStaleStatus(status, envelope: envelope)
            case .request, .reconfiguration: return announceEpoch(to: envelope.sender, knownEpoch: envelope.epoch)
            default: return drop(.retired)
            }
        }
        if epochStart == nil {
            // Joining: only what leads to a certified state of the epoch being joined.
            switch envelope.message {
            case .checkpoint(let c): return onCheckpoint(c, envelope: envelope)
            case .stateChunk(let c): return onStateChunk(c, envelope: envelope)
            default: return drop(.joining)
            }
        }
        if envelope.epoch > epoch {
            if let next = nextEpoch, envelope.epoch == next.membership.epoch {
                guard futureFrames.count < futureFramesMax else { return drop(.futureEpoch) }
                futureFrames.append(frame)
                return
            }
            // A later epoch this replica missed: its checkpoints and state still help.
            switch envelope.message {
            case .checkpoint(let c): return onCheckpoint(c, envelope: envelope)
            case .stateChunk(let c): return onStateChunk(c, envelope: envelope)
            default: return drop(.futureEpoch)
            }
        }
        switch envelope.message {
        case .checkpoint(let c): onCheckpoint(c, envelope: envelope)
        case .stateRequest(let r): onStateRequest(r, envelope: envelope)
        case .stateChunk(let c): onStateChunk(c, envelope: envelope)
        case .status(let s): onStaleStatus(s, envelope: envelope)
        case .request, .reconfiguration: announceEpoch(to: envelope.sender, knownEpoch: envelope.epoch)
        default: drop(.staleEpoch)
        }
    }

    /// A replica still in an older epoch asks where things stand: the stable checkpoint
    /// that ended its epoch (signed by its members) lets it fetch the state and follow. One
    /// several epochs behind gets the proof of the next epoch start above its stable
    /// checkpoint (the only one it can verify), climbs to it, and asks again.
    mutating func onStaleStatus(_ status: Status, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        // (start is at least 1; the peer's numbers are untrusted, so no arithmetic on them)
        guard let start = epochStart, status.stableSequence < SequenceNumber(start.rawValue - 1), !epochStartProof.isEmpty else {
            return drop(.staleEpoch)
        }
        if let last = lastStatusAnswer[sender], now - last < UInt64(configuration.statusIntervalTicks) { return drop(.duplicate) }
        lastStatusAnswer[sender] = now
        let next = epochStartProofs.keys.filter { $0 > status.stableSequence }.min()
        let proof = next.flatMap { epochStartProofs[$0] } ?? epochStartProof
        for envelope in proof { emit(.send(Frame(envelope: envelope), to: sender)) }
        counters.retransmitted += proof.count
    }

    /// Tells a client (or the operator) that signed for an older epoch which configuration
    /// is in force, signed in the epoch it knows (if this replica was a member of it), at
    /// most once per status interval per principal.
    mutating func announceEpoch(to principal: Principal, knownEpoch: Epoch) {
        guard let start = epochStart, knownEpoch < epoch, knownMemberships[knownEpoch]?.replica(id) != nil else {
            return drop(.staleEpoch)
        }
        if let last = lastAnnouncement[principal], now - last < UInt64(configuration.statusIntervalTicks) { return drop(.staleEpoch) }
        if lastAnnouncement.count >= configuration.requestsPendingMax { lastAnnouncement = [:] }
        lastAnnouncement[principal] = now
        let announcement = EpochAnnouncement(configuration: membership.record, firstSequence: start)
        emit(.reply(Frame(envelope: Envelope.seal(.epochAnnouncement(announcement), epoch: knownEpoch, signer: signer)), to: principal))
    }

    /// The epoch to sign an answer in, to a message signed in `epoch`: that epoch when this
    /// replica was a member of it (so a sender still there can verify the answer), else the
    /// current one. The runtime answers control commands by the same rule.
    public func answerEpoch(to epoch: Epoch) -> Epoch {
        knownMemberships[epoch]?.replica(id) != nil ? epoch : self.epoch
    }

    func sign(_ message: Message, answering envelope: Envelope) -> Envelope {
        Envelope.seal(message, epoch: answerEpoch(to: envelope.epoch), signer: signer)
    }

    // MARK: The configuration in checkpointed state

    /// The configuration section of the checkpointed state: the current membership, the
    /// sequence number its epoch started at, and the next epoch with its end if decided.
    func configurationState() -> [UInt8] {
        var bytes = membership.record.encoded()
        Bytes.append(epochStart?.rawValue ?? 0, to: &bytes)
        if let next = nextEpoch {
            bytes.append(1)
            bytes.append(contentsOf: next.membership.record.encoded())
            Bytes.append(next.end.rawValue, to: &bytes)
        } else {
            bytes.append(0)
        }
        return bytes
    }

    /// Parses `configurationState()` at `offset`; nil if it does not parse or breaks a rule.
    static func decodeConfigurationState(_ bytes: [UInt8], offset: inout Int) -> (current: Membership, start: SequenceNumber, next: PendingEpoch?)? {
        guard let record = try? ConfigurationRecord.decode(bytes, offset: &offset), let current = try? Membership(record: record),
              let start = Bytes.readU64(bytes, &offset), start >= 1, offset < bytes.count
        else { return nil }
        let hasNext = bytes[offset]
        offset += 1
        switch hasNext {
        case 0: return (current, SequenceNumber(start), nil)
        case 1:
            guard let nextRecord = try? ConfigurationRecord.decode(bytes, offset: &offset), let next = try? Membership(record: nextRecord),
                  next.epoch.rawValue == current.epoch.rawValue &+ 1, let end = Bytes.readU64(bytes, &offset), end < .max
            else { return nil }
            return (current, SequenceNumber(start), PendingEpoch(membership: next, end: SequenceNumber(end)))
        default: return nil
        }
    }

    /// Takes the configuration from a restored state (2f+1 replicas certified it, or this
    /// replica wrote it): the membership and epoch boundaries follow the state.
    mutating func adoptConfiguration(current: Membership, start: SequenceNumber, next: PendingEpoch?) {
        if current.epoch != epoch {
            view = ViewNumber(0)
            viewActive = true
            newViewEnvelope = nil
            viewChangeMessages = [:]
            suspicions = [:]
            passiveSince = [:]
            passiveServed = [:]
            viewChangeDeadline = nil
            log = [:]
            preparedCertificates = [:]
            inLog = [:]
            forgetSettledWaits()
        }
        configuration.membership = current
        knownMemberships[current.epoch] = current
        if let next { knownMemberships[next.membership.epoch] = next.membership }
        epochStart = start
        nextEpoch = next
        epochTailSince = next.map { _ in now }
        pruneKnownMemberships()
        retired = current.replica(id) == nil && next?.membership.replica(id) == nil
    }
}

extension Membership: CustomStringConvertible {
    public var description: String { "\(epoch) (n = \(n), f = \(f), replicas \(replicas.map { String($0.id.rawValue) }.joined(separator: ",")))" }
}
