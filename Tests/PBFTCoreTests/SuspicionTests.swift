import PBFTCore
import PBFTKeyValue
import PBFTSimulator
import PBFTWire
import Testing

/// Leaving a view takes two steps (docs/protocol.md, "Suspicion"): a replica whose timer
/// expires suspects the primary and says so, but keeps working in its view; it sends
/// VIEW-CHANGE only once a quorum asks for the next view. Issue 18's lone view changes
/// (seeds 10008895, 10009341, 10009528, 10018088) each left one correct replica in a view
/// nobody else reached.
@Suite struct SuspicionTests {
    func status(view: UInt64 = 0, changing: Bool = false, suspecting: Bool = false) -> Message {
        .status(Status(view: ViewNumber(view), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0),
                       viewChanging: changing, suspecting: suspecting))
    }

    /// A suspecting backup still prepares, commits and executes what its primary orders.
    @Test func aLoneSuspicionLeavesNoViewAndTheReplicaGoesOnVoting() throws {
        var h = try Harness()
        _ = try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: 1)
        let expired = try h.tick(1, 100)
        #expect(expired.contains { $0.isSuspicion })
        #expect(!expired.contains { if case .viewChange? = $0.broadcastMessage { true } else { false } })
        #expect(h.replicas[1].suspectsPrimary && h.replicas[1].viewActive && h.replicas[1].view == ViewNumber(0))
        let batch = [h.request(client: 2, timestamp: 1)]
        let d = h.batchDigest(batch)
        let prepared = try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        #expect(prepared.contains { if case .prepare? = $0.broadcastMessage { true } else { false } }, "it still prepares in view 0")
        try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 2), to: 1)
        try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: 3), to: 1)
        #expect(h.replicas[1].lastExecuted == SequenceNumber(1))
        #expect(h.replicas[1].viewActive && h.replicas[1].view == ViewNumber(0))
    }

    /// §4.5.2's f+1 rule, for suspicions: f+1 replicas that suspect include a correct one.
    /// At n = 7 (f = 2, quorum 5): three suspicions make r1 suspect too, a fifth moves it.
    @Test func fPlusOneSuspicionsMakeAReplicaSuspectTooAndAQuorumMovesIt() throws {
        var h = try Harness(n: 7)
        #expect(h.membership.f == 2 && h.membership.quorum == 5)
        let two = try h.suspicions(of: 0, from: [2, 3], to: 1)
        #expect(!two.contains { $0.isSuspicion } && !h.replicas[1].suspectsPrimary, "f replicas' word is not enough")
        let three = try h.suspicions(of: 0, from: [4], to: 1)
        #expect(three.contains { $0.isSuspicion } && h.replicas[1].suspectsPrimary, "f+1 = 3: it joins the suspicion")
        #expect(h.replicas[1].viewActive, "4 ask, below the quorum of 5")
        let five = try h.suspicions(of: 0, from: [5], to: 1)
        #expect(five.contains { $0.isViewChange(to: 1) } && !h.replicas[1].viewActive)
    }

    @Test func aQuorumAskingMovesTheReplicaToTheNextView() throws {
        var h = try Harness()
        _ = try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: 1)
        try h.tick(1, 100)
        #expect(h.replicas[1].suspectsPrimary)
        let one = try h.suspicions(of: 0, from: [2], to: 1)
        #expect(!one.contains { $0.isViewChange(to: 1) }, "2 of 4 ask: below the quorum of 3")
        // A VIEW-CHANGE under way counts as asking too (here r3's STATUS says it is changing).
        let moved = try h.deliver(Frame(envelope: h.seal(status(view: 1, changing: true), as: .replica(ReplicaID(3)))), to: 1)
        #expect(moved.contains { $0.isViewChange(to: 1) })
        #expect(!h.replicas[1].viewActive && h.replicas[1].view == ViewNumber(1))
    }

    /// While waiting for the NEW-VIEW, an expired timer is a suspicion of the new primary too:
    /// the replica stays in the view it changes to, and a NEW-VIEW for it, arriving late
    /// (it was cut off when it went out, seed 10009341), still brings it in.
    @Test func aReplicaWaitingForANewViewSuspectsButStillTakesTheLateNewView() throws {
        var h = try Harness()
        for replica in [1, 2, 3] {
            _ = try h.deliver(Frame(envelope: h.request(client: 2, timestamp: 1)), to: replica)
            try h.tick(replica, 100)
        }
        // Each backup tells the others it suspects r0: all three move to view 1 (primary r1).
        var viewChanges: [Frame] = []
        for replica in [1, 2, 3] {
            for action in try h.suspicions(of: 0, from: [1, 2, 3].filter { $0 != UInt32(replica) }, to: replica) {
                if case .broadcast(let frame) = action, case .viewChange = frame.envelope.message { viewChanges.append(frame) }
            }
        }
        #expect(viewChanges.count == 3)
        // r2 hears the others' VIEW-CHANGE messages (a quorum asked for view 1: its timer runs)
        // but never gets the NEW-VIEW in time: its timer expires.
        for frame in viewChanges where frame.envelope.sender != .replica(ReplicaID(2)) { try h.deliver(frame, to: 2) }
        var suspected = false
        for _ in 0..<40 {
            try h.deliver(Frame(envelope: h.seal(status(view: 1, changing: true), as: .replica(ReplicaID(3)))), to: 2)
            try h.deliver(Frame(envelope: h.seal(status(view: 1, changing: true), as: .replica(ReplicaID(1)))), to: 2)
            for _ in 0..<10 where h.replicas[2].step(.tick).contains(where: { $0.isSuspicion }) { suspected = true }
        }
        #expect(suspected && h.replicas[2].suspectsPrimary)
        #expect(h.replicas[2].view == ViewNumber(1) && !h.replicas[2].viewActive, "still changing to view 1, not to view 2")
        // r1, the primary of view 1, got them all: its NEW-VIEW reaches r2 late, and is taken.
        var newView: Frame?
        for frame in viewChanges where frame.envelope.sender != .replica(ReplicaID(1)) {
            for action in try h.deliver(frame, to: 1) {
                if case .broadcast(let f) = action, case .newView = f.envelope.message { newView = f }
            }
        }
        let late = try #require(newView)
        try h.deliver(late, to: 2)
        #expect(h.replicas[2].view == ViewNumber(1) && h.replicas[2].viewActive)
    }

    /// A backup expects the primary to order null requests for a peer passive after amnesia;
    /// a primary that does nothing (crashed in an idle cluster, seed 10010839) is suspected.
    @Test func aPrimaryThatLeavesAPassivePeerWaitingIsSuspected() throws {
        var h = try Harness()
        let passive = Message.status(Status(view: ViewNumber(0), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0), passive: true))
        try h.deliver(Frame(envelope: h.seal(passive, as: .replica(ReplicaID(3)))), to: 1)
        #expect(h.replicas[1].viewChangeDeadline == 100, "the fill is work the backup waits for")
        var suspected = false
        for _ in 0..<30 {
            // The passive peer repeats its STATUS every interval, the other backup waits too.
            try h.deliver(Frame(envelope: h.seal(passive, as: .replica(ReplicaID(3)))), to: 1)
            try h.deliver(Frame(envelope: h.seal(status(), as: .replica(ReplicaID(2)))), to: 1)
            for _ in 0..<10 where h.replicas[1].step(.tick).contains(where: { $0.isSuspicion }) { suspected = true }
        }
        #expect(suspected && h.replicas[1].suspectsPrimary)
    }
}
