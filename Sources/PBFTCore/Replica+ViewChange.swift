import PBFTWire

// The view change (§4.4, with the timer rules of §4.5.2): a backup that suspects the
// primary moves to view v+1 and multicasts VIEW-CHANGE with its stable checkpoint's proof
// C and its prepared certificates P; the primary of v+1 collects 2f+1 of them (V), works out
// O, the pre-prepares that carry every possibly committed request into the new view (null
// requests fill the gaps), and multicasts NEW-VIEW; backups check V and recompute O
// before they accept it.

/// What a valid V decides: the new view's starting checkpoint and its pre-prepares.
struct NewViewPlan: Equatable {
    /// min-s: the latest stable checkpoint in V, and the 2f+1 messages proving it (empty at 0).
    var stable: Checkpoint
    var stableProof: [Envelope]
    /// For each n in (min-s, max-s]: the batch digest (zero for a null request) and batch.
    var entries: [(sequence: SequenceNumber, digest: Digest, batch: [Envelope])]

    static func == (a: NewViewPlan, b: NewViewPlan) -> Bool {
        a.stable == b.stable && a.entries.map { [$0.sequence.rawValue] + $0.digest.bytes.map(UInt64.init) }
            == b.entries.map { [$0.sequence.rawValue] + $0.digest.bytes.map(UInt64.init) }
    }
}

extension Replica {
    // MARK: Timer

    /// §4.4: a backup's timer runs while it knows of a request that has not executed. It
    /// expires one timeout after the oldest such request arrived, not after the last
    /// execution, so a primary that is merely slow (executing something now and then while
    /// holding a request back) is replaced as well as a silent one.
    ///
    /// The primary runs the same timer over the requests it proposed: a primary that cannot
    /// get its own proposals executed (a backup it needs left alone for the next view while
    /// f others are down, say) moves on too, where the paper's primary would wait forever
    /// for backups that have nothing left to wait for.
    mutating func startViewChangeTimerIfNeeded() {
        // The end of an epoch counts as waiting work: its last checkpoint must become stable,
        // and if it does not (some replicas of the old epoch are stuck behind a view change)
        // the old epoch changes view, which brings them to its end.
        guard viewChangeDeadline == nil, viewActive, amnesia == nil, epochStart != nil, !retired,
              let oldest = (Array(pendingSince.values) + Array(passiveSince.values) + (epochTailSince.map { [$0] } ?? [])).min()
        else { return }
        viewChangeDeadline = oldest + UInt64(viewChangeTimeoutTicks)
    }

    /// §4.5.2: during a view change the timer starts only once a quorum of replicas (this
    /// one among them) asked for the view, so a replica that suspects the primary alone does
    /// not race ahead through views; it bounds the wait for the NEW-VIEW.
    ///
    /// A replica asking for a higher view asked for this one before it (it gave up waiting
    /// for this view's NEW-VIEW), so it counts too. Counting only exact matches leaves
    /// replicas spread over two views with no timer running anywhere: with n = 4 and one
    /// faulty, one correct replica that moved on to v+1 while its VIEW-CHANGE for v reached
    /// neither of the others leaves them two short of a quorum for v and itself alone in v+1
    /// (seed 5093928).
    mutating func startNewViewTimerIfNeeded() {
        guard !viewActive, viewChangeDeadline == nil else { return }
        let asking = viewChangeMessages.values.filter { $0.message.newView >= view }.count
        guard asking >= membership.quorum else { return }
        viewChangeDeadline = now + UInt64(viewChangeTimeoutTicks)
    }

    /// §4.4: the timer stops when a request executes and restarts if others still wait.
    mutating func restartViewChangeTimer() {
        viewChangeDeadline = nil
        startViewChangeTimerIfNeeded()
    }

