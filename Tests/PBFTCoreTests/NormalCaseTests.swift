import PBFTCore
import PBFTCrypto
import PBFTKeyValue
import PBFTWire
import Testing

/// Scripted interactions with single replicas: each rule of §4.2 and §4.3, with invalid
/// and boundary inputs.
@Suite struct NormalCaseTests {
    @Test func backupAcceptsAValidPrePrepareAndPrepares() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1)]
        let actions = try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        // The order is the contract: the accepted pre-prepare is persisted before the prepare goes out.
        guard actions.count == 2, case .persist(.prePrepare(let frame)) = actions[0], case .prepare(let vote)? = actions[1].broadcastMessage else {
            Issue.record("expected persist, then a prepare broadcast, got \(actions)")
            return
        }
        #expect(frame.batch == batch)
        #expect(vote.sequence == SequenceNumber(1))
        #expect(vote.batchDigest == h.batchDigest(batch))
        #expect(h.replicas[1].counters.droppedTotal == 0)
    }

    @Test func waterMarkBoundaries() throws {
        var h = try Harness(checkpointInterval: 4, logWindow: 8)
        let batch = [h.request(client: 0, timestamp: 1)]
        try h.deliver(h.prePrepare(sequence: 0, batch: batch), to: 1)
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 1, "n = h is below the window")
        try h.deliver(h.prePrepare(sequence: 9, batch: batch), to: 1)
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 2, "n = H+1 is beyond it")
        let atHigh = try h.deliver(h.prePrepare(sequence: 8, batch: batch), to: 1)
        #expect(atHigh.contains { $0.broadcastMessage.map { if case .prepare = $0 { true } else { false } } ?? false }, "n = H is inside")
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 2)
    }

    @Test func rejectsWhatACorrectPrimaryWouldNotSend() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1)]
        try h.deliver(h.prePrepare(sequence: 1, batch: batch, from: 2), to: 1)
        #expect(h.replicas[1].counters[.notFromPrimary] == 1)
        try h.deliver(h.prePrepare(view: 1, sequence: 1, batch: batch, from: 1), to: 2)
        #expect(h.replicas[2].counters[.futureView] == 1)
        try h.deliver(h.prePrepare(sequence: 1, batch: batch, digest: Digest(bytes: [UInt8](repeating: 7, count: 32))!), to: 1)
        #expect(h.replicas[1].counters[.wrongDigest] == 1)
        let twice = [h.request(client: 0, timestamp: 1), h.request(client: 0, timestamp: 2)]
        try h.deliver(h.prePrepare(sequence: 1, batch: twice), to: 1)
        #expect(h.replicas[1].counters[.invalidBatch] == 1, "two requests of one client")
        #expect(h.replicas[1].logCount == 0, "nothing entered the log")
        // An empty batch is a null request (a new view and the end of an epoch fill gaps with them).
        try h.deliver(h.prePrepare(sequence: 1, batch: []), to: 1)
        #expect(h.replicas[1].counters[.invalidBatch] == 1)
        #expect(h.replicas[1].logCount == 1, "the null request entered the log")
    }

    @Test func primaryDropsAPrePrepareInItsNameThatItDidNotSend() throws {
        // A twin (a second process with the primary's key) signed it and a peer forwarded it.
        var h = try Harness()
        let actions = try h.deliver(h.prePrepare(sequence: 3, batch: [h.request(client: 0, timestamp: 1)], from: 0), to: 0)
        #expect(actions.isEmpty)
        #expect(h.replicas[0].counters[.unexpectedSender] == 1)
        #expect(h.replicas[0].logCount == 0)
    }

    @Test func conflictingPrePrepareForTheSameSlotIsRejected() throws {
        var h = try Harness()
        let a = [h.request(client: 0, timestamp: 1)], b = [h.request(client: 1, timestamp: 1)]
        try h.deliver(h.prePrepare(sequence: 1, batch: a), to: 1)
        let conflicting = h.prePrepare(sequence: 1, batch: b)
        let second = try h.deliver(conflicting, to: 1)
        // No prepare for it; the two pre-prepares the primary signed are reported as evidence.
        #expect(second.count == 1)
        guard case .evidence(let earlier, let later)? = second.first else {
            Issue.record("expected evidence, got \(second)")
            return
        }
        #expect(earlier.conflicts(with: later) && later == conflicting.envelope && earlier.sender == .replica(ReplicaID(0)))
        #expect(h.replicas[1].counters[.conflicting] == 1)
        try h.deliver(h.prePrepare(sequence: 1, batch: a), to: 1)
        #expect(h.replicas[1].counters[.duplicate] == 1, "the same pre-prepare again")
    }

    @Test func preparedAt2fPreparesThenCommittedAt2fPlus1Commits() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1, .put(key: [7], value: [8]))]
        let d = h.batchDigest(batch)
        try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        // The primary's prepare does not count; a duplicate does not count; one from another view is stale.
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 0), to: 1)
        #expect(h.replicas[1].counters[.unexpectedSender] == 1)
        try h.deliver(h.vote(.prepare, view: 1, sequence: 1, digest: d, from: 2), to: 1)
        #expect(h.replicas[1].counters[.futureView] == 1)
        let afterOwnPlusOne = try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        #expect(afterOwnPlusOne.contains { if case .commit? = $0.broadcastMessage { true } else { false } }, "own prepare + r2 = 2f: prepared")
        let persistIndex = afterOwnPlusOne.firstIndex { if case .persist(.prepared) = $0 { true } else { false } }
        let commitIndex = afterOwnPlusOne.firstIndex { if case .commit? = $0.broadcastMessage { true } else { false } }
        #expect(persistIndex != nil && persistIndex! < commitIndex!, "the prepared certificate is persisted before the commit is sent")
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        #expect(h.replicas[1].counters[.duplicate] == 1)
        let oneCommit = try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        #expect(!oneCommit.contains { if case .executed = $0 { true } else { false } }, "2 of 2f+1 commits")
        let secondCommit = try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        #expect(secondCommit.contains { if case .executed = $0 { true } else { false } }, "own + 2 = 2f+1 commits: executed")
        #expect(h.replicas[1].app[[7]] == [8])
        #expect(secondCommit.contains { if case .reply(_, .client(ClientID(0))) = $0 { true } else { false } })
    }

    /// Replies cost one signature per executed batch: every reply frame carries the same
    /// signed root, and each reply's path leads to it (and not another client's reply).
    @Test func oneSignedRootAnswersAWholeBatch() throws {
        var h = try Harness()
        let batch = (0..<3).map { h.request(client: UInt32($0), timestamp: 1, .put(key: [UInt8($0)], value: [9])) }
        let d = h.batchDigest(batch)
        try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        let actions = try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        let replies = actions.compactMap { action -> (Frame, Principal)? in
            if case .reply(let frame, let to) = action { (frame, to) } else { nil }
        }
        #expect(replies.map(\.1) == (0..<3).map { .client(ClientID(UInt32($0))) })
        #expect(Set(replies.map(\.0.envelope)).count == 1, "one signed envelope for the batch")
        let digester = SHA256Digester()
        for (frame, to) in replies {
            let opened = try h.authenticated(frame)
            guard case .reply(let root) = opened.value.envelope.message, let proven = opened.value.reply else {
                Issue.record("a reply frame without a root and a reply")
                continue
            }
            #expect(root.leaves == 3)
            #expect(proven.reply.requester == to && proven.reply.timestamp == Timestamp(1))
            #expect(root.proves(proven, digester: digester))
            var stolen = proven
            stolen.reply.requester = .client(ClientID(to == .client(ClientID(0)) ? 1 : 0))
            #expect(!root.proves(stolen, digester: digester))
        }
    }

    @Test func votesForACompleteCertificateNeedNoCheck() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1)]
        let d = h.batchDigest(batch)
        let other = Digest(bytes: [UInt8](repeating: 9, count: 32))!
        func mayUse(_ frame: Frame) -> Bool { h.replicas[1].mayUse(frame.envelope.message) }
        #expect(mayUse(h.vote(.prepare, sequence: 1, digest: d, from: 3)), "no pre-prepare yet: the vote counts once it comes")
        try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        // Prepared (own prepare + r2), not committed.
        #expect(!mayUse(h.vote(.prepare, sequence: 1, digest: d, from: 3)))
        #expect(mayUse(h.vote(.prepare, sequence: 1, digest: other, from: 3)), "another digest may be evidence of equivocation")
        #expect(mayUse(h.vote(.prepare, view: 1, sequence: 1, digest: d, from: 3)), "another view is the core's to judge")
        #expect(mayUse(h.vote(.commit, sequence: 1, digest: d, from: 3)))
        #expect(mayUse(h.prePrepare(sequence: 1, batch: batch)), "only votes are judged")
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        #expect(h.replicas[1].lastExecuted == SequenceNumber(1))
        #expect(!mayUse(h.vote(.commit, sequence: 1, digest: d, from: 0)), "committed and executed")
        #expect(mayUse(h.vote(.commit, sequence: 1, digest: other, from: 0)))
        #expect(mayUse(h.vote(.commit, sequence: 2, digest: d, from: 0)))
    }

    @Test func votesBeforeThePrePrepareCountOnceItArrives() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1)]
        let d = h.batchDigest(batch)
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        let actions = try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        #expect(actions.contains { if case .executed = $0 { true } else { false } })
    }

    @Test func executionIsStrictlyInSequenceOrder() throws {
        var h = try Harness()
        let first = [h.request(client: 0, timestamp: 1, .put(key: [1], value: [1]))]
        let second = [h.request(client: 1, timestamp: 1, .put(key: [1], value: [2]))]
        func commitEverything(_ n: UInt64, _ batch: [Envelope]) throws -> [Action] {
            let d = h.batchDigest(batch)
            var actions = try h.deliver(h.prePrepare(sequence: n, batch: batch), to: 1)
            for r: UInt32 in [2, 3] { actions += try h.deliver(h.vote(.prepare, sequence: n, digest: d, from: r), to: 1) }
            for r: UInt32 in [2, 3] { actions += try h.deliver(h.vote(.commit, sequence: n, digest: d, from: r), to: 1) }
            return actions
        }
        let later = try commitEverything(2, second)
        #expect(!later.contains { if case .executed = $0 { true } else { false } }, "n=2 waits for n=1")
        let both = try commitEverything(1, first)
        let executed = both.compactMap { if case .executed(let b) = $0 { b.sequence.rawValue } else { nil } }
        #expect(executed == [1, 2])
        #expect(h.replicas[1].app[[1]] == [2])
    }

    @Test func backupTimesARequestAndRelaysItOnlyWhenItComesAgain() throws {
        var h = try Harness()
        let request = h.request(client: 2, timestamp: 5)
        #expect(h.replicas[1].viewChangeDeadline == nil)
        // The client sent it to every replica: the primary has its own copy.
        #expect(try h.deliver(Frame(envelope: request), to: 1).isEmpty)
        #expect(h.replicas[1].viewChangeDeadline == 100)
        _ = h.replicas[1].step(.tick)
        // The client retransmitted: the primary may not have it.
        let again = try h.deliver(Frame(envelope: request), to: 1)
        #expect(again == [.send(Frame(envelope: request), to: ReplicaID(0))])
        #expect(h.replicas[1].viewChangeDeadline == 100, "the timer runs from the first copy")
        let expired = try h.tick(1, 99)
        #expect(h.replicas[1].counters.viewChangeTimeouts == 1, "the timer expires when the request does not execute")
        #expect(expired.contains { $0.isSuspicion } && h.replicas[1].suspectsPrimary)
        #expect(h.replicas[1].view == ViewNumber(0) && h.replicas[1].viewActive, "a suspicion alone leaves no view")
    }

    @Test func aBackupThatHearsNoQuorumPostponesItsSuspicion() throws {
        var h = try Harness()
        try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: 1)
        // Cut off: nothing from any other replica. The timer fires and is postponed, again and again.
        for _ in 0..<250 { _ = h.replicas[1].step(.tick) }
        #expect(h.replicas[1].counters.viewChangeTimeouts == 2)
        #expect(h.replicas[1].counters.viewChangeTimeoutsPostponed == 2)
        #expect(h.replicas[1].viewActive && h.replicas[1].view == ViewNumber(0), "no view change started alone")
        // One peer heard (f = 1 needs 2f = 2): still cut off.
        let status = Status(view: ViewNumber(0), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0), viewChanging: false)
        try h.deliver(Frame(envelope: h.seal(.status(status), as: .replica(ReplicaID(2)))), to: 1)
        for _ in 0..<50 { _ = h.replicas[1].step(.tick) }
        #expect(h.replicas[1].counters.viewChangeTimeoutsPostponed == 3)
        #expect(h.replicas[1].viewActive)
        // The partition heals: the others' STATUS arrive. The next expiry comes less than a
        // timeout after it was back in touch (what it waits for may have executed meanwhile,
        // and the answers to its STATUS are on their way): postponed once more.
        try h.tick(1, 100)
        #expect(h.replicas[1].counters.viewChangeTimeoutsPostponed == 4)
        #expect(h.replicas[1].viewActive)
        // A whole timeout in touch with a quorum, and the request still waits: it suspects the primary.
        #expect(!h.replicas[1].suspectsPrimary)
        try h.tick(1, 100)
        #expect(h.replicas[1].counters.viewChangeTimeoutsPostponed == 4)
        #expect(h.replicas[1].suspectsPrimary && h.replicas[1].viewActive && h.replicas[1].view == ViewNumber(0))
    }

    @Test func aPrimaryWhoseProposalsDoNotExecuteMovesOn() throws {
        var h = try Harness()
        let request = h.request(client: 1, timestamp: 1)
        let proposed = try h.deliver(Frame(envelope: request), to: 0)
        #expect(proposed.contains { if case .prePrepare? = $0.broadcastMessage { true } else { false } })
        #expect(h.replicas[0].viewChangeDeadline == 100, "the primary times its own proposal")
        let actions = try h.tick(0, 100)
        #expect(actions.contains { $0.isSuspicion } && h.replicas[0].suspectsPrimary, "it suspects itself")
        // Had it executed, the timer would have stopped: see the normal case above. The
        // backups that wait for the same request suspect it too: a quorum, and it moves on.
        let moved = try h.suspicions(of: 0, from: [1, 2], to: 0)
        #expect(moved.contains { $0.isViewChange(to: 1) })
    }

    @Test func primaryThatLeavesOneRequestWaitingIsSuspectedAlthoughOthersExecute() throws {
        // Client 2's request waits at a backup while the primary keeps ordering other
        // requests. The timer measures the oldest waiting request, so executions of others
        // do not keep postponing it: a primary censoring one client is replaced.
        var h = try Harness()
        _ = try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: 1)
        #expect(h.replicas[1].viewChangeDeadline == 100)
        for n: UInt64 in 1...4 {
            for _ in 0..<20 { _ = h.replicas[1].step(.tick) }
            let batch = [h.request(client: 0, timestamp: n)]
            let d = h.batchDigest(batch)
            try h.deliver(h.prePrepare(sequence: n, batch: batch), to: 1)
            try h.deliver(h.vote(.prepare, sequence: n, digest: d, from: 2), to: 1)
            try h.deliver(h.vote(.commit, sequence: n, digest: d, from: 2), to: 1)
            try h.deliver(h.vote(.commit, sequence: n, digest: d, from: 3), to: 1)
        }
        #expect(h.replicas[1].lastExecuted == SequenceNumber(4))
        #expect(h.replicas[1].viewChangeDeadline == 100, "executions of other requests did not postpone it")
        var suspected = false
        for _ in 0..<20 {
            if h.replicas[1].step(.tick).contains(where: { $0.isSuspicion }) { suspected = true }
        }
        #expect(suspected && h.replicas[1].suspectsPrimary)
        // r2 and r3 wait for it too: with theirs, a quorum asks for view 1.
        let moved = try h.suspicions(of: 0, from: [2, 3], to: 1)
        #expect(moved.contains { $0.isViewChange(to: 1) })
        #expect(!h.replicas[1].viewActive)
    }

    @Test func primaryBatchesWithinTheInFlightLimit() throws {
        var h = try Harness(clients: 6, batchSizeMax: 2, sequencesInFlightMax: 2)
        var proposed: [PrePrepare] = []
        for c: UInt32 in 0..<6 {
            for action in try h.deliver(Frame(envelope: h.request(client: c, timestamp: 1)), to: 0) {
                if case .broadcast(let frame) = action, case .prePrepare(let p) = frame.envelope.message {
                    proposed.append(p)
                    #expect(frame.batch.count <= 2)
                }
            }
        }
        #expect(proposed.map(\.sequence.rawValue) == [1, 2], "two sequence numbers in flight, the rest waits")
        #expect(h.replicas[0].pendingCount == 4)
    }

    @Test func retransmittedRequestGetsTheCachedReplyAndOlderOnesAreIgnored() throws {
        var h = try Harness()
        let request = h.request(client: 0, timestamp: 3, .get(key: [1]))
        let batch = [request]
        let d = h.batchDigest(batch)
        try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        #expect(h.replicas[1].counters.requestsExecuted == 1)

        let again = try h.deliver(Frame(envelope: request), to: 1)
        guard case .reply(let frame, .client(ClientID(0)))? = again.first, case .reply(let root) = frame.envelope.message, let proven = frame.reply,
              root.proves(proven, digester: SHA256Digester())
        else {
            Issue.record("expected the cached reply, got \(again)")
            return
        }
        #expect(proven.reply.timestamp == Timestamp(3))
        #expect(KeyValueResult.decode(proven.reply.result) == .notFound)
        #expect(h.replicas[1].counters.requestsExecuted == 1, "not executed again")

        let older = try h.deliver(Frame(envelope: h.request(client: 0, timestamp: 2)), to: 1)
        #expect(older.isEmpty)
        #expect(h.replicas[1].counters[.staleRequest] == 1)
    }

    @Test func requestsFromUnknownClientsOrWithBadSignaturesNeverArrive() throws {
        let h = try Harness(clients: 2)
        let unknown = h.seal(.request(Request(timestamp: Timestamp(1), operation: [])), as: .client(ClientID(9)))
        #expect(throws: Rejection.unknownSigner(.client(ClientID(9)), Epoch(0))) { try h.authenticated(Frame(envelope: unknown)) }
        var forged = h.request(client: 0, timestamp: 1)
        forged.message = .request(Request(timestamp: Timestamp(2), operation: []))
        #expect(throws: Rejection.badSignature(.client(ClientID(0)), field: "envelope")) { try h.authenticated(Frame(envelope: forged)) }
        // Signed by client 1 but claiming to be client 0.
        var impostor = h.seal(.request(Request(timestamp: Timestamp(1), operation: [])), as: .client(ClientID(1)))
        impostor.sender = .client(ClientID(0))
        #expect(throws: Rejection.badSignature(.client(ClientID(0)), field: "envelope")) { try h.authenticated(Frame(envelope: impostor)) }
        // Inside a pre-prepare's batch too.
        let frame = h.prePrepare(sequence: 1, batch: [forged], digest: h.batchDigest([forged]))
        #expect(throws: Rejection.badSignature(.client(ClientID(0)), field: "batch")) { try h.authenticated(frame) }
    }

    @Test func checkpointBecomesStableAt2fPlus1AndTheLogIsCollected() throws {
        var h = try Harness(checkpointInterval: 2, logWindow: 4, sequencesInFlightMax: 4)
        // Replica 1 executes 1 and 2 and takes a checkpoint at 2.
        var checkpoint: Checkpoint?
        for n: UInt64 in 1...2 {
            let batch = [h.request(client: 0, timestamp: n)]
            let d = h.batchDigest(batch)
            try h.deliver(h.prePrepare(sequence: n, batch: batch), to: 1)
            try h.deliver(h.vote(.prepare, sequence: n, digest: d, from: 2), to: 1)
            try h.deliver(h.vote(.commit, sequence: n, digest: d, from: 2), to: 1)
            for action in try h.deliver(h.vote(.commit, sequence: n, digest: d, from: 3), to: 1) {
                if case .checkpointTaken(let c) = action { checkpoint = c }
            }
        }
        let own = try #require(checkpoint)
        #expect(own.sequence == SequenceNumber(2))
        #expect(h.replicas[1].logCount == 2)
        // A checkpoint with another digest does not help; a second matching one makes 2f+1... not yet (own + 1 = 2).
        try h.deliver(Frame(envelope: h.seal(.checkpoint(Checkpoint(sequence: own.sequence, stateDigest: .zero)), as: .replica(ReplicaID(3)))), to: 1)
        let one = try h.deliver(Frame(envelope: h.seal(.checkpoint(own), as: .replica(ReplicaID(2)))), to: 1)
        #expect(!one.contains { if case .checkpointStable = $0 { true } else { false } })
        #expect(h.replicas[1].lowWaterMark == SequenceNumber(0))
        // A checkpoint at a sequence number that is not a multiple of K is dropped.
        try h.deliver(Frame(envelope: h.seal(.checkpoint(Checkpoint(sequence: SequenceNumber(3), stateDigest: own.stateDigest)), as: .replica(ReplicaID(2)))), to: 1)
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 1)
        let stable = try h.deliver(Frame(envelope: h.seal(.checkpoint(own), as: .replica(ReplicaID(0)))), to: 1)
        #expect(stable.contains(.checkpointStable(own)))
        #expect(h.replicas[1].lowWaterMark == SequenceNumber(2))
        #expect(h.replicas[1].logCount == 0, "entries at and below the stable checkpoint are discarded")
        #expect(h.replicas[1].stableProof.count == 3)
        #expect(h.replicas[1].checkpointVoteCount == 0)
        // The window moved: n = 6 = h + L is now acceptable, n = 2 is not.
        try h.deliver(h.prePrepare(sequence: 2, batch: [h.request(client: 1, timestamp: 1)]), to: 1)
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 2)
        try h.deliver(h.prePrepare(sequence: 6, batch: [h.request(client: 1, timestamp: 1)]), to: 1)
        #expect(h.replicas[1].counters[.outsideWaterMarks] == 2)
        // A stale checkpoint for the old stable point is just a duplicate.
        try h.deliver(Frame(envelope: h.seal(.checkpoint(own), as: .replica(ReplicaID(3)))), to: 1)
        #expect(h.replicas[1].counters[.duplicate] >= 1)
    }
}

