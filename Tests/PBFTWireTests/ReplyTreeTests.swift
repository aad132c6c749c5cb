import PBFTCrypto
import PBFTWire
import Testing

/// The reply tree against RFC 6962's recursive definition, and what its proofs refuse.
@Suite struct ReplyTreeTests {
    let digester = SHA256Digester()

    func replies(_ count: Int) -> [Reply] {
        (0..<count).map { i in
            Reply(view: ViewNumber(2), timestamp: Timestamp(UInt64(100 + i)), requester: .client(ClientID(UInt32(i))), result: Array("result \(i)".utf8))
        }
    }

    /// RFC 6962 §2.1: MTH of n > 1 leaves hashes 0x01, the MTH of the first k (the largest
    /// power of two below n) and the MTH of the rest; a leaf hashes 0x00 and its bytes.
    func referenceRoot(_ leaves: ArraySlice<Reply>) -> Digest {
        if leaves.count == 1 {
            var bytes: [UInt8] = [0]
            bytes.append(contentsOf: encodedReply(leaves.first!))
            return digester.digest(bytes)
        }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let left = referenceRoot(leaves.prefix(k)), right = referenceRoot(leaves.dropFirst(k))
        return digester.digest([1] + left.bytes + right.bytes)
    }

    /// A reply's bytes as docs/wire-format.md gives them: view, timestamp, requester, result.
    func encodedReply(_ r: Reply) -> [UInt8] {
        guard case .client(let id) = r.requester else { preconditionFailure("client replies only") }
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        return u64(r.view.rawValue) + u64(r.timestamp.rawValue) + [1] + u32(id.rawValue) + u32(UInt32(r.result.count)) + r.result
    }

    @Test func rootsMatchRFC6962AndEveryPathLeadsToIt() {
        for count in 1...70 {
            let all = replies(count)
            let tree = ReplyTree(all, digester: digester)
            #expect(tree.root.leaves == UInt32(count))
            #expect(tree.root.root == referenceRoot(all[...]), "\(count) leaves")
            for (i, reply) in all.enumerated() {
                let proven = ProvenReply(reply: reply, index: UInt32(i), path: tree.paths[i])
                #expect(tree.paths[i].count == ReplyTree.pathLength(index: UInt32(i), leaves: UInt32(count)))
                #expect(tree.root.proves(proven, digester: digester), "reply \(i) of \(count)")
            }
        }
    }

    @Test func aProofHoldsOnlyForItsReplyItsPlaceAndItsTree() {
        for count in 1...17 {
            let all = replies(count)
            let tree = ReplyTree(all, digester: digester)
            for (i, reply) in all.enumerated() {
                let proven = ProvenReply(reply: reply, index: UInt32(i), path: tree.paths[i])
                var changed = proven
                changed.reply.result.append(0)
                #expect(!tree.root.proves(changed, digester: digester))
                changed = proven
                changed.reply.timestamp = Timestamp(changed.reply.timestamp.rawValue + 1)
                #expect(!tree.root.proves(changed, digester: digester))
                changed = proven
                changed.reply.requester = .client(ClientID(999))
                #expect(!tree.root.proves(changed, digester: digester))
                // Another reply of the batch with this one's path.
                if count > 1 {
                    changed = proven
                    changed.reply = all[(i + 1) % count]
                    #expect(!tree.root.proves(changed, digester: digester))
                }
                for j in 0..<count + 2 where j != i {
                    changed = proven
                    changed.index = UInt32(j)
                    #expect(!tree.root.proves(changed, digester: digester), "reply \(i) claimed at \(j) of \(count)")
                }
                for k in proven.path.indices {
                    changed = proven
                    changed.path[k] = Digest(w0: 9, w1: 9, w2: 9, w3: 9)
                    #expect(!tree.root.proves(changed, digester: digester))
                }
                changed = proven
                changed.path.append(tree.root.root)
                #expect(!tree.root.proves(changed, digester: digester))
                if !proven.path.isEmpty {
                    changed = proven
                    changed.path.removeLast()
                    #expect(!tree.root.proves(changed, digester: digester))
                }
            }
        }
    }

    @Test func aReplyFrameRoundTripsWithItsPath() throws {
        let all = replies(11)
        let tree = ReplyTree(all, digester: digester)
        let envelope = Envelope(sender: .replica(ReplicaID(2)), epoch: Epoch(1), message: .reply(tree.root), signature: .zero)
        for (i, reply) in all.enumerated() {
            let frame = Frame(envelope: envelope, reply: ProvenReply(reply: reply, index: UInt32(i), path: tree.paths[i]))
            let decoded = try Frame.decode(frame.encoded())
            #expect(decoded == frame)
            guard case .reply(let root) = decoded.envelope.message, let proven = decoded.reply else {
                Issue.record("no reply in the decoded frame")
                continue
            }
            #expect(root.proves(proven, digester: digester))
        }
    }
}