    /// The primary of this view did not execute a known request in time, or the NEW-VIEW
    /// for the view being changed to did not come: move to the next view.
    mutating func onViewChangeTimeout() {
        counters.viewChangeTimeouts += 1
        viewChangeDeadline = nil
        // A passive peer that fell silent (crashed again, or its passivity ended and the STATUS
        // saying so was lost) is not waited for: it sends STATUS every interval while passive.
        let recent = now - min(now, 3 * UInt64(configuration.statusIntervalTicks))
        passiveSince = passiveSince.filter { lastHeard[$0.key].map { $0 >= recent } ?? false }
        if viewActive, pendingSince.isEmpty, passiveSince.isEmpty, epochTailSince == nil { return }
        // A replica that is behind (fetching state, holding a checkpoint or a commit certified
        // by a quorum above what it executed) cannot execute anyone's requests yet: that is not
        // the primary's fault, and a lone view change would shut it out of the current view.
        // Only certified evidence counts, so a faulty replica cannot hold this timer back.
        if viewActive, stateFetch != nil || certifiedCheckpointAhead() != nil || certifiedCommitAhead() {
            return postponeViewChangeTimer()
        }
        if viewActive, weakPostponements < Self.weakPostponementsMax, vouchedProgressAhead() {
            weakPostponements += 1
            return postponeViewChangeTimer()
        }
        // A backup that has not heard from 2f other replicas lately is cut off (a partition,
        // or the requests it waits for came just before one): a view change it started alone
        // would change nothing, and would leave it in a view the others never join once the
        // partition heals. When the primary is faulty, the 2f correct backups hear one
        // another: while they wait they each send STATUS every status interval.
        if viewActive, !hearsQuorum {
            connectedSince = nil
            return postponeViewChangeTimer()
        }
        // Back from being cut off for less than a timeout: what it waited for may have
        // executed everywhere else long ago, and the answers to its STATUS (the missing
        // commits, a certified checkpoint) are on their way. It judges the primary only
        // after a whole timeout in touch with a quorum; suspecting it at the first messages
        // heard leaves this replica alone in a view change the others never join (seeds
        // 10000296, 10000541).
        if viewActive, connectedSince.map({ now - $0 < UInt64(configuration.viewChangeTimeoutTicks) }) ?? true {
            return postponeViewChangeTimer()
        }
        suspectPrimary()
        // Still in this view (or still waiting for its NEW-VIEW) until a quorum asks for the
        // next: the timer goes on running over what waits, and fires again only to keep the
        // suspicion's STATUS going out.
        if viewActive {
            for requester in pendingSince.keys { pendingSince[requester] = now }
            for peer in passiveSince.keys { passiveSince[peer] = now }
            if epochTailSince != nil { epochTailSince = now }
            startViewChangeTimerIfNeeded()
        }
    }

    // MARK: Suspicion

    // §4.4 has a backup whose timer expires leave its view at once: it multicasts VIEW-CHANGE
    // and takes nothing of the old view after. When the others do not follow (their timers
    // were reset by progress it missed, or it alone was cut off when a NEW-VIEW went out), it
    // stays alone in a view nobody else will reach: views never go back, since its
    // VIEW-CHANGE is out and would vouch for a log it no longer keeps if it voted in the old
    // view again, and one replica asking is below the f+1 that make others follow. Seeds
    // 10008895, 10009341, 10009528 and 10018088 ended so, everything executed everywhere.
    //
    // So leaving a view takes two steps (as Mod-SMaRt's STOP and STOP-DATA do): a replica
    // whose timer expires first *suspects* the primary, which commits it to nothing: it
    // says so in its STATUS (sent at once, and again while it waits) and keeps working in
    // its view. It sends VIEW-CHANGE, and stops taking the old view's messages, only once a
    // quorum asks for the next view, by suspicion or by VIEW-CHANGE. A quorum of correct
    // replicas always suffices (n - f >= q), so a faulty primary is still replaced; a lone
    // suspicion strands nobody. As §4.5.2 has replicas join on f+1 VIEW-CHANGE messages, a
    // replica that learns f+1 replicas suspect the primary suspects it too (one of them is
    // correct), which brings the quorum about once the primary is faulty for one correct
    // replica plus the f faulty ones.

    /// Raises this replica's suspicion of the current primary (once per view) and tells the
    /// others at once.
    mutating func suspectPrimary() {
        let next = ViewNumber(view.rawValue + 1)
        guard amnesia == nil, !retired, (suspicions[id] ?? ViewNumber(0)) < next else { return }
        suspicions[id] = next
        counters.suspicionsRaised += 1
        broadcastStatus()
        moveOnIfQuorumAsks()
    }

