import PBFTCore
import PBFTCrypto
import PBFTWire
import Synchronization
import Testing

/// The authenticator against a real membership (4 replicas, 3 clients, the operator) and
/// real Ed25519: every signature in a frame, nested ones included, must verify under the
/// key its signer holds in the envelope's epoch.
@Suite struct AuthenticatorTests {
    let authenticator = Authenticator(verifier: Ed25519Verifier(), keys: TestKeys.membership)
    let primary = Principal.replica(ReplicaID(0))

    // MARK: - Accepted

    @Test func aCorrectlySignedPrePrepareFrameOpens() throws {
        let frame = Frame(envelope: prePrepare(), batch: [request(client: 1), request(client: 3), reconfiguration()])
        let opened = try authenticator.open(frame.encoded())
        #expect(opened.value == frame)
    }

    @Test(arguments: MessageType.allCases)
    func everyTypeSignedByItsSenderOpens(_ type: MessageType) throws {
        var generator = MessageGenerator(seed: UInt64(type.rawValue))
        let sender: Principal =
            switch type {
            case .request: .client(ClientID(2))
            case .reconfiguration, .control: .operator
            default: .replica(ReplicaID(3))
            }
        // The generator's nested envelopes carry random signatures; use signed fixtures there.
        let message: Message =
            switch type {
            case .viewChange: .viewChange(viewChange())
            case .newView: .newView(newView())
            default: generator.message(type)
            }
        var frame = Frame(envelope: sealed(message, by: sender), batch: type == .prePrepare ? [request(client: 2)] : [])
        if case .reply(let root) = message { frame.reply = generator.provenReply(of: root) }
        #expect(try authenticator.open(frame.encoded()).value == frame)
    }

    @Test func aViewChangeWithSignedCertificatesOpens() throws {
        let frame = Frame(envelope: sealed(.viewChange(viewChange()), by: .replica(ReplicaID(1))))
        #expect(try authenticator.open(frame.encoded()).value == frame)
    }

    @Test func aNewViewWithSignedViewChangesOpens() throws {
        let frame = Frame(envelope: sealed(.newView(newView()), by: .replica(ReplicaID(1))))
        #expect(try authenticator.open(frame.encoded()).value == frame)
    }

    @Test func authenticateAgreesWithOpen() throws {
        let frame = Frame(envelope: prePrepare(), batch: [request(client: 1)])
        #expect(try authenticator.authenticate(frame) == authenticator.open(frame.encoded()))
    }

    // MARK: - Rejected: the envelope

