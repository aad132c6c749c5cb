import PBFTWire

// State transfer. A replica that is behind a checkpoint that 2f+1 replicas signed (so at
// least f+1 correct ones reached that state) cannot replay the log below it, since the
// others discarded it once the checkpoint became stable. It fetches the checkpointed state
// in bounded chunks from one of the signers, checks the whole state against the certified
// digest, and installs it; a source that sends anything else is dropped for the next one.

/// A fetch in progress.
struct StateFetch {
    var target: Checkpoint
    /// The 2f+1 checkpoint messages that certify `target`.
    var proof: [Envelope]
    /// Replicas that signed the target, other than this one: the possible sources.
    var sources: [ReplicaID]
    var sourceIndex = 0
    var received: [UInt8] = []
    var chunksReceived: UInt32 = 0
    var chunkCount: UInt32?
    var totalBytes: UInt64?
    var deadline: UInt64
    /// Set when a chunk or the whole state did not check out: the next source starts over.
    /// A source that is merely slow or gone is replaced without losing what arrived, since
    /// every signer holds the same bytes (the digest at the end decides).
    var discardProgress = false

    var source: ReplicaID { sources[sourceIndex % sources.count] }
}

extension Replica {
    /// The highest checkpoint above what this replica executed that 2f+1 replicas signed
    /// with one digest, and their messages.
    func certifiedCheckpointAhead() -> (Checkpoint, [Envelope])? {
        var best: (Checkpoint, [Envelope])?
        for (n, votes) in checkpointVotes where n > lastExecuted {
            guard let epoch = checkpointEpoch(of: n), let quorum = knownMemberships[epoch]?.quorum,
                  let digest = votes.digest(withAtLeast: quorum), n > best?.0.sequence ?? SequenceNumber(0) else { continue }
            best = (Checkpoint(sequence: n, stateDigest: digest), votes.envelopes(matching: digest))
        }
        var ahead = VoteSetsBySequence()
        for envelope in aheadCheckpoints.values.flatMap(\.values) {
            guard case .checkpoint(let c) = envelope.message, case .replica(let sender) = envelope.sender else { continue }
            ahead.insert(envelope, checkpoint: c, from: sender)
        }
        if let (checkpoint, proof) = ahead.highestCertified(quorum: { knownMemberships[$0]?.quorum }),
           checkpoint.sequence > best?.0.sequence ?? SequenceNumber(0), checkpoint.sequence > lastExecuted {
            best = (checkpoint, proof)
        }
        return best
    }

    /// Called on each tick: starts a fetch when stuck behind a certified checkpoint, and
    /// moves to the next source when the current one stays silent.
    mutating func driveStateTransfer() {
        let patience = statePatienceTicks
        if let fetch = stateFetch, fetch.target.sequence <= lastExecuted {
            // Caught up by ordinary execution meanwhile: the fetch is moot.
            stateFetch = nil
        }
        if var fetch = stateFetch {
            guard now >= fetch.deadline else { return }
            // The source was silent or lied. Sources discard a checkpoint's state once a later
            // one is stable, so aim at the newest certified checkpoint before trying again.
            if let (target, proof) = certifiedCheckpointAhead(), target.sequence > fetch.target.sequence {
                stateFetch = nil
                return startFetch(target, proof: proof)
            }
            fetch.sourceIndex += 1
            if fetch.discardProgress {
                fetch.received = []
                fetch.chunksReceived = 0
                fetch.chunkCount = nil
                fetch.totalBytes = nil
                fetch.discardProgress = false
            }
            fetch.deadline = now + patience
            stateFetch = fetch
            requestNextChunk()
            return
        }
        guard now - lastProgressTick >= UInt64(configuration.statusIntervalTicks),
              let (target, proof) = certifiedCheckpointAhead()
        else { return }
        startFetch(target, proof: proof)
    }

    mutating func startFetch(_ target: Checkpoint, proof: [Envelope]) {
        let sources = proof.compactMap { envelope -> ReplicaID? in
            guard case .replica(let r) = envelope.sender, r != id else { return nil }
            return r
        }
        guard !sources.isEmpty else { return }
        // Start with a source that depends on who we are, so laggards spread the load.
        let patience = statePatienceTicks
        stateFetch = StateFetch(target: target, proof: proof, sources: sources, sourceIndex: Int(id.rawValue), deadline: now + patience)
        counters.stateTransfersStarted += 1
        requestNextChunk()
    }

    /// Ticks to wait for the next chunk before asking another source.
    var statePatienceTicks: UInt64 { UInt64(4 * configuration.statusIntervalTicks) }

    mutating func requestNextChunk() {
        guard let fetch = stateFetch else { return }
        let request = StateRequest(sequence: fetch.target.sequence, stateDigest: fetch.target.stateDigest, chunkIndex: fetch.chunksReceived)
        emit(.send(Frame(envelope: sign(.stateRequest(request))), to: fetch.source))
    }

    /// Serves a chunk of a checkpointed state this replica holds (its checkpoints since the
    /// stable one, and the states recent epochs started from); anything else is dropped.
    mutating func onStateRequest(_ request: StateRequest, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        guard let own = ownCheckpoints[request.sequence] ?? epochStartStates[request.sequence], own.digest == request.stateDigest else {
            return drop(.outsideWaterMarks)
        }
        let chunkBytes = configuration.stateChunkBytes
        let total = own.state.count
        let chunkCount = max(1, (total + chunkBytes - 1) / chunkBytes)
        guard Int(request.chunkIndex) < chunkCount else { return drop(.unexpectedMessage) }
        let start = Int(request.chunkIndex) * chunkBytes
        let bytes = Array(own.state[start..<min(start + chunkBytes, total)])
        let chunk = StateChunk(
            sequence: request.sequence, stateDigest: request.stateDigest, chunkIndex: request.chunkIndex,
            chunkCount: UInt32(chunkCount), totalBytes: UInt64(total), bytes: bytes)
        emit(.send(Frame(envelope: sign(.stateChunk(chunk), answering: envelope)), to: sender))
    }

