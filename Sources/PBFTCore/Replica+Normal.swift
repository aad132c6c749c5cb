public import PBFTWire

// The normal case (§4.2): request, pre-prepare, prepare, commit, execution, reply.

extension Envelope {
    /// The timestamp of a request or reconfiguration; nil for other messages.
    public var requestTimestamp: Timestamp? {
        switch message {
        case .request(let r): r.timestamp
        case .reconfiguration(let r): r.timestamp
        default: nil
        }
    }
}

extension Replica {
    // MARK: Requests

    /// §4.1/§4.2: a request already executed gets the cached reply; an older one is
    /// ignored; a new one is queued. The primary batches it; a backup starts its view-change
    /// timer. Clients send each request to every replica, so a backup relays one to the
    /// primary only when it comes again (the client retransmitted: the primary may not have
    /// it), not the first time (that would double what the primary receives).
    mutating func onRequest(_ envelope: Envelope) {
        let requester = envelope.sender
        guard let timestamp = envelope.requestTimestamp else { return drop(.unexpectedMessage) }
        if let cached = replyCache.entry(for: requester), timestamp <= cached.timestamp {
            guard timestamp == cached.timestamp else { return drop(.staleRequest) }
            // A retransmission: the client may have missed our reply.
            emitReplies([Reply(view: view, timestamp: timestamp, requester: requester, result: cached.result)])
            return
        }
        if let assigned = inLog[requester], timestamp <= assigned {
            // In an accepted pre-prepare but not executed, and the client is retransmitting:
            // a backup now waits for it (§4.4), so a primary that stalls it (by equivocating,
            // say) is replaced.
            if !isPrimary, timestamp == assigned {
                remember(envelope, timestamp: timestamp)
                startViewChangeTimerIfNeeded()
            }
            return drop(.duplicate)
        }
        if let queued = pendingRequests[requester], let queuedTimestamp = queued.requestTimestamp, timestamp <= queuedTimestamp {
            if !isPrimary, viewActive, timestamp == queuedTimestamp {
                // The client retransmitted to everyone: make sure the primary has it.
                emit(.send(Frame(envelope: envelope), to: primary))
            }
            return drop(.duplicate)
        }
        guard pendingRequests[requester] != nil || pendingRequests.count < configuration.requestsPendingMax else {
            return drop(.pendingFull)
        }
        remember(envelope, timestamp: timestamp)
        proposeBatches()
        startViewChangeTimerIfNeeded()
    }

    /// The primary assigns sequence numbers to queued requests while the window allows:
    /// inside the water marks and with at most `sequencesInFlightMax` unexecuted. Requests
    /// that arrive while the window is full wait and go out together: batching adapts to load.
    ///
    /// Once a reconfiguration has fixed the end of the epoch, nothing is assigned beyond it,
    /// and the primary fills the sequence numbers up to it with null requests when no
    /// request waits, so the next epoch starts without waiting for load.
    mutating func proposeBatches() {
        guard isPrimary, viewActive, amnesia == nil, epochStart != nil, !retired else { return }
        if let fill = nullFillThrough, lastAssigned >= fill { nullFillThrough = nil }
        while !pendingOrder.isEmpty || nextEpoch.map({ lastAssigned < $0.end }) == true || nullFillThrough.map({ lastAssigned < $0 }) == true {
            let next = SequenceNumber(lastAssigned.rawValue + 1)
            guard waterMarks.contains(next),
                  next.rawValue - lastExecuted.rawValue <= UInt64(configuration.sequencesInFlightMax),
                  next <= nextEpoch?.end ?? SequenceNumber(.max)
            else { return }
            var batch: [Envelope] = []
            while batch.count < configuration.batchSizeMax, !pendingOrder.isEmpty {
                // Its arrival stays in `pendingSince` until it executes: the primary times
                // its own proposals too (see `startViewChangeTimerIfNeeded`).
                let requester = pendingOrder.removeFirst()
                guard let request = pendingRequests.removeValue(forKey: requester), let timestamp = request.requestTimestamp else { continue }
                // A NEW-VIEW may already have put it in the log, or it may have executed meanwhile.
                guard timestamp > inLog[requester] ?? Timestamp(0), !replyCache.hasExecuted(requester, timestamp) else {
                    if inLog[requester] == nil { pendingSince[requester] = nil }
                    continue
                }
                batch.append(request)
            }
            guard !batch.isEmpty || nextEpoch != nil || nullFillThrough.map({ next <= $0 }) == true else { return }
            let prePrepare = PrePrepare(view: view, sequence: next, batchDigest: batchDigest(batch))
            let envelope = sign(.prePrepare(prePrepare))
            lastAssigned = next
            accept(prePrepare, envelope: envelope, batch: batch)
            persist(.prePrepare(Frame(envelope: envelope, batch: batch)))
            emit(.broadcast(Frame(envelope: envelope, batch: batch)))
        }
    }