    /// Records that `sender` asks for `target` (a STATUS that suspects, or says it is
    /// changing views) and moves on when enough do.
    mutating func noteAsking(for target: ViewNumber, from sender: ReplicaID) {
        guard target > (suspicions[sender] ?? ViewNumber(0)) else { return }
        suspicions[sender] = target
        moveOnIfQuorumAsks()
    }

    /// The replicas of this epoch asking for a view above the current one (or, while
    /// changing to it, above it), by suspicion or VIEW-CHANGE: f+1 make this replica suspect
    /// too, a quorum makes it send VIEW-CHANGE for the next view.
    mutating func moveOnIfQuorumAsks() {
        guard amnesia == nil, !retired, epochStart != nil else { return }
        let next = ViewNumber(view.rawValue + 1)
        let asking = membership.replicas.filter { replica in
            (suspicions[replica.id] ?? ViewNumber(0)) >= next
                || (viewChangeMessages[replica.id]?.message.newView ?? ViewNumber(0)) >= next
        }.count
        if asking >= membership.weakQuorum, (suspicions[id] ?? ViewNumber(0)) < next {
            return suspectPrimary()
        }
        if asking >= membership.quorum { startViewChange(to: next) }
    }

    /// Whether messages from at least quorum - 1 (2f at n = 3f+1) other replicas of this epoch arrived within the
    /// last three status intervals (a waiting replica sends STATUS every interval; three
    /// allow for a lost one or two).
    var hearsQuorum: Bool {
        let since = now - min(now, 3 * UInt64(configuration.statusIntervalTicks))
        let heard = membership.replicas.filter { $0.id != id && lastHeard[$0.id].map { $0 >= since } == true }.count
        return heard >= membership.quorum - 1
    }

    /// Samples `hearsQuorum` (every status interval): `connectedSince` is when this replica
    /// last came back in touch with a quorum.
    mutating func noteConnectivity() {
        // `hearsQuorum` looks back three status intervals: before that it cannot tell.
        guard now >= 3 * UInt64(configuration.statusIntervalTicks) else { return }
        if !hearsQuorum {
            connectedSince = nil
        } else if connectedSince == nil {
            connectedSince = now
        }
    }

    /// The timer fired but suspecting the primary would be wrong now: wait one more timeout.
    mutating func postponeViewChangeTimer() {
        counters.viewChangeTimeoutsPostponed += 1
        for requester in pendingSince.keys { pendingSince[requester] = now }
        for peer in passiveSince.keys { passiveSince[peer] = now }
        if epochTailSince != nil { epochTailSince = now }
        startViewChangeTimerIfNeeded()
    }

    // MARK: Sending VIEW-CHANGE

    /// Enters view `target` as not yet active and multicasts VIEW-CHANGE for it. §4.5.2:
    /// the timeout doubles for each further view this replica has to move to.
    mutating func startViewChange(to target: ViewNumber) {
        guard target > view else { return }
        weakPostponements = 0
        viewChangeTimeoutTicks = min(viewChangeTimeoutTicks * 2, configuration.viewChangeTimeoutTicks << 10)
        view = target
        viewActive = false
        newViewEnvelope = nil
        nullFillThrough = nil
        log = [:]
        counters.viewChangesStarted += 1
        let message = ViewChange(
            newView: target, stableSequence: waterMarks.low, checkpointProof: waterMarks.low.rawValue == 0 ? [] : stableProof,
            prepared: preparedCertificates.keys.sorted().map { preparedCertificates[$0]! })
        let envelope = sign(.viewChange(message))
        viewChangeMessages[id] = (message, envelope)
        persist(.viewChange(envelope))
        emit(.broadcast(Frame(envelope: envelope)))
        viewChangeDeadline = nil
        startNewViewTimerIfNeeded()
        tryToSendNewView()
    }

    // MARK: Receiving VIEW-CHANGE