    @Test func aFlippedSignatureBitIsABadSignature() {
        let bytes = Frame(envelope: sealed(.commit(vote()), by: .replica(ReplicaID(2)))).encoded()
        for bit in [0, 7, 300, 511] {
            var corrupted = bytes
            corrupted[bytes.count - 64 + bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(rejection(corrupted) == .badSignature(.replica(ReplicaID(2)), field: "envelope"), "bit \(bit)")
        }
    }

    @Test func aFlippedBitInTheSignedBytesIsABadSignature() {
        var bytes = Frame(envelope: sealed(.commit(vote()), by: .replica(ReplicaID(2)))).encoded()
        bytes[HeaderOffset.payload] ^= 0x01
        #expect(rejection(bytes) == .badSignature(.replica(ReplicaID(2)), field: "envelope"))
    }

    @Test func aSignatureByAnotherMembersKeyIsABadSignature() {
        let forged = Envelope.seal(
            .commit(vote()), epoch: TestKeys.epoch,
            signer: Ed25519Signer(principal: .replica(ReplicaID(2)), key: TestKeys.replicas[1]))
        #expect(rejection(Frame(envelope: forged).encoded()) == .badSignature(.replica(ReplicaID(2)), field: "envelope"))
    }

    @Test func aClientNotInTheMembershipIsAnUnknownSigner() {
        let stranger = Ed25519Signer(principal: .client(ClientID(99)), key: TestKeys.key(seed: 999))
        let envelope = Envelope.seal(.request(Request(timestamp: Timestamp(1), operation: [1])), epoch: TestKeys.epoch, signer: stranger)
        #expect(rejection(Frame(envelope: envelope).encoded()) == .unknownSigner(.client(ClientID(99)), TestKeys.epoch))
    }

    @Test func aReplicaNotInTheMembershipIsAnUnknownSigner() {
        let stranger = Ed25519Signer(principal: .replica(ReplicaID(4)), key: TestKeys.key(seed: 998))
        let envelope = Envelope.seal(.commit(vote()), epoch: TestKeys.epoch, signer: stranger)
        #expect(rejection(Frame(envelope: envelope).encoded()) == .unknownSigner(.replica(ReplicaID(4)), TestKeys.epoch))
    }

    @Test(arguments: [0, 6, 8, UInt64.max])
    func anotherEpochIsAnUnknownSigner(_ epoch: UInt64) {
        let envelope = sealed(.commit(vote()), by: primary, epoch: Epoch(epoch))
        #expect(rejection(Frame(envelope: envelope).encoded()) == .unknownSigner(primary, Epoch(epoch)))
    }

    @Test func malformedBytesAreRejectedAsMalformed() {
        let bytes = Frame(envelope: sealed(.commit(vote()), by: primary)).encoded()
        #expect(rejection(Array(bytes.dropLast())) == .malformed(.truncated(field: "signature", needed: 64, available: 63)))
    }

    // MARK: - Rejected: nested signatures

    @Test func aBatchRequestWithABadClientSignatureIsRejected() {
        let frame = Frame(envelope: prePrepare(), batch: [request(client: 1), corrupted(request(client: 2))])
        #expect(rejection(frame.encoded()) == .badSignature(.client(ClientID(2)), field: "batch"))
    }

    @Test func aBatchRequestFromAnUnknownClientIsRejected() {
        let stranger = Ed25519Signer(principal: .client(ClientID(50)), key: TestKeys.key(seed: 997))
        let request = Envelope.seal(.request(Request(timestamp: Timestamp(1), operation: [])), epoch: TestKeys.epoch, signer: stranger)
        let frame = Frame(envelope: prePrepare(), batch: [request])
        #expect(rejection(frame.encoded()) == .unknownSigner(.client(ClientID(50)), TestKeys.epoch))
    }

    @Test func aViewChangeWithABadCheckpointSignatureIsRejected() {
        var change = viewChange()
        change.checkpointProof[2] = corrupted(change.checkpointProof[2])
        let frame = Frame(envelope: sealed(.viewChange(change), by: .replica(ReplicaID(1))))
        #expect(rejection(frame.encoded()) == .badSignature(.replica(ReplicaID(2)), field: "envelope.C"))
    }

    @Test func aViewChangeWithABadCertificateIsRejected() {
        var badPrePrepare = viewChange()
        badPrePrepare.prepared[0].prePrepare = corrupted(badPrePrepare.prepared[0].prePrepare)
        var badRequest = viewChange()
        badRequest.prepared[0].batch[0] = corrupted(badRequest.prepared[0].batch[0])
        var badPrepare = viewChange()
        badPrepare.prepared[0].prepares[1] = corrupted(badPrepare.prepared[0].prepares[1])
        let cases: [(ViewChange, Rejection)] = [
            (badPrePrepare, .badSignature(primary, field: "envelope.P.prePrepare")),
            (badRequest, .badSignature(.client(ClientID(1)), field: "envelope.P.batch")),
            (badPrepare, .badSignature(.replica(ReplicaID(2)), field: "envelope.P.prepares")),
        ]
        for (change, expected) in cases {
            let frame = Frame(envelope: sealed(.viewChange(change), by: .replica(ReplicaID(1))))
            #expect(rejection(frame.encoded()) == expected)
        }
    }

    @Test func aNewViewWithABadNestedSignatureIsRejected() {
        var badViewChange = newView()
        badViewChange.viewChanges[1] = corrupted(badViewChange.viewChanges[1])
        var badDeepCheckpoint = newView()
        badDeepCheckpoint.viewChanges[0] = sealed(.viewChange(viewChange(corruptingCheckpoint: 0)), by: .replica(ReplicaID(2)))
        var badPrePrepare = newView()
        badPrePrepare.prePrepares[0] = corrupted(badPrePrepare.prePrepares[0])
        let cases: [(NewView, Rejection)] = [
            (badViewChange, .badSignature(.replica(ReplicaID(1)), field: "envelope.V")),
            (badDeepCheckpoint, .badSignature(.replica(ReplicaID(0)), field: "envelope.V.C")),
            (badPrePrepare, .badSignature(.replica(ReplicaID(1)), field: "envelope.O")),
        ]
        for (view, expected) in cases {
            let frame = Frame(envelope: sealed(.newView(view), by: .replica(ReplicaID(1))))
            #expect(rejection(frame.encoded()) == expected)
        }
    }

    // MARK: - Remembered signatures

    @Test func aNewViewOpenedAgainCostsNoSignatureCheck() throws {
        let (memoized, checks) = counting(capacity: 1024)
        let bytes = Frame(envelope: sealed(.newView(newView()), by: .replica(ReplicaID(1)))).encoded()
        _ = try memoized.open(bytes)
        let first = checks.count
        // The new-view, the first view-change with its 3 checkpoints, pre-prepare, request and
        // 2 prepares, the other two view-changes (they carry the same nested envelopes, checked
        // once), and the new-view's pre-prepare.
        #expect(first == 1 + 8 + 2 + 1)
        _ = try memoized.open(bytes)
        #expect(checks.count == first)
    }

    @Test func viewChangesReceivedBeforeTheirNewViewAreNotCheckedAgain() throws {
        let (memoized, checks) = counting(capacity: 1024)
        let view = newView()
        for change in view.viewChanges { _ = try memoized.open(Frame(envelope: change).encoded()) }
        let before = checks.count
        _ = try memoized.open(Frame(envelope: sealed(.newView(view), by: .replica(ReplicaID(1)))).encoded())
        // Only the new-view's own signature and its pre-prepare for view 1 are new.
        #expect(checks.count - before == 2)
    }

    @Test func aReplyRootSentToEveryClientOfItsBatchIsCheckedOnceByClientsSharingAMemo() throws {
        let (memoized, checks) = counting(capacity: 1024)
        let replies = (1...3).map { c in
            Reply(view: ViewNumber(0), timestamp: Timestamp(UInt64(c)), requester: .client(ClientID(UInt32(c))), result: [UInt8(c)])
        }
        let tree = ReplyTree(replies, digester: SHA256Digester())
        let root = sealed(.reply(tree.root), by: .replica(ReplicaID(2)))
        for (i, reply) in replies.enumerated() {
            let proven = ProvenReply(reply: reply, index: UInt32(i), path: tree.paths[i])
            let opened = try memoized.open(Frame(envelope: root, reply: proven).encoded())
            #expect(opened.value.reply == proven)
        }
        #expect(checks.count == 1)
    }

    @Test func aRememberedSignatureDoesNotCoverOtherBytes() throws {
        let (memoized, _) = counting(capacity: 1024)
        var bytes = Frame(envelope: sealed(.commit(vote()), by: .replica(ReplicaID(2)))).encoded()
        _ = try memoized.open(bytes)
        bytes[HeaderOffset.payload] ^= 0x01
        #expect(throws: Rejection.badSignature(.replica(ReplicaID(2)), field: "envelope")) { try memoized.open(bytes) }
    }

    @Test func anEnvelopeWithABadNestedSignatureIsNotRemembered() {
        let (memoized, _) = counting(capacity: 1024)
        var change = viewChange()
        change.prepared[0].prepares[1] = corrupted(change.prepared[0].prepares[1])
        // The outer signature is good: remembering it before the nested ones checked out would
        // let the second attempt through.
        let bytes = Frame(envelope: sealed(.viewChange(change), by: .replica(ReplicaID(1)))).encoded()
        for _ in 0..<2 {
            #expect(throws: Rejection.badSignature(.replica(ReplicaID(2)), field: "envelope.P.prepares")) { try memoized.open(bytes) }
        }
    }

    @Test func theMemoForgetsItsOldestEntriesBeyondItsCapacity() throws {
        let (memoized, checks) = counting(capacity: 2)
        let commits = (1...3).map { n in
            Frame(envelope: sealed(.commit(Vote(view: ViewNumber(0), sequence: SequenceNumber(n), batchDigest: Crypto.sha256([9]))), by: .replica(ReplicaID(2)))).encoded()
        }
        for bytes in commits { _ = try memoized.open(bytes) }
        #expect(checks.count == 3)
        _ = try memoized.open(commits[2])
        #expect(checks.count == 3)
        _ = try memoized.open(commits[0])
        #expect(checks.count == 4)
        #expect((memoized.memo as? SignatureMemo)?.counts.hits == 1)
    }

    // MARK: - Fixtures

    /// An authenticator with a memo whose verifier counts the signatures it checks.
    private func counting(capacity: Int) -> (Authenticator<CountingVerifier, Membership>, CountingVerifier) {
        let verifier = CountingVerifier()
        let memo = SignatureMemo(capacity: capacity)
        return (Authenticator(verifier: verifier, keys: TestKeys.membership, memo: memo), verifier)
    }

    private func rejection(_ bytes: [UInt8]) -> Rejection? {
        do {
            _ = try authenticator.open(bytes)
            return nil
        } catch {
            return error
        }
    }

    private func sealed(_ message: Message, by principal: Principal, epoch: Epoch = TestKeys.epoch) -> Envelope {
        Envelope.seal(message, epoch: epoch, signer: TestKeys.signer(principal))
    }

    /// The same envelope with one bit of its signature flipped.
    private func corrupted(_ envelope: Envelope) -> Envelope {
        var bytes = envelope.signature.bytes
        bytes[10] ^= 0x40
        var copy = envelope
        copy.signature = Signature(bytes: bytes)!
        return copy
    }

    private func vote() -> Vote {
        Vote(view: ViewNumber(0), sequence: SequenceNumber(1), batchDigest: Crypto.sha256([1, 2, 3]))
    }

    private func request(client: UInt32) -> Envelope {
        sealed(.request(Request(timestamp: Timestamp(UInt64(client) * 10), operation: Array("put k\(client)".utf8))), by: .client(ClientID(client)))
    }

    private func reconfiguration() -> Envelope {
        sealed(.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .setFaultTolerance(1))), by: .operator)
    }

    private func prePrepare(view: UInt64 = 0) -> Envelope {
        sealed(.prePrepare(PrePrepare(view: ViewNumber(view), sequence: SequenceNumber(1), batchDigest: Crypto.sha256([9]))), by: .replica(ReplicaID(UInt32(view % 4))))
    }

    /// A view-change to view 1 with a checkpoint proof from replicas 0...2 and one
    /// certificate (pre-prepare by replica 0, a batch of one request, prepares from 1 and 2).
    private func viewChange(corruptingCheckpoint corrupt: Int? = nil) -> ViewChange {
        let checkpoint = Checkpoint(sequence: SequenceNumber(0), stateDigest: Crypto.sha256([]))
        var proof = (0..<3).map { sealed(.checkpoint(checkpoint), by: .replica(ReplicaID(UInt32($0)))) }
        if let corrupt { proof[corrupt] = corrupted(proof[corrupt]) }
        let prepares = (1...2).map { sealed(.prepare(vote()), by: .replica(ReplicaID(UInt32($0)))) }
        let certificate = PreparedCertificate(prePrepare: prePrepare(), batch: [request(client: 1)], prepares: prepares)
        return ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: proof, prepared: [certificate])
    }

    /// A new-view for view 1 from replica 1, with view-changes from replicas 0...2 and one
    /// pre-prepare.
    private func newView() -> NewView {
        let changes = (0..<3).map { sealed(.viewChange(viewChange()), by: .replica(ReplicaID(UInt32($0)))) }
        return NewView(view: ViewNumber(1), viewChanges: changes, prePrepares: [prePrepare(view: 1)])
    }
}

/// Ed25519, counting the signatures it checks.
final class CountingVerifier: SignatureVerifier {
    private let checks = Mutex(0)
    var count: Int { checks.withLock { $0 } }

    func isValid(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool {
        checks.withLock { $0 += 1 }
        return Ed25519Verifier().isValid(signature, of: bytes, by: publicKey)
    }
}