    // MARK: Pre-prepare

    /// §4.2: a backup accepts a pre-prepare if it is signed by the primary of the current
    /// view, its sequence number lies between the water marks, its digest is the digest of
    /// its batch, and it has not accepted another pre-prepare for the same view and
    /// sequence number with a different digest. It then multicasts a prepare.
    mutating func onPrePrepare(_ prePrepare: PrePrepare, envelope: Envelope, batch: [Envelope]) {
        guard let sender = replicaSender(envelope) else { return }
        guard amnesia == nil else { return drop(.recovering) }
        guard viewActive else { return drop(.viewChanging) }
        guard prePrepare.view == view else { return drop(prePrepare.view < view ? .staleView : .futureView) }
        guard sender == primary else { return drop(.notFromPrimary) }
        guard waterMarks.contains(prePrepare.sequence), prePrepare.sequence <= nextEpoch?.end ?? SequenceNumber(.max) else {
            return drop(.outsideWaterMarks)
        }
        if let existing = log[prePrepare.sequence]?.batchDigest {
            if existing == prePrepare.batchDigest { return drop(.duplicate) }
            dropConflicting(envelope, earlier: log[prePrepare.sequence]?.prePrepare)
            return adoptCommitted(prePrepare, envelope: envelope, batch: batch)
        }
        guard isValidBatch(batch) else { return drop(.invalidBatch) }
        guard batchDigest(batch) == prePrepare.batchDigest else { return drop(.wrongDigest) }
        // A pre-prepare in our own name that we did not send: our key is in another process
        // (a twin) and someone forwarded its message. Byzantine input, not a broken invariant.
        guard !isPrimary else { return drop(.unexpectedSender) }

        accept(prePrepare, envelope: envelope, batch: batch)
        persist(.prePrepare(Frame(envelope: envelope, batch: batch)))
        let prepare = sign(.prepare(Vote(view: view, sequence: prePrepare.sequence, batchDigest: prePrepare.batchDigest)))
        _ = log[prePrepare.sequence, default: Slot()].prepares.insert(prepare, digest: prePrepare.batchDigest, from: id)
        emit(.broadcast(Frame(envelope: prepare)))
        checkPrepared(prePrepare.sequence)
    }

    /// An equivocating primary sent this replica one batch and a quorum another: the quorum
    /// committed theirs, and this replica, holding a pre-prepare that conflicts, could never
    /// execute the sequence number in this view; it would wait alone for a view change no
    /// one else needs. A quorum of matching commits proves the batch committed (at least
    /// quorum - f >= f + 1 correct replicas prepared it, and any quorum that prepares
    /// something else at this view and sequence number would share a correct replica with
    /// them), so the replica replaces its pre-prepare with the primary's other one and
    /// executes that batch. It signs nothing for it: its own prepare for the batch it was
    /// sent stands, and it never committed anything here (that would have needed a quorum
    /// of prepares, which the committed batch rules out).
    mutating func adoptCommitted(_ prePrepare: PrePrepare, envelope: Envelope, batch: [Envelope]) {
        let n = prePrepare.sequence
        // Prepared for another batch while a quorum committed this one cannot happen with at
        // most f faulty replicas; beyond f, it is still no reason to execute this one.
        guard var slot = log[n], !slot.committed, !slot.prepared,
              slot.commits.count(matching: prePrepare.batchDigest) >= membership.quorum,
              isValidBatch(batch), batchDigest(batch) == prePrepare.batchDigest
        else { return }
        for request in slot.batch {
            if let timestamp = request.requestTimestamp, inLog[request.sender] == timestamp { inLog[request.sender] = nil }
        }
        slot.prepared = true
        slot.committed = true
        log[n] = slot
        accept(prePrepare, envelope: envelope, batch: batch)
        counters.committedBatchesAdopted += 1
        executeReady()
    }

