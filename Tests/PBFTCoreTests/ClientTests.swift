import PBFTCore
import PBFTCrypto
import PBFTWire
import Synchronization
import Testing

/// The client core: f+1 matching replies that their replicas' signed roots vouch for.
@Suite struct ClientTests {
    let h: Harness
    let digester = SHA256Digester()

    init() throws { h = try Harness() }

    /// Replica `replica`'s reply frame for `reply`, in a tree with `others` (its index first).
    func frame(_ reply: Reply, from replica: UInt32, others: [Reply] = []) throws -> Authenticated<Frame> {
        let tree = ReplyTree([reply] + others, digester: digester)
        let envelope = h.seal(.reply(tree.root), as: .replica(ReplicaID(replica)))
        return try h.authenticated(Frame(envelope: envelope, reply: ProvenReply(reply: reply, index: 0, path: tree.paths[0])))
    }

    func submitted() -> (Client, Reply) {
        var client = Client(membership: h.membership, signer: h.signer(.client(ClientID(0))), digester: digester, retransmitTimeoutTicks: 5)
        let actions = client.submit(Array("op".utf8))
        guard case .broadcast(let sent)? = actions.first, case .request(let request) = sent.envelope.message else {
            preconditionFailure("submit broadcasts the request")
        }
        return (client, Reply(view: ViewNumber(0), timestamp: request.timestamp, requester: .client(ClientID(0)), result: Array("ok".utf8)))
    }

    @Test func fPlusOneProvenRepliesComplete() throws {
        var (client, reply) = submitted()
        let other = Reply(view: ViewNumber(0), timestamp: Timestamp(7), requester: .client(ClientID(1)), result: [1])
        #expect(client.step(.message(try frame(reply, from: 1, others: [other, other]))).isEmpty)
        let done = client.step(.message(try frame(reply, from: 2)))
        #expect(done == [.completed(timestamp: reply.timestamp, result: reply.result)])
        #expect(!client.isBusy)
    }

    @Test func anEqualProofFromAnotherReplicaIsNotHashedAgainButADifferentOneIs() throws {
        let counting = CountingDigester()
        var client = Client(membership: h.membership, signer: h.signer(.client(ClientID(0))), digester: counting, retransmitTimeoutTicks: 5)
        guard case .broadcast(let sent)? = client.submit(Array("op".utf8)).first, case .request(let request) = sent.envelope.message else {
            Issue.record("submit broadcasts the request")
            return
        }
        let reply = Reply(view: ViewNumber(0), timestamp: request.timestamp, requester: .client(ClientID(0)), result: Array("ok".utf8))
        let other = Reply(view: ViewNumber(0), timestamp: Timestamp(7), requester: .client(ClientID(1)), result: [1])
        #expect(client.step(.message(try frame(reply, from: 1, others: [other, other]))).isEmpty)
        let first = counting.count
        #expect(first == 3, "the leaf and two path nodes")
        // Replica 2's tree is another (its batch differs): its proof is checked in full.
        #expect(client.step(.message(try frame(reply, from: 2, others: [other]))).count == 1)
        #expect(counting.count == first + 2)
        // The next request: replicas 1 and 3 built the same tree, so 3's proof costs nothing.
        guard case .broadcast(let next)? = client.submit(Array("op".utf8)).first, case .request(let second) = next.envelope.message else {
            Issue.record("submit broadcasts the request")
            return
        }
        var answer = reply
        answer.timestamp = second.timestamp
        #expect(client.step(.message(try frame(answer, from: 1, others: [other, other]))).isEmpty)
        let before = counting.count
        #expect(client.step(.message(try frame(answer, from: 3, others: [other, other]))) == [.completed(timestamp: answer.timestamp, result: answer.result)])
        #expect(counting.count == before)
    }

    @Test func aReplyItsRootDoesNotProveIsIgnored() throws {
        var (client, reply) = submitted()
        // Replica 1 signed a root over one result and sends another under it.
        var lie = try frame(reply, from: 1).value
        lie.reply?.reply.result = Array("forged".utf8)
        let opened = try h.authenticated(lie)
        #expect(client.step(.message(opened)).isEmpty)
        var liar = reply
        liar.result = Array("forged".utf8)
        #expect(client.step(.message(try frame(liar, from: 2))).isEmpty, "r1's forged copy did not count: one vote for the forged result")
        #expect(client.isBusy)
        #expect(client.step(.message(try frame(reply, from: 3))).isEmpty)
        #expect(client.step(.message(try frame(reply, from: 0))) == [.completed(timestamp: reply.timestamp, result: reply.result)])
    }
}

/// SHA-256 that counts its calls.
final class CountingDigester: MessageDigester {
    private let calls = Mutex(0)
    var count: Int { calls.withLock { $0 } }

    func digest(_ bytes: [UInt8]) -> Digest {
        calls.withLock { $0 += 1 }
        return Crypto.sha256(bytes)
    }
}
