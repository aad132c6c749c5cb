import PBFTCore
import PBFTWire
import Testing

@Suite struct StateTransferTests {
    /// Found by the adversarial swarm (seed 90249 with --replicas 4,7,10): a replica far
    /// behind kept only each peer's newest checkpoint beyond its window. The peers' newest
    /// (16 here) was not stable yet, having only two signers left, so when their STATUS
    /// answers brought the proof of the stable checkpoint (12, signed by three), the two
    /// older messages were dropped as stale and no checkpoint was ever certified: the
    /// laggard never fetched the state and the cluster lost its quorum.
    @Test func aLaggardFetchesTheStableCheckpointBelowItsPeersNewest() throws {
        var h = try Harness(checkpointInterval: 4, logWindow: 8)
        let stable = Checkpoint(sequence: SequenceNumber(12), stateDigest: Digest(w0: 12, w1: 0, w2: 0, w3: 0))
        let newest = Checkpoint(sequence: SequenceNumber(16), stateDigest: Digest(w0: 16, w1: 0, w2: 0, w3: 0))
        for signer: UInt32 in [0, 1] {
            try h.deliver(Frame(envelope: h.seal(.checkpoint(newest), as: .replica(ReplicaID(signer)))), to: 3)
        }
        for signer: UInt32 in [0, 1, 2] {
            try h.deliver(Frame(envelope: h.seal(.checkpoint(stable), as: .replica(ReplicaID(signer)))), to: 3)
        }
        var requested: StateRequest?
        for _ in 0..<50 where requested == nil {
            for case .send(let frame, _) in h.replicas[3].step(.tick) {
                if case .stateRequest(let request) = frame.envelope.message { requested = request }
            }
        }
        let request = try #require(requested, "the laggard asks for the certified checkpoint's state")
        #expect(request.sequence == stable.sequence && request.stateDigest == stable.stateDigest)
        #expect(h.replicas[3].counters.stateTransfersStarted == 1)
    }
}