    /// Keeps each replica's newest valid VIEW-CHANGE; joins a higher view once f+1 replicas
    /// ask for one (§4.5.2: at least one of them is correct); as the new primary, sends
    /// NEW-VIEW once 2f+1 ask for its view.
    mutating func onViewChange(_ message: ViewChange, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        guard amnesia == nil else { return drop(.recovering) }
        guard message.newView > view || (message.newView == view && !viewActive) else { return drop(.staleView) }
        if let held = viewChangeMessages[sender], held.message.newView >= message.newView { return drop(.duplicate) }
        guard isValid(message, from: sender) else { return drop(.invalidViewChange) }
        viewChangeMessages[sender] = (message, envelope)

        // §4.5.2: f+1 replicas in views above ours: join the smallest of those views.
        let higher = viewChangeMessages.values.map(\.message.newView).filter { $0 > view }
        if higher.count >= membership.weakQuorum, let smallest = higher.min() {
            startViewChange(to: smallest)
        }
        moveOnIfQuorumAsks()
        startNewViewTimerIfNeeded()
        tryToSendNewView()
    }

    /// A VIEW-CHANGE is valid if C proves its stable checkpoint (2f+1 matching checkpoint
    /// messages from distinct replicas, or nothing at 0) and every certificate in P is a
    /// pre-prepare from the primary of an earlier view, for a sequence number in
    /// (n, n+L], with its batch and 2f matching prepares from distinct backups.
    func isValid(_ message: ViewChange, from sender: ReplicaID) -> Bool {
        guard checkpointProofDigest(message.stableSequence, message.checkpointProof) != nil else { return false }
        var sequences = Set<SequenceNumber>()
        for certificate in message.prepared {
            guard let (prePrepare, _) = validCertificate(certificate, below: message.newView),
                  prePrepare.sequence > message.stableSequence,
                  prePrepare.sequence.rawValue <= message.stableSequence.rawValue + UInt64(configuration.logWindow),
                  sequences.insert(prePrepare.sequence).inserted
            else { return false }
        }
        return true
    }

    /// The digest that C certifies for `n` (zero at 0, where C must be empty), or nil.
    func checkpointProofDigest(_ n: SequenceNumber, _ proof: [Envelope]) -> Digest? {
        if n.rawValue == 0 { return proof.isEmpty && epoch.rawValue == 0 ? Digest.zero : nil }
        // Checkpoints are signed by the members of the epoch that executed n: the one that
        // ended at this epoch's start, or this one.
        guard n.rawValue % UInt64(configuration.checkpointInterval) == 0, let start = epochStart, n >= SequenceNumber(start.rawValue - 1),
              let signers = knownMemberships[n < start ? Epoch(epoch.rawValue - 1) : epoch], proof.count <= signers.n
        else { return nil }
        var votes = VoteSet()
        for envelope in proof {
            guard case .checkpoint(let c) = envelope.message, c.sequence == n, case .replica(let r) = envelope.sender,
                  signers.replica(r) != nil, envelope.epoch == signers.epoch,
                  votes.insert(envelope, digest: c.stateDigest, from: r) == .added
            else { return nil }
        }
        return votes.digest(withAtLeast: signers.quorum)
    }

    /// The pre-prepare of a valid prepared certificate from a view below `view`, or nil.
    func validCertificate(_ certificate: PreparedCertificate, below view: ViewNumber) -> (PrePrepare, Digest)? {
        guard case .prePrepare(let prePrepare) = certificate.prePrepare.message, prePrepare.view < view,
              certificate.prePrepare.sender == .replica(configuration.primary(of: prePrepare.view)),
              certificate.prePrepare.epoch == epoch
        else { return nil }
        if prePrepare.batchDigest == .zero {
            guard certificate.batch.isEmpty else { return nil }
        } else {
            guard isValidBatch(certificate.batch), batchDigest(certificate.batch) == prePrepare.batchDigest else { return nil }
        }
        var votes = VoteSet()
        let primaryOfView = configuration.primary(of: prePrepare.view)
        for envelope in certificate.prepares {
            guard case .prepare(let vote) = envelope.message, vote.view == prePrepare.view,
                  vote.sequence == prePrepare.sequence, vote.batchDigest == prePrepare.batchDigest,
                  case .replica(let r) = envelope.sender, r != primaryOfView, membership.replica(r) != nil,
                  envelope.epoch == epoch, votes.insert(envelope, digest: vote.batchDigest, from: r) == .added
            else { return nil }
        }
        guard votes.count >= membership.quorum - 1 else { return nil }
        return (prePrepare, prePrepare.batchDigest)
    }

