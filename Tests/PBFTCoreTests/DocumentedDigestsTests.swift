import PBFTCore
import PBFTCrypto
import PBFTKeyValue
import PBFTWire
import Testing

/// The digests docs/wire-format.md ("Digests") and docs/runtime.md (`execution.jsonl`)
/// define, computed here by the pages' recipes and compared with what the core computes:
/// an implementation that follows the pages agrees with these replicas (issue 19).
@Suite struct DocumentedDigestsTests {
    /// wire-format.md: d = SHA-256(u64(len(e₁)) ‖ e₁ ‖ … ‖ u64(len(eₘ)) ‖ eₘ), the eᵢ whole
    /// encoded envelopes in batch order; the empty batch's digest is all zeros.
    static func batchDigest(_ batch: [Envelope]) -> Digest {
        guard !batch.isEmpty else { return .zero }
        var bytes: [UInt8] = []
        for request in batch {
            let envelope = request.encoded()
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(envelope.count) >> UInt64(8 * $0)) }
            bytes += envelope
        }
        return Crypto.sha256(bytes)
    }

    @Test func batchDigestIsTheDocumentedRecipe() throws {
        let h = try Harness()
        let one = [h.request(client: 0, timestamp: 1)]
        let two = [h.request(client: 0, timestamp: 1, .put(key: [7], value: [8])), h.request(client: 1, timestamp: 3, .get(key: [7]))]
        #expect(h.batchDigest(one) == Self.batchDigest(one))
        #expect(h.batchDigest(two) == Self.batchDigest(two))
        #expect(h.batchDigest(two) != Self.batchDigest(two.reversed()), "the order of the batch counts")
        #expect(h.batchDigest([]) == .zero, "a null request's batch")
    }

    /// runtime.md: `batch` is the batch digest, `request` SHA-256 of the request's whole
    /// encoded envelope (signature included), `result` SHA-256 of the result bytes.
    @Test func executionLogDigestsAreTheDocumentedOnes() throws {
        var h = try Harness()
        let batch = [h.request(client: 0, timestamp: 1, .put(key: [7], value: [8])), h.request(client: 1, timestamp: 3, .get(key: [7]))]
        let d = Self.batchDigest(batch)
        var actions = try h.deliver(h.prePrepare(sequence: 1, batch: batch), to: 1)
        for r: UInt32 in [2, 3] { actions += try h.deliver(h.vote(.prepare, sequence: 1, digest: d, from: r), to: 1) }
        for r: UInt32 in [2, 3] { actions += try h.deliver(h.vote(.commit, sequence: 1, digest: d, from: r), to: 1) }
        let executed = try #require(actions.compactMap { action -> ExecutedBatch? in if case .executed(let b) = action { b } else { nil } }.first)
        #expect(executed.batchDigest == d)
        #expect(executed.requests.map(\.requestDigest) == batch.map { Crypto.sha256($0.encoded()) })
        #expect(executed.requests[0].requestDigest != Crypto.sha256(batch[0].signedBytes), "the signature is part of what is hashed")
        var results: [Principal: [UInt8]] = [:]
        for action in actions {
            if case .reply(let frame, let requester) = action, let proven = frame.reply { results[requester] = proven.reply.result }
        }
        #expect(executed.requests.count == 2)
        for request in executed.requests {
            let result = try #require(results[request.requester], "a reply to \(request.requester)")
            #expect(request.resultDigest == Crypto.sha256(result), "\(request.requester)")
        }
    }
}
