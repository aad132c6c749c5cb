import PBFTWire
import Testing

/// The encoder writes exactly the layout docs/wire-format.md specifies: each expected byte
/// string here is built by hand from the specification's tables, not by the codec.
@Suite struct LayoutTests {
    let digest = Digest(w0: 0x0102_0304_0506_0708, w1: 0x1112_1314_1516_1718, w2: 0x2122_2324_2526_2728, w3: 0x3132_3334_3536_3738)
    let signature = Signature(bytes: (0..<64).map { UInt8($0) })!

    @Test func theEnvelopeHeaderHasTheSpecifiedOffsets() {
        let commit = Vote(view: ViewNumber(2), sequence: SequenceNumber(3), batchDigest: digest)
        let envelope = Envelope(sender: .replica(ReplicaID(0x0A0B_0C0D)), epoch: Epoch(0x0102_0304_0506_0708), message: .commit(commit), signature: signature)
        let bytes = envelope.encoded()
        #expect(bytes.count == 19 + 48 + 64)
        #expect(bytes[HeaderOffset.version] == 3)
        #expect(bytes[HeaderOffset.type] == 5)
        #expect(bytes[HeaderOffset.senderKind] == 0)
        #expect(Array(bytes[HeaderOffset.senderID..<HeaderOffset.epoch]) == [0x0A, 0x0B, 0x0C, 0x0D])
        #expect(Array(bytes[HeaderOffset.epoch..<HeaderOffset.payloadLength]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(bytes[HeaderOffset.payloadLength..<HeaderOffset.payload]) == [0, 0, 0, 48])
        #expect(Array(bytes.suffix(64)) == signature.bytes)
        #expect(envelope.signedBytes == Array(bytes.dropLast(64)))
        #expect(envelopeHeaderBytes == HeaderOffset.payload)
    }

    @Test(arguments: [
        (Principal.replica(ReplicaID(7)), [0, 0, 0, 0, 7]),
        (.client(ClientID(0x0102_0304)), [1, 1, 2, 3, 4]),
        (.operator, [2, 0, 0, 0, 0]),
    ] as [(Principal, [UInt8])])
    func principalsAreAKindAndAnID(_ principal: Principal, _ expected: [UInt8]) {
        let type: Message =
            switch principal {
            case .client: .request(Request(timestamp: Timestamp(0), operation: []))
            case .operator: .reconfiguration(Reconfiguration(timestamp: Timestamp(0), change: .setFaultTolerance(1)))
            case .replica: .checkpoint(Checkpoint(sequence: SequenceNumber(0), stateDigest: .zero))
            }
        let bytes = Envelope(sender: principal, epoch: Epoch(0), message: type, signature: .zero).encoded()
        #expect(Array(bytes[HeaderOffset.senderKind..<HeaderOffset.epoch]) == expected)
    }

