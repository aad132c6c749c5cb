import PBFTWire

// Retransmission. Datagrams get lost, so a replica that has work ahead of it (log entries
// above what it executed, or queued requests) but has made no progress for a status
// interval tells the others where it stands; each peer answers, at most once per interval,
// with what it holds that the sender may lack. The paper's implementation does the same
// with status messages.

extension Replica {
    var hasWorkAhead: Bool {
        // The end of an epoch waiting to be reached is work too (its timer runs, and it must
        // hear the others to judge the primary that should fill it).
        // So is a passive peer's fill (`awaitFillForPassive`).
        epochStart == nil || !viewActive || amnesia != nil || nextEpoch != nil || !pendingRequests.isEmpty || !passiveSince.isEmpty
            || log.keys.contains { $0 > lastExecuted }
            || checkpointVotes.keys.contains { $0 > lastExecuted }
    }

    /// Where this replica stands, as its STATUS tells the others.
    var ownStatus: Status {
        Status(
            view: view, stableSequence: waterMarks.low, lastExecuted: lastExecuted, viewChanging: !viewActive, passive: amnesia != nil,
            suspecting: suspectsPrimary)
    }

    mutating func sendStatusIfStuck() {
        let interval = UInt64(configuration.statusIntervalTicks)
        guard now - lastProgressTick >= interval, now - lastStatusTick >= interval else { return }
        // With nothing ahead, a slow heartbeat still lets a replica that missed everything
        // learn from the answers (newer checkpoints) that it is behind.
        guard hasWorkAhead || now - lastStatusTick >= interval * 10 else { return }
        broadcastStatus()
    }

    /// Tells every replica where this one stands (and what it suspects) now.
    mutating func broadcastStatus() {
        lastStatusTick = now
        counters.statusSent += 1
        emit(.broadcast(Frame(envelope: sign(.status(ownStatus)))))
    }

    /// Resends, for each sequence number the peer has not executed, the pre-prepare with its
    /// batch (forwarding the primary's signed message is as good as the primary sending it),
    /// this replica's own prepare and commit, and its checkpoints above the peer's h.
    mutating func onStatus(_ status: Status, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        noteAmnesiaReport(status.stableSequence, from: sender)
        if status.passive { fillNullsForPassive(sender) }
        awaitFillForPassive(sender, passive: status.passive)
        // The primary itself says it is passive: it cannot propose anything (not even the
        // null requests it needs to rejoin) until it is active again. Its own signed word is
        // enough to move on; a faulty primary that lies only gives its view away.
        if status.passive, sender == primary, status.view == view, viewActive, !isPrimary, amnesia == nil,
           (suspicions[id] ?? ViewNumber(0)) <= view {
            counters.passivePrimaryViewChanges += 1
            suspectPrimary()
        }
        // Suspicion, and a view change under way, are requests for the next view.
        if status.suspecting { noteAsking(for: ViewNumber(status.view.rawValue + 1), from: sender) }
        if status.viewChanging { noteAsking(for: status.view, from: sender) }
        if let last = lastStatusAnswer[sender], now - last < UInt64(configuration.statusIntervalTicks) {
            return drop(.duplicate)
        }
        lastStatusAnswer[sender] = now
        var resent: [Envelope] = []
        // Checkpoints do not depend on views: a peer behind our stable checkpoint gets its
        // whole proof (enough to fetch the state), and our checkpoints above its own.
        if status.stableSequence < waterMarks.low {
            resent += stableProof
            // Tell it where we stand too: a replica rejoining after amnesia needs the stable
            // checkpoints of 2f+1 replicas before it may sign anything.
            resent.append(sign(.status(ownStatus)))
        }
        for n in checkpointVotes.keys.sorted() where n > status.stableSequence {
            if let own = checkpointVotes[n]?.vote(of: id) { resent.append(own.envelope) }
        }
        for envelope in resent { emit(.send(Frame(envelope: envelope), to: sender)) }
        counters.retransmitted += resent.count

        if status.view < view || (status.view == view && (status.viewChanging || !viewActive)) {
            // The peer is in an older view, or still changing to ours: what moves it on is
            // the NEW-VIEW that started ours (anyone may forward the primary's signed
            // message), or, while we are changing too, our VIEW-CHANGE.
            guard mayResendViewMessage(to: sender) else { return }
            if let newView = newViewEnvelope, viewActive {
                emit(.send(Frame(envelope: newView), to: sender))
            } else if let own = viewChangeMessages[id], own.message.newView == view {
                emit(.send(Frame(envelope: own.envelope), to: sender))
            }
            counters.retransmitted += 1
            return
        }
        guard status.view == view else { return }
        var count = 0
        for n in log.keys.sorted() where n > status.lastExecuted {
            guard let slot = log[n] else { continue }
            if slot.committed, let digest = slot.batchDigest {
                // The whole commit certificate first: a peer that an equivocating primary sent
                // the other batch (and its own commit for it) never sees a quorum of commits
                // for this one otherwise, and cannot execute it (`adoptCommitted`).
                for commit in slot.commits.envelopes(matching: digest) where commit.sender != .replica(id) {
                    emit(.send(Frame(envelope: commit), to: sender))
                    count += 1
                }
            }
            if let prePrepare = slot.prePrepare, sender != primary {
                emit(.send(Frame(envelope: prePrepare, batch: slot.batch), to: sender))
                count += 1
            }
            if let prepare = slot.prepares.vote(of: id) {
                emit(.send(Frame(envelope: prepare.envelope), to: sender))
                count += 1
            }
            if let commit = slot.commits.vote(of: id) {
                emit(.send(Frame(envelope: commit.envelope), to: sender))
                count += 1
            }
        }
        counters.retransmitted += count
    }