    /// Whether a sequence number above what this replica executed, not committed here, holds
    /// a quorum of matching commits: the batch is committed, so the primary is making
    /// progress and this replica is the one missing messages (the pre-prepare, prepares, or
    /// the batch the quorum committed); retransmission brings them. (f+1 commits would not
    /// do: they show only that a correct replica prepared, and under an equivocating primary
    /// such a slot may never commit, which would postpone every timer forever: seed
    /// 10006121.)
    func certifiedCommitAhead() -> Bool {
        log.contains { n, slot in
            n > lastExecuted && !slot.committed && slot.commits.digest(withAtLeast: membership.quorum) != nil
        }
    }

    /// Whether f+1 replicas vouch that the view is making progress beyond what this replica
    /// executed: f+1 matching commits above it (a correct replica prepared there) or f+1
    /// matching checkpoint messages above it (a correct replica executed that far). Weaker
    /// than a certificate (a slot an equivocating primary split may never commit), so it
    /// postpones the timer only a few times in a row (`weakPostponementsMax`): enough for
    /// retransmission to bring what is missing.
    func vouchedProgressAhead() -> Bool {
        log.contains { n, slot in
            n > lastExecuted && !slot.committed && slot.commits.digest(withAtLeast: membership.weakQuorum) != nil
        } || vouchedCheckpointAhead()
    }

    func vouchedCheckpointAhead() -> Bool {
        checkpointVotes.contains { n, votes in
            guard n > lastExecuted, let epoch = checkpointEpoch(of: n), let weak = knownMemberships[epoch]?.weakQuorum else { return false }
            return votes.digest(withAtLeast: weak) != nil
        }
    }

    /// A batch a correct primary could have sent: up to batchSizeMax requests or
    /// reconfigurations (none: a null request), at most one per requester, each from a
    /// member of the configuration and signed for the current epoch.
    func isValidBatch(_ batch: [Envelope]) -> Bool {
        guard batch.count <= configuration.batchSizeMax else { return false }
        var seen = Set<Principal>()
        for request in batch {
            guard request.requestTimestamp != nil, request.epoch == epoch, seen.insert(request.sender).inserted else { return false }
            switch request.sender {
            case .client(let client): guard membership.clientKey(client) != nil else { return false }
            case .operator: break
            case .replica: return false
            }
        }
        return true
    }

    mutating func accept(_ prePrepare: PrePrepare, envelope: Envelope, batch: [Envelope]) {
        var slot = log[prePrepare.sequence, default: Slot()]
        slot.prePrepare = envelope
        slot.batchDigest = prePrepare.batchDigest
        slot.batch = batch
        log[prePrepare.sequence] = slot
        for request in batch {
            guard let timestamp = request.requestTimestamp else { continue }
            if timestamp > inLog[request.sender] ?? Timestamp(0) { inLog[request.sender] = timestamp }
        }
    }

    /// Queues a request as pending unless a newer one from its requester already is or the
    /// queue is full.
    mutating func remember(_ request: Envelope, timestamp: Timestamp) {
        if let queued = pendingRequests[request.sender]?.requestTimestamp, queued >= timestamp { return }
        guard pendingRequests[request.sender] != nil || pendingRequests.count < configuration.requestsPendingMax else {
            return drop(.pendingFull)
        }
        if pendingRequests.updateValue(request, forKey: request.sender) == nil { pendingOrder.append(request.sender) }
        pendingSince[request.sender] = now
    }

    // MARK: Prepare and commit