    /// Accepts the next chunk from the current source only, checks that its sizes agree with
    /// the chunks before it, and installs the state once complete and matching the digest.
    mutating func onStateChunk(_ chunk: StateChunk, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        if let fetch = stateFetch, fetch.target.sequence <= lastExecuted { stateFetch = nil }
        guard var fetch = stateFetch, sender == fetch.source,
              chunk.sequence == fetch.target.sequence, chunk.stateDigest == fetch.target.stateDigest,
              chunk.chunkIndex == fetch.chunksReceived
        else { return drop(.unexpectedMessage) }
        let chunkBytes = UInt64(configuration.stateChunkBytes)
        let expectedCount = max(1, (chunk.totalBytes + chunkBytes - 1) / chunkBytes)
        let expectedLength = min(chunkBytes, chunk.totalBytes - min(chunk.totalBytes, UInt64(chunk.chunkIndex) * chunkBytes))
        guard UInt64(chunk.chunkCount) == expectedCount, UInt64(chunk.bytes.count) == expectedLength,
              fetch.chunkCount.map({ $0 == chunk.chunkCount }) ?? true,
              fetch.totalBytes.map({ $0 == chunk.totalBytes }) ?? true
        else {
            stateFetch?.deadline = now  // move to the next source at the next tick, from scratch
            stateFetch?.discardProgress = true
            return drop(.invalidBatch)
        }
        fetch.chunkCount = chunk.chunkCount
        fetch.totalBytes = chunk.totalBytes
        fetch.received.append(contentsOf: chunk.bytes)
        fetch.chunksReceived += 1
        fetch.deadline = now + statePatienceTicks
        stateFetch = fetch
        guard fetch.chunksReceived == chunk.chunkCount else { return requestNextChunk() }
        guard digester.digest(fetch.received) == fetch.target.stateDigest, install(fetch) else {
            // f+1 correct replicas signed this digest, so this source lied: try the next one.
            counters[.wrongDigest] += 1
            stateFetch?.deadline = now
            stateFetch?.discardProgress = true
            return
        }
    }

    /// Replaces the application state, reply cache and water marks with the fetched
    /// checkpoint, then executes whatever committed entries follow it.
    mutating func install(_ fetch: StateFetch) -> Bool {
        let state = fetch.received
        let n = fetch.target.sequence
        precondition(n > lastExecuted, "installing \(n) at or below what was executed (\(lastExecuted))")
        // The caller checked the digest; the bytes must still parse as a state.
        guard restoreState(state) else { return false }
        epochStartProof = fetch.proof
        lastExecuted = n
        lastAssigned = max(lastAssigned, n)
        waterMarks.advance(to: n)
        stableProof = fetch.proof
        persist(.stable(fetch.proof))
        collectGarbage(through: n)
        ownCheckpoints = [n: (fetch.target.stateDigest, state)]
        aheadCheckpoints = aheadCheckpoints.mapValues { $0.filter { $0.key > n } }.filter { !$0.value.isEmpty }
        for requester in pendingOrder where replyCache.hasExecuted(requester, pendingRequests[requester]?.requestTimestamp ?? Timestamp(0)) {
            removePending(requester)
        }
        inLog = inLog.filter { !replyCache.hasExecuted($0.key, $0.value) }
        forgetSettledWaits()
        stateFetch = nil
        counters.stateTransfersCompleted += 1
        lastProgressTick = now
        emit(.stateInstalled(fetch.target))
        emit(.checkpointStable(fetch.target))
        // Requests still waiting get a whole timeout from now: until now we could not execute them.
        for requester in pendingSince.keys { pendingSince[requester] = now }
        restartViewChangeTimer()
        // The state at n is ours now: vouch for it like a replica that executed to n. Others
        // still collecting votes for n need it when signers are missing (the checkpoint that
        // ends an epoch must become stable everywhere, nothing executes past it).
        if membership.replica(id) != nil {
            emit(.broadcast(Frame(envelope: sign(.checkpoint(fetch.target)))))
        }
        if nextEpoch?.end == n { enterNextEpoch() }
        executeReady()
        proposeBatches()
        return true
    }
}

/// Checkpoint messages grouped by (sequence number, epoch signed in, digest), for finding
/// one that 2f+1 members of its epoch signed among those beyond the window.
struct VoteSetsBySequence {
    private struct Key: Hashable { var sequence: SequenceNumber; var epoch: Epoch }
    private var sets: [Key: VoteSet] = [:]

    mutating func insert(_ envelope: Envelope, checkpoint: Checkpoint, from replica: ReplicaID) {
        _ = sets[Key(sequence: checkpoint.sequence, epoch: envelope.epoch), default: VoteSet()]
            .insert(envelope, digest: checkpoint.stateDigest, from: replica)
    }

    /// The highest certified checkpoint; `quorum` gives an epoch's quorum (nil: unknown epoch).
    func highestCertified(quorum: (Epoch) -> Int?) -> (Checkpoint, [Envelope])? {
        for key in sets.keys.sorted(by: { ($0.sequence, $0.epoch) > ($1.sequence, $1.epoch) }) {
            guard let needed = quorum(key.epoch) else { continue }
            if let digest = sets[key]!.digest(withAtLeast: needed) {
                return (Checkpoint(sequence: key.sequence, stateDigest: digest), sets[key]!.envelopes(matching: digest))
            }
        }
        return nil
    }
}