    // MARK: NEW-VIEW

    /// §4.4: the primary of view v+1, holding 2f+1 valid VIEW-CHANGE messages for it
    /// (its own among them), computes O and multicasts NEW-VIEW.
    mutating func tryToSendNewView() {
        guard !viewActive, isPrimary, viewChangeMessages[id]?.message.newView == view else { return }
        let forView = viewChangeMessages.filter { $0.value.message.newView == view }.sorted { $0.key < $1.key }
        guard forView.count >= membership.quorum else { return }
        // Our own message first, then the lowest ids: any 2f+1 valid ones would do.
        let chosen = ([forView.first { $0.key == id }!] + forView.filter { $0.key != id }).prefix(membership.quorum)
        let viewChanges = chosen.map(\.value.message)
        guard let plan = plan(from: viewChanges) else { return }
        let prePrepares = plan.entries.map { entry in
            sign(.prePrepare(PrePrepare(view: view, sequence: entry.sequence, batchDigest: entry.digest)))
        }
        let newView = NewView(view: view, viewChanges: chosen.map(\.value.envelope), prePrepares: prePrepares)
        let envelope = sign(.newView(newView))
        persist(.newView(envelope))
        emit(.broadcast(Frame(envelope: envelope)))
        enter(newView: envelope, plan: plan, prePrepares: prePrepares)
    }

    /// O, recomputed from V the same way by the primary and every backup: min-s is the
    /// latest stable checkpoint in V; for each n from min-s+1 to the highest prepared
    /// sequence number max-s, the request prepared in the highest view, or a null request.
    func plan(from viewChanges: [ViewChange]) -> NewViewPlan? {
        guard let best = viewChanges.max(by: { $0.stableSequence < $1.stableSequence }),
              let digest = checkpointProofDigest(best.stableSequence, best.checkpointProof)
        else { return nil }
        let minS = best.stableSequence
        var chosen: [SequenceNumber: (view: ViewNumber, digest: Digest, batch: [Envelope])] = [:]
        for message in viewChanges {
            for certificate in message.prepared {
                guard case .prePrepare(let p) = certificate.prePrepare.message, p.sequence > minS else { continue }
                if let held = chosen[p.sequence], (held.view, held.digest) >= (p.view, p.batchDigest) { continue }
                chosen[p.sequence] = (p.view, p.batchDigest, certificate.batch)
            }
        }
        let maxS = chosen.keys.max() ?? minS
        var entries: [(sequence: SequenceNumber, digest: Digest, batch: [Envelope])] = []
        var n = minS.rawValue + 1
        while n <= maxS.rawValue {
            let sequence = SequenceNumber(n)
            entries.append(chosen[sequence].map { (sequence, $0.digest, $0.batch) } ?? (sequence, .zero, []))
            n += 1
        }
        return NewViewPlan(stable: Checkpoint(sequence: minS, stateDigest: digest), stableProof: best.checkpointProof, entries: entries)
    }

    /// §4.4: a backup accepts a NEW-VIEW for a view at least its own if it is signed by that
    /// view's primary, V holds 2f+1 valid VIEW-CHANGE messages for the view from distinct
    /// replicas, and O is exactly what V implies. A NEW-VIEW that does not check out means
    /// the new primary is faulty: move on to the next view.
    mutating func onNewView(_ message: NewView, envelope: Envelope) {
        guard let sender = replicaSender(envelope) else { return }
        guard amnesia == nil else { return drop(.recovering) }
        guard message.view > view || (message.view == view && !viewActive) else { return drop(.staleView) }
        guard sender == configuration.primary(of: message.view) else { return drop(.notFromPrimary) }
        guard let plan = checkedPlan(message) else {
            drop(.invalidNewView)
            if message.view == view { suspectPrimary() }
            return
        }
        if message.view > view {
            view = message.view
            viewActive = false
        }
        for viewChange in message.viewChanges {
            if case .viewChange(let v) = viewChange.message, case .replica(let r) = viewChange.sender,
               (viewChangeMessages[r]?.message.newView ?? ViewNumber(0)) < v.newView || viewChangeMessages[r] == nil {
                viewChangeMessages[r] = (v, viewChange)
            }
        }
        persist(.newView(envelope))
        enter(newView: envelope, plan: plan, prePrepares: message.prePrepares)
    }

