public import PBFTWire

// Checkpoints and garbage collection (§4.3).

extension Replica {
    /// The checkpointed state: the application's snapshot (length-prefixed), the reply
    /// cache and the configuration (the epoch in force, where it started, and the next
    /// one if decided), so its digest covers everything that decides future replies and
    /// who takes part: a replica that installs it by state transfer learns the membership
    /// from 2f+1 signatures, not from any one replica.
    func checkpointState() -> [UInt8] {
        let snapshot = app.snapshot()
        var state: [UInt8] = []
        Bytes.append(UInt64(snapshot.count), to: &state)
        state.append(contentsOf: snapshot)
        state.append(contentsOf: replyCache.encoded())
        state.append(contentsOf: configurationState())
        return state
    }

    /// §4.3: after executing a multiple of K, a replica multicasts a signed checkpoint with
    /// the digest of its state, and keeps that state until a later checkpoint is stable.
    mutating func takeCheckpoint(at n: SequenceNumber) {
        let state = checkpointState()
        let checkpoint = Checkpoint(sequence: n, stateDigest: digester.digest(state))
        ownCheckpoints[n] = (checkpoint.stateDigest, state)
        let envelope = sign(.checkpoint(checkpoint))
        _ = checkpointVotes[n, default: VoteSet()].insert(envelope, digest: checkpoint.stateDigest, from: id)
        emit(.checkpointTaken(checkpoint))
        emit(.broadcast(Frame(envelope: envelope)))
        checkStable(n)
    }

    /// Checkpoint messages above h and inside the window are kept, one per replica per
    /// sequence number; anything else is dropped, so their memory is bounded by n * L / K.
    mutating func onCheckpoint(_ checkpoint: Checkpoint, envelope: Envelope) {
        guard let sender = checkpointSender(envelope) else { return }
        guard checkpoint.sequence.rawValue % UInt64(configuration.checkpointInterval) == 0 else { return drop(.outsideWaterMarks) }
        guard checkpoint.sequence > waterMarks.low else { return drop(.duplicate) }
        // Each sequence number is checkpointed in the epoch that executed it. A checkpoint of
        // another epoch than this replica expects there (or any, while it joins) only helps
        // to find a certified state ahead.
        let expected = checkpointEpoch(of: checkpoint.sequence)
        guard checkpoint.sequence <= waterMarks.high, envelope.epoch == expected else {
            if let expected, envelope.epoch < expected { return drop(.staleEpoch) }
            // Beyond the window: keep each replica's newest few, to learn we are behind and
            // which checkpoint 2f+1 of them certify.
            var held = aheadCheckpoints[sender] ?? [:]
            if let earlier = held[checkpoint.sequence] {
                guard earlier != envelope, case .checkpoint(let c) = earlier.message, c.stateDigest != checkpoint.stateDigest else {
                    return drop(.duplicate)
                }
                dropConflicting(envelope, earlier: earlier)
                // As below the window: a faulty replica's later vote counts when it completes a
                // quorum, so its wrong first one cannot hide a certified checkpoint ahead.
                let matching = aheadCheckpoints.values.filter { votes in
                    if case .checkpoint(let other)? = votes[checkpoint.sequence]?.message, votes[checkpoint.sequence]?.epoch == envelope.epoch {
                        other.stateDigest == checkpoint.stateDigest
                    } else {
                        false
                    }
                }.count
                guard let quorum = knownMemberships[envelope.epoch]?.quorum, matching + 1 >= quorum else { return }
                held[checkpoint.sequence] = envelope
                aheadCheckpoints[sender] = held
                return
            }
            held[checkpoint.sequence] = envelope
            if held.count > aheadCheckpointsPerReplica, let lowest = held.keys.min() {
                held[lowest] = nil
                if lowest == checkpoint.sequence { return drop(.duplicate) }
            }
            aheadCheckpoints[sender] = held
            return
        }
        switch checkpointVotes[checkpoint.sequence, default: VoteSet()].insert(envelope, digest: checkpoint.stateDigest, from: sender) {
        case .added: checkStable(checkpoint.sequence)
        case .duplicate: drop(.duplicate)
        case .conflicting:
            dropConflicting(envelope, earlier: checkpointVotes[checkpoint.sequence]?.vote(of: sender)?.envelope)
            // A faulty replica that sent a wrong digest first and the right one later must not
            // keep the checkpoint from becoming stable here: when a correct replica's vote is
            // missing (it moved on to the next epoch, and its checkpoint was lost), the right
            // one is needed. Taken only when it completes a quorum.
            let n = checkpoint.sequence
            guard let epoch = expected, let quorum = knownMemberships[epoch]?.quorum,
                  checkpointVotes[n]?.replace(envelope, digest: checkpoint.stateDigest, from: sender, completing: quorum) == true
            else { return }
            checkStable(n)
        }
    }

    /// The signer of a checkpoint message: a replica of the epoch it signed in, this replica
    /// included: a checkpoint it signed before it lost its state (amnesia) or before a restart
    /// took it back to an older checkpoint, forwarded back in a proof, is a member's genuine
    /// vote, and without it a cluster that has moved to the next epoch may hold only a quorum
    /// that counts it (seeds 10006629, 10040278: restarted from its disk at 48, it needed the
    /// proof of 56, the end of its epoch, which four others and itself had signed).
    mutating func checkpointSender(_ envelope: Envelope) -> ReplicaID? {
        if case .replica(let r) = envelope.sender, r == id, knownMemberships[envelope.epoch]?.replica(r) != nil {
            return r
        }
        return replicaSender(envelope)
    }

    /// Checkpoints kept per replica beyond H: its stable one and every newer one it can have
    /// (a replica's newest checkpoint is at most L/K intervals above its stable one).
    var aheadCheckpointsPerReplica: Int { configuration.logWindow / configuration.checkpointInterval + 1 }

    /// §4.3: a checkpoint with 2f+1 matching messages is stable: h advances to it and the
    /// log entries, checkpoint messages and states below it are discarded. A replica makes
    /// only a checkpoint it has itself reached stable; one that is behind needs the state
    /// first (state transfer).
    mutating func checkStable(_ n: SequenceNumber) {
        guard n > waterMarks.low, let votes = checkpointVotes[n], let epoch = checkpointEpoch(of: n),
              let digest = votes.digest(withAtLeast: knownMemberships[epoch]?.quorum ?? .max),
              let own = ownCheckpoints[n], own.digest == digest
        else { return }
        stableProof = votes.envelopes(matching: digest)
        waterMarks.advance(to: n)
        persist(.stable(stableProof))
        collectGarbage(through: n)
        emit(.checkpointStable(Checkpoint(sequence: n, stateDigest: digest)))
        if nextEpoch?.end == n { enterNextEpoch() }
        proposeBatches()
    }

    /// Discards everything at and below a stable checkpoint `n`.
    mutating func collectGarbage(through n: SequenceNumber) {
        log = log.filter { $0.key > n }
        checkpointVotes = checkpointVotes.filter { $0.key > n }
        ownCheckpoints = ownCheckpoints.filter { $0.key >= n }
        preparedCertificates = preparedCertificates.filter { $0.key > n }
    }

    /// The state bytes of this replica's stable checkpoint, for state transfer.
    public var stableState: (checkpoint: Checkpoint, state: [UInt8])? {
        guard let own = ownCheckpoints[waterMarks.low] else { return nil }
        return (Checkpoint(sequence: waterMarks.low, stateDigest: own.digest), own.state)
    }
}