    @Test func typeNumbersAreFixed() {
        let expected: [MessageType: UInt8] = [
            .request: 1, .reconfiguration: 2, .prePrepare: 3, .prepare: 4, .commit: 5, .reply: 6,
            .checkpoint: 7, .viewChange: 8, .newView: 9, .stateRequest: 10, .stateChunk: 11, .status: 12,
            .control: 13, .controlReply: 14, .epochAnnouncement: 15,
        ]
        for type in MessageType.allCases { #expect(type.rawValue == expected[type], "\(type)") }
    }

    @Test func payloadsHaveTheSpecifiedLayout() {
        let key = PublicKey(bytes: [UInt8](repeating: 0xEE, count: 32))!
        let descriptor = ReplicaDescriptor(id: ReplicaID(5), host: "h1", port: 0x1F40, publicKey: key)
        let descriptorBytes: [UInt8] = [0, 0, 0, 5, 0, 0, 0, 2, 0x68, 0x31, 0x1F, 0x40] + key.bytes
        let d = digest.bytes
        let cases: [(Message, [UInt8])] = [
            (.request(Request(timestamp: Timestamp(9), operation: [0xAA, 0xBB])), u64(9) + [0, 0, 0, 2, 0xAA, 0xBB]),
            (.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .addReplica(descriptor))), u64(1) + [1] + descriptorBytes),
            (.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .removeReplica(ReplicaID(3)))), u64(1) + [2, 0, 0, 0, 3]),
            (.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .replaceReplica(old: ReplicaID(3), new: descriptor))), u64(1) + [3, 0, 0, 0, 3] + descriptorBytes),
            (.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .setFaultTolerance(2))), u64(1) + [4, 0, 0, 0, 2]),
            (.prePrepare(PrePrepare(view: ViewNumber(1), sequence: SequenceNumber(2), batchDigest: digest)), u64(1) + u64(2) + d),
            (.prepare(Vote(view: ViewNumber(1), sequence: SequenceNumber(2), batchDigest: digest)), u64(1) + u64(2) + d),
            (.reply(ReplyRoot(root: digest, leaves: 3)), d + [0, 0, 0, 3]),
            (.checkpoint(Checkpoint(sequence: SequenceNumber(4), stateDigest: digest)), u64(4) + d),
            (.stateRequest(StateRequest(sequence: SequenceNumber(4), stateDigest: digest, chunkIndex: 6)), u64(4) + d + [0, 0, 0, 6]),
            (.stateChunk(StateChunk(sequence: SequenceNumber(4), stateDigest: digest, chunkIndex: 1, chunkCount: 2, totalBytes: 3, bytes: [9])),
             u64(4) + d + [0, 0, 0, 1, 0, 0, 0, 2] + u64(3) + [0, 0, 0, 1, 9]),
            (.status(Status(view: ViewNumber(1), stableSequence: SequenceNumber(2), lastExecuted: SequenceNumber(3), viewChanging: true)), u64(1) + u64(2) + u64(3) + [1]),
            (.status(Status(view: ViewNumber(1), stableSequence: SequenceNumber(2), lastExecuted: SequenceNumber(3), passive: true)), u64(1) + u64(2) + u64(3) + [2]),
            (.control(Control(timestamp: Timestamp(7), target: .replica(ReplicaID(0x0102_0304)), command: .stop)), u64(7) + [1, 1, 2, 3, 4] + [2] + [0, 0, 0, 0]),
            (.control(Control(timestamp: Timestamp(7), target: .replica(ReplicaID(3)), command: .byzantine, argument: Array("off".utf8))),
             u64(7) + [1, 0, 0, 0, 3] + [3] + [0, 0, 0, 3, 0x6F, 0x66, 0x66]),
            (.control(Control(timestamp: Timestamp(7), target: .launcher(RunID(high: 0x1011_1213_1415_1617, low: 0x1819_1A1B_1C1D_1E1F)), command: .launcher, argument: [0x7B, 0x7D])),
             u64(7) + [2] + Array(0x10...0x1F) + [4] + [0, 0, 0, 2, 0x7B, 0x7D]),
            (.controlReply(ControlReply(timestamp: Timestamp(7), outcome: .done, epoch: Epoch(5), body: [0x6F, 0x6B])), u64(7) + [1] + u64(5) + [0, 0, 0, 2, 0x6F, 0x6B]),
            (.controlReply(ControlReply(timestamp: Timestamp(7), outcome: .wrongEpoch, epoch: Epoch(2), body: [])), u64(7) + [2] + u64(2) + [0, 0, 0, 0]),
            (.controlReply(ControlReply(timestamp: Timestamp(7), outcome: .refused, epoch: Epoch(0), body: [])), u64(7) + [0] + u64(0) + [0, 0, 0, 0]),
        ]
        for (message, payload) in cases {
            #expect(payloadOf(message) == payload, "\(message.type)")
        }
    }

    /// The example in docs/wire-format.md ("Control commands"), byte for byte.
    @Test func theDocumentedControlExampleIsWhatTheEncoderWrites() {
        let stop3 = Control(timestamp: Timestamp(0x0006_3A1B_2C3D_4E5F), target: .replica(ReplicaID(3)), command: .stop)
        #expect(Hex.encode(payloadOf(.control(stop3))) == "00063a1b2c3d4e5f" + "01" + "00000003" + "02" + "00000000")
    }

    @Test func nestedEnvelopesAreLengthPrefixedWholeEnvelopes() {
        let checkpoint = Envelope(sender: .replica(ReplicaID(1)), epoch: Epoch(0), message: .checkpoint(Checkpoint(sequence: SequenceNumber(4), stateDigest: digest)), signature: signature)
        let prePrepare = Envelope(sender: .replica(ReplicaID(0)), epoch: Epoch(0), message: .prePrepare(PrePrepare(view: ViewNumber(0), sequence: SequenceNumber(5), batchDigest: digest)), signature: signature)
        let request = Envelope(sender: .client(ClientID(2)), epoch: Epoch(0), message: .request(Request(timestamp: Timestamp(1), operation: [])), signature: signature)
        let prepare = Envelope(sender: .replica(ReplicaID(2)), epoch: Epoch(0), message: .prepare(Vote(view: ViewNumber(0), sequence: SequenceNumber(5), batchDigest: digest)), signature: signature)
        func nested(_ e: Envelope) -> [UInt8] { u32(UInt32(e.encoded().count)) + e.encoded() }

        let certificate = PreparedCertificate(prePrepare: prePrepare, batch: [request], prepares: [prepare])
        let viewChange = ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(4), checkpointProof: [checkpoint], prepared: [certificate])
        let expectedViewChange = u64(1) + u64(4) + [0, 1] + nested(checkpoint) + [0, 1] + nested(prePrepare) + [0, 1] + nested(request) + [0, 1] + nested(prepare)
        #expect(payloadOf(.viewChange(viewChange)) == expectedViewChange)

        let viewChangeEnvelope = Envelope(sender: .replica(ReplicaID(3)), epoch: Epoch(0), message: .viewChange(viewChange), signature: signature)
        let newView = NewView(view: ViewNumber(1), viewChanges: [viewChangeEnvelope], prePrepares: [prePrepare, prePrepare])
        #expect(payloadOf(.newView(newView)) == u64(1) + [0, 1] + nested(viewChangeEnvelope) + [0, 2] + nested(prePrepare) + nested(prePrepare))

        let frame = Frame(envelope: prePrepare, batch: [request, request])
        #expect(frame.encoded() == prePrepare.encoded() + [0, 2] + nested(request) + nested(request))
    }

    private func payloadOf(_ message: Message) -> [UInt8] {
        let sender: Principal =
            switch message.type {
            case .request: .client(ClientID(1))
            case .reconfiguration: .operator
            default: .replica(ReplicaID(0))
            }
        let bytes = Envelope(sender: sender, epoch: Epoch(0), message: message, signature: .zero).encoded()
        return Array(bytes[HeaderOffset.payload..<(bytes.count - 64)])
    }

    private func u64(_ value: UInt64) -> [UInt8] {
        var w = WireBytes()
        w.u64(value)
        return w.bytes
    }

    private func u32(_ value: UInt32) -> [UInt8] {
        var w = WireBytes()
        w.u32(value)
        return w.bytes
    }
}