@Suite struct DurabilityTests {
    @Test func everyRecordRoundTrips() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1)]
        let d = h.batchDigest(batch)
        var records: [DurableRecord] = []
        for action in try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1) + h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1) {
            if case .persist(let record) = action { records.append(record) }
        }
        #expect(records.count == 2)
        for record in records {
            #expect(DurableRecord.decode(record.encoded()) == record)
            #expect(DurableRecord.decode(record.encoded() + [0]) == nil, "trailing bytes")
            #expect(DurableRecord.decode(Array(record.encoded().dropLast())) == nil, "truncated")
        }
        #expect(DurableRecord.decode([]) == nil)
        #expect(DurableRecord.decode([9, 0, 0]) == nil)
    }

    @Test func restartedBackupRefusesAConflictingPrePrepareItAcceptedBefore() throws {
        var h = try Harness()
        let a = [h.request(client: 0, timestamp: 1)], b = [h.request(client: 1, timestamp: 1)]
        var records: [DurableRecord] = []
        for action in try h.deliver(h.prePrepare(sequence: 1, batch: a), to: 1) {
            if case .persist(let record) = action { records.append(record) }
        }
        // Restart replica 1 from its records alone.
        h.replicas[1] = try Replica.recover(
            configuration: h.configuration, id: ReplicaID(1), app: KeyValueStore(),
            signer: h.signer(.replica(ReplicaID(1))), digester: SHA256Digester(), records: records, checkpoint: nil)
        let actions = try h.deliver(h.prePrepare(sequence: 1, batch: b), to: 1)
        #expect(actions.allSatisfy { if case .evidence = $0 { true } else { false } } && actions.count == 1,
                "no prepare for a second batch at the same sequence number, only the evidence against the primary")
        #expect(h.replicas[1].counters[.conflicting] == 1)
        // And it still holds its own prepare: one more prepare and it commits the first batch.
        let d = h.batchDigest(a)
        let more = try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        #expect(more.contains { if case .commit? = $0.broadcastMessage { true } else { false } })
    }

    @Test func restartedReplicaResumesTheViewItWasChangingTo() throws {
        var h = try Harness()
        _ = try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: 1)
        var records: [DurableRecord] = []
        for action in try h.tick(1, 100) + (try h.suspicions(of: 0, from: [2, 3], to: 1)) {
            if case .persist(let r) = action { records.append(r) }
        }
        #expect(records.contains { if case .viewChange = $0 { true } else { false } })
        let recovered = try Replica.recover(
            configuration: h.configuration, id: ReplicaID(1), app: KeyValueStore(),
            signer: h.signer(.replica(ReplicaID(1))), digester: SHA256Digester(), records: records, checkpoint: nil)
        #expect(recovered.view == ViewNumber(1))
        #expect(!recovered.viewActive, "still waiting for the NEW-VIEW of view 1; it takes no pre-prepare of view 0")
    }
}