    /// A backup expects the primary to order null requests for a passive peer (below): when
    /// no progress follows within a timeout, the primary is suspected like one that leaves a
    /// request waiting. Without this a primary that crashed in an idle cluster, or one that
    /// only pretends to work, kept the peer passive for good: nothing else runs a backup's
    /// timer once the load has ended (seeds 10010839, 10013144, 10018693). Progress in this
    /// view serves the peer (it may still need more checkpoints, which the load or the fill
    /// brings); a faulty peer that claims passivity for ever costs at most one wait a view.
    mutating func awaitFillForPassive(_ peer: ReplicaID, passive: Bool) {
        guard passive else {
            passiveSince[peer] = nil
            return
        }
        guard peer != primary, !isPrimary, viewActive, amnesia == nil, epochStart != nil, !retired,
              passiveSince[peer] == nil, passiveServed[peer] != view, membership.replica(peer) != nil
        else { return }
        passiveSince[peer] = now
        startViewChangeTimerIfNeeded()
    }

    /// A replica passive after amnesia rejoins once its stable checkpoint passes C + L (C
    /// the highest a quorum reported, `Replica+Amnesia.swift`); with no load nothing moves
    /// the checkpoints and it would stay passive, a fault the cluster keeps for good. So the
    /// primary orders null requests through the first checkpoint beyond everything it
    /// assigned plus the window (C is at most what it assigned). A faulty replica that
    /// claims to be passive makes it do so once per view at most.
    mutating func fillNullsForPassive(_ sender: ReplicaID) {
        guard isPrimary, viewActive, amnesia == nil, epochStart != nil, !retired, nextEpoch == nil,
              nullFillsGranted[sender] != view
        else { return }
        nullFillsGranted[sender] = view
        let k = UInt64(configuration.checkpointInterval)
        let beyond = lastAssigned.rawValue + UInt64(configuration.logWindow) + 1
        let target = SequenceNumber((beyond + k - 1) / k * k)
        nullFillThrough = max(nullFillThrough ?? target, target)
        proposeBatches()
    }

    /// NEW-VIEW and VIEW-CHANGE messages are large (each carries prepared certificates for
    /// up to L sequence numbers) and every replica in the view answers a peer that asks: sent
    /// to one peer again only after a gap that doubles from one status interval up to one
    /// view-change timeout, and starts over when this replica's view or its NEW-VIEW does.
    /// Without it a view change among many replicas floods them with copies that each cost
    /// hundreds of signature checks, and the view change never ends.
    mutating func mayResendViewMessage(to peer: ReplicaID) -> Bool {
        let interval = UInt64(configuration.statusIntervalTicks)
        let previous = viewResends[peer].flatMap { $0.view == view && $0.active == viewActive ? $0 : nil }
        if let previous, now - previous.at < previous.gap { return false }
        let gap = previous.map { min($0.gap * 2, max(interval, UInt64(configuration.viewChangeTimeoutTicks))) } ?? interval
        viewResends[peer] = ViewResend(view: view, active: viewActive, at: now, gap: gap)
        return true
    }
}

/// When a replica last resent its view's NEW-VIEW or VIEW-CHANGE to one peer, and the gap
/// before it does again.
struct ViewResend {
    var view: ViewNumber
    var active: Bool
    var at: UInt64
    var gap: UInt64
}