    /// V and O of a NEW-VIEW checked as §4.4 asks; the plan they imply, or nil.
    func checkedPlan(_ message: NewView) -> NewViewPlan? {
        guard message.viewChanges.count == membership.quorum else { return nil }
        var senders = Set<ReplicaID>()
        var viewChanges: [ViewChange] = []
        for envelope in message.viewChanges {
            guard case .viewChange(let v) = envelope.message, v.newView == message.view,
                  case .replica(let r) = envelope.sender, membership.replica(r) != nil, envelope.epoch == epoch,
                  senders.insert(r).inserted, isValid(v, from: r)
            else { return nil }
            viewChanges.append(v)
        }
        guard let plan = plan(from: viewChanges), plan.entries.count == message.prePrepares.count else { return nil }
        let primaryOfView = Principal.replica(configuration.primary(of: message.view))
        for (entry, envelope) in zip(plan.entries, message.prePrepares) {
            guard case .prePrepare(let p) = envelope.message, envelope.sender == primaryOfView, envelope.epoch == epoch,
                  p.view == message.view, p.sequence == entry.sequence, p.batchDigest == entry.digest
            else { return nil }
        }
        return plan
    }

    /// Starts view `view` from a checked plan: the stable checkpoint moves up to min-s
    /// (fetching the state if this replica is behind it), the log holds exactly O, backups
    /// prepare every entry of O, and requests still waiting go to the new primary.
    mutating func enter(newView envelope: Envelope, plan: NewViewPlan, prePrepares: [Envelope]) {
        precondition(!viewActive && plan.entries.count == prePrepares.count, "entering \(view) twice or with a mismatched O")
        viewActive = true
        newViewEnvelope = envelope
        counters.newViewsAccepted += 1
        log = [:]
        viewChangeMessages = viewChangeMessages.filter { $0.value.message.newView > view }
        let minS = plan.stable.sequence
        if minS > waterMarks.low {
            waterMarks.advance(to: minS)
            stableProof = plan.stableProof
            persist(.stable(plan.stableProof))
            collectGarbage(through: minS)
            if lastExecuted < minS {
                stateFetch = nil
                startFetch(plan.stable, proof: plan.stableProof)
            }
        }
        inLog = [:]
        for (entry, prePrepare) in zip(plan.entries, prePrepares) {
            // Entries at or below our stable checkpoint are decided; we neither log nor sign them.
            guard case .prePrepare(let p) = prePrepare.message, p.sequence > waterMarks.low else { continue }
            accept(p, envelope: prePrepare, batch: entry.batch)
            if !isPrimary {
                let prepare = sign(.prepare(Vote(view: view, sequence: p.sequence, batchDigest: p.batchDigest)))
                _ = log[p.sequence, default: Slot()].prepares.insert(prepare, digest: p.batchDigest, from: id)
                emit(.broadcast(Frame(envelope: prepare)))
            }
        }
        lastAssigned = max(plan.entries.last?.sequence ?? minS, minS, lastExecuted)
        if !isPrimary {
            for requester in pendingOrder {
                if let request = pendingRequests[requester] { emit(.send(Frame(envelope: request), to: primary)) }
            }
        }
        forgetSettledWaits()
        // The new primary gets a whole timeout for the requests that were already waiting.
        for requester in pendingSince.keys { pendingSince[requester] = now }
        for peer in passiveSince.keys { passiveSince[peer] = now }
        if epochTailSince != nil { epochTailSince = now }
        lastProgressTick = now
        restartViewChangeTimer()
        if let next = nextEpoch, next.end == minS, lastExecuted == minS { return enterNextEpoch() }
        proposeBatches()
    }
}