    /// §4.2: prepares from backups of the current view with a sequence number between the
    /// water marks are logged, whether or not the pre-prepare has arrived yet.
    mutating func onPrepare(_ vote: Vote, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        guard amnesia == nil else { return drop(.recovering) }
        guard viewActive else { return drop(.viewChanging) }
        guard vote.view == view else { return drop(vote.view < view ? .staleView : .futureView) }
        guard sender != primary else { return drop(.unexpectedSender) }
        guard waterMarks.contains(vote.sequence) else { return drop(.outsideWaterMarks) }
        switch log[vote.sequence, default: Slot()].prepares.insert(envelope, digest: vote.batchDigest, from: sender) {
        case .added: checkPrepared(vote.sequence)
        case .duplicate: drop(.duplicate)
        case .conflicting: dropConflicting(envelope, earlier: log[vote.sequence]?.prepares.vote(of: sender)?.envelope)
        }
    }

    mutating func onCommit(_ vote: Vote, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        guard amnesia == nil else { return drop(.recovering) }
        guard viewActive else { return drop(.viewChanging) }
        guard vote.view == view else { return drop(vote.view < view ? .staleView : .futureView) }
        guard waterMarks.contains(vote.sequence) else { return drop(.outsideWaterMarks) }
        switch log[vote.sequence, default: Slot()].commits.insert(envelope, digest: vote.batchDigest, from: sender) {
        case .added: checkCommitted(vote.sequence)
        case .duplicate: drop(.duplicate)
        case .conflicting:
            dropConflicting(envelope, earlier: log[vote.sequence]?.commits.vote(of: sender)?.envelope)
            // A faulty replica's other commit counts when it completes a quorum (see
            // `VoteSet.replace`): the certificate is sound whichever of its votes it holds.
            let quorum = membership.quorum
            guard log[vote.sequence]?.commits.replace(envelope, digest: vote.batchDigest, from: sender, completing: quorum) == true else { return }
            checkCommitted(vote.sequence)
        }
    }

    /// Whether a message could still change anything here, judged from its unverified
    /// content so that a shell may skip checking the signatures of one that cannot: a
    /// prepare once the slot it votes for is prepared, a commit once it is committed (or
    /// executed), each matching the slot's digest. Such a vote would only be stored beside a
    /// complete certificate; a vote for another digest is still checked (it may be evidence
    /// of equivocation), and every other message is.
    public func mayUse(_ message: Message) -> Bool {
        let vote: Vote
        let certified: (Slot) -> Bool
        switch message {
        case .prepare(let v): (vote, certified) = (v, \.prepared)
        case .commit(let v): (vote, certified) = (v, \.committed)
        default: return true
        }
        guard viewActive, vote.view == view, let slot = log[vote.sequence], slot.batchDigest == vote.batchDigest else { return true }
        return !certified(slot)
    }

    /// §4.2: prepared(m, v, n, i) holds once the log has the pre-prepare and 2f prepares
    /// from different backups that match it (for any n: `quorum - 1` prepares, so that with
    /// the primary's pre-prepare a quorum vouches for the batch); the replica then
    /// multicasts a commit.
    mutating func checkPrepared(_ n: SequenceNumber) {
        guard var slot = log[n], !slot.prepared, let digest = slot.batchDigest else { return }
        guard slot.prepares.count(matching: digest, excluding: primary) >= membership.quorum - 1 else { return }
        slot.prepared = true
        if let prePrepare = slot.prePrepare {
            // Kept across views for VIEW-CHANGE's P: the pre-prepare, its batch, quorum - 1 prepares.
            let prepares = Array(slot.prepares.envelopes(matching: digest, excluding: primary).prefix(membership.quorum - 1))
            let certificate = PreparedCertificate(prePrepare: prePrepare, batch: slot.batch, prepares: prepares)
            preparedCertificates[n] = certificate
            persist(.prepared(certificate))
        }
        let commit = sign(.commit(Vote(view: view, sequence: n, batchDigest: digest)))
        _ = slot.commits.insert(commit, digest: digest, from: id)
        log[n] = slot
        emit(.broadcast(Frame(envelope: commit)))
        checkCommitted(n)
    }

    /// §4.2: committed-local(m, v, n, i) holds once prepared and a quorum (2f+1 at
    /// n = 3f+1) of matching commits (possibly including its own) are logged.
    mutating func checkCommitted(_ n: SequenceNumber) {
        guard var slot = log[n], slot.prepared, !slot.committed, let digest = slot.batchDigest else { return }
        guard slot.commits.count(matching: digest) >= membership.quorum else { return }
        slot.committed = true
        log[n] = slot
        executeReady()
    }

    // MARK: Execution

    /// §4.2: requests execute strictly in sequence-number order, each once.
    mutating func executeReady() {
        var executedAny = false
        // Nothing beyond the end of the epoch executes in it.
        while let slot = log[SequenceNumber(lastExecuted.rawValue + 1)], slot.committed, lastExecuted < nextEpoch?.end ?? SequenceNumber(.max) {
            let n = SequenceNumber(lastExecuted.rawValue + 1)
            execute(slot, at: n)
            lastExecuted = n
            executedAny = true
            if n.rawValue % UInt64(configuration.checkpointInterval) == 0 { takeCheckpoint(at: n) }
        }
        guard executedAny else { return }
        lastProgressTick = now
        if epochTailSince != nil { epochTailSince = now }
        for peer in passiveSince.keys { passiveServed[peer] = view }
        passiveSince = [:]
        // §4.5.2: the back-off resets once the new view executes a request.
        viewChangeTimeoutTicks = configuration.viewChangeTimeoutTicks
        weakPostponements = 0
        restartViewChangeTimer()
        proposeBatches()
    }

    mutating func execute(_ slot: Slot, at n: SequenceNumber) {
        precondition(slot.committed && n.rawValue == lastExecuted.rawValue + 1, "executing \(n) out of order after \(lastExecuted)")
        var executed: [ExecutedRequest] = []
        var replies: [Reply] = []
        for request in slot.batch {
            let requester = request.sender
            guard let timestamp = request.requestTimestamp else { continue }
            if inLog[requester] == timestamp { inLog[requester] = nil }
            // It no longer waits (nor does its timer), unless a newer one of its client does.
            if (pendingRequests[requester]?.requestTimestamp).map({ $0 <= timestamp }) ?? true { removePending(requester) }
            // Exactly once: a request no newer than the last one executed for its client is skipped.
            guard !replyCache.hasExecuted(requester, timestamp) else { continue }
            let result: [UInt8]
            switch request.message {
            case .request(let r): result = app.execute(r.operation, from: requester)
            case .reconfiguration(let r): result = reconfigure(r.change, at: n)
            default: result = Array("error: not a request".utf8)
            }
            replyCache.record(requester, timestamp, result: result)
            replies.append(Reply(view: view, timestamp: timestamp, requester: requester, result: result))
            executed.append(ExecutedRequest(
                requester: requester, timestamp: timestamp,
                requestDigest: digester.digest(request.encoded()), resultDigest: digester.digest(result)))
        }
        emitReplies(replies)
        counters.batchesExecuted += 1
        counters.requestsExecuted += executed.count
        emit(.executed(ExecutedBatch(sequence: n, view: view, batchDigest: slot.batchDigest ?? .zero, requests: executed)))
    }

    /// One signature for all of `replies`: the root of their Merkle tree, sent to each
    /// requester with the path that proves its reply a leaf (docs/protocol.md, "Replies").
    mutating func emitReplies(_ replies: [Reply]) {
        guard !replies.isEmpty else { return }
        let tree = ReplyTree(replies, digester: digester)
        let root = sign(.reply(tree.root))
        for (i, reply) in replies.enumerated() {
            emit(.reply(Frame(envelope: root, reply: ProvenReply(reply: reply, index: UInt32(i), path: tree.paths[i])), to: reply.requester))
        }
    }

    /// `pendingSince` times what this replica waits for: queued requests, and assigned ones
    /// not yet executed (the primary's own proposals, a retransmitted one at a backup). When
    /// the log is replaced wholesale (a state transfer, a new view, a new epoch) an entry whose
    /// request is neither queued nor logged any more would run the view-change timer for
    /// nothing: a primary that caught up by state transfer past its own proposals then
    /// suspected itself alone, with everything executed (seed 10016847).
    mutating func forgetSettledWaits() {
        pendingSince = pendingSince.filter { pendingRequests[$0.key] != nil || inLog[$0.key] != nil }
    }

    mutating func removePending(_ requester: Principal) {
        pendingSince[requester] = nil
        guard pendingRequests.removeValue(forKey: requester) != nil else { return }
        if let index = pendingOrder.firstIndex(of: requester) { pendingOrder.remove(at: index) }
    }
}
