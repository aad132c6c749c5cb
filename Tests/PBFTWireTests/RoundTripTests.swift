import PBFTWire
import Testing

/// Encoding then decoding gives back the value, and encoding that again gives back the
/// same bytes: the property that lets a receiver check signatures on re-encoded nested
/// envelopes.
@Suite struct RoundTripTests {
    static let seedsPerType: UInt64 = 256

    @Test(arguments: MessageType.allCases)
    func framesRoundTrip(_ type: MessageType) throws {
        for seed in 0..<Self.seedsPerType {
            var generator = MessageGenerator(seed: seed &* 0x1_0000 &+ UInt64(type.rawValue))
            let frame = generator.frame(type)
            let bytes = frame.encoded()
            let decoded = try Frame.decode(bytes)
            #expect(decoded == frame, "seed \(seed)")
            #expect(decoded.withoutKeptBytes.encoded() == bytes, "seed \(seed)")
        }
    }

    @Test(arguments: MessageType.allCases)
    func envelopesRoundTrip(_ type: MessageType) throws {
        for seed in 0..<Self.seedsPerType {
            var generator = MessageGenerator(seed: seed &* 0x1_0000 &+ 0x100 &+ UInt64(type.rawValue))
            let envelope = generator.envelope(type)
            let bytes = envelope.encoded()
            #expect(bytes.count == envelopeHeaderBytes + payloadLength(of: bytes) + 64, "seed \(seed)")
            let decoded = try Envelope.decode(bytes)
            #expect(decoded == envelope, "seed \(seed)")
            #expect(decoded.withoutKeptBytes.encoded() == bytes, "seed \(seed)")
            #expect(decoded.signedBytes == Array(bytes.dropLast(64)), "seed \(seed)")
        }
    }

    /// A decoded or sealed envelope keeps its signed bytes; changing anything they cover must
    /// drop them, or a changed message would still verify under the old signature.
    @Test(arguments: MessageType.allCases)
    func keptSignedBytesFollowEveryChange(_ type: MessageType) throws {
        var generator = MessageGenerator(seed: 0x5EED &+ UInt64(type.rawValue))
        let original = try Envelope.decode(generator.envelope(type).encoded())
        let fresh = { (e: Envelope) in Envelope.signedBytes(sender: e.sender, epoch: e.epoch, message: e.message) }
        #expect(original.signedBytes == fresh(original))

        var changed = original
        changed.epoch = Epoch(original.epoch.rawValue &+ 1)
        #expect(changed.signedBytes == fresh(changed) && changed.signedBytes != original.signedBytes)
        changed = original
        changed.sender = original.sender == .operator ? .operator : (original.sender == .replica(ReplicaID(7)) ? .replica(ReplicaID(8)) : .replica(ReplicaID(7)))
        if changed.sender != original.sender { #expect(changed.signedBytes == fresh(changed) && changed.signedBytes != original.signedBytes) }
        changed = original
        changed.message = generator.message(type)
        #expect(changed.signedBytes == fresh(changed))
        // The signature is not covered: changing it keeps the bytes.
        changed = original
        changed.signature = Signature.zero
        #expect(changed.signedBytes == original.signedBytes)
    }

    @Test func everyReconfigurationKindRoundTrips() throws {
        let key = PublicKey(bytes: [UInt8](repeating: 0xAB, count: 32))!
        let replica = ReplicaDescriptor(id: ReplicaID(9), host: "replica-9.example", port: 7009, publicKey: key)
        let changes: [ReconfigurationChange] = [
            .addReplica(replica), .removeReplica(ReplicaID(3)),
            .replaceReplica(old: ReplicaID(3), new: replica), .setFaultTolerance(2),
        ]
        for change in changes {
            let envelope = Envelope(
                sender: .operator, epoch: Epoch(1),
                message: .reconfiguration(Reconfiguration(timestamp: Timestamp(5), change: change)),
                signature: .zero)
            let bytes = envelope.encoded()
            #expect(try Envelope.decode(bytes) == envelope)
            #expect(try Envelope.decode(bytes).withoutKeptBytes.encoded() == bytes)
        }
    }

    /// Every list and byte field at exactly its limit decodes; the decoder's bounds are
    /// inclusive.
    @Test func fieldsAtTheirLimitsRoundTrip() throws {
        let limits = WireLimits.default
        var generator = MessageGenerator(seed: 42, scale: .small)
        let requests = (0..<limits.batchRequestsMax).map { _ in generator.envelope(.request) }
        let prePrepare = generator.envelope(.prePrepare)
        let checkpoints = (0..<limits.replicasMax).map { _ in generator.envelope(.checkpoint) }
        let prepares = (0..<limits.replicasMax).map { _ in generator.envelope(.prepare) }
        let certificates = (0..<limits.logWindowMax).map { _ in
            PreparedCertificate(prePrepare: prePrepare, batch: [], prepares: [])
        }
        let full = PreparedCertificate(prePrepare: prePrepare, batch: requests, prepares: prepares)
        let messages: [Message] = [
            .request(Request(timestamp: Timestamp(1), operation: [UInt8](repeating: 7, count: limits.operationBytesMax))),
            .reply(ReplyRoot(root: .zero, leaves: UInt32(limits.batchRequestsMax))),
            .stateChunk(StateChunk(
                sequence: SequenceNumber(1), stateDigest: .zero, chunkIndex: UInt32.max - 1, chunkCount: UInt32.max,
                totalBytes: limits.stateBytesMax, bytes: [UInt8](repeating: 7, count: limits.stateChunkBytesMax))),
            .viewChange(ViewChange(
                newView: ViewNumber(1), stableSequence: SequenceNumber(0),
                checkpointProof: checkpoints, prepared: certificates)),
            .viewChange(ViewChange(
                newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: [], prepared: [full])),
            .newView(NewView(
                view: ViewNumber(1),
                viewChanges: [Envelope](repeating: checkpoints[0].withMessage(.viewChange(ViewChange(
                    newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: [], prepared: []))),
                    count: limits.replicasMax),
                prePrepares: [Envelope](repeating: prePrepare, count: limits.logWindowMax))),
            .reconfiguration(Reconfiguration(
                timestamp: Timestamp(1),
                change: .addReplica(ReplicaDescriptor(
                    id: ReplicaID(1), host: String(repeating: "h", count: limits.hostBytesMax),
                    port: 1, publicKey: PublicKey(bytes: [UInt8](repeating: 1, count: 32))!)))),
        ]
        for message in messages {
            let sender: Principal =
                switch message.type {
                case .request: .client(ClientID(1))
                case .reconfiguration: .operator
                default: .replica(ReplicaID(0))
                }
            let envelope = Envelope(sender: sender, epoch: Epoch(0), message: message, signature: .zero)
            #expect(try Envelope.decode(envelope.encoded()) == envelope, "\(message.type)")
        }
        let frame = Frame(envelope: prePrepare, batch: requests)
        #expect(try Frame.decode(frame.encoded()) == frame)
    }

    /// A frame for anything but a pre-prepare carries no batch at all, not even a count.
    @Test func onlyAPrePrepareFrameCarriesABatch() throws {
        var generator = MessageGenerator(seed: 7)
        let commit = generator.envelope(.commit)
        #expect(Frame(envelope: commit).encoded() == commit.encoded())
        let prePrepare = generator.envelope(.prePrepare)
        #expect(Frame(envelope: prePrepare).encoded() == prePrepare.encoded() + [0, 0])
    }

    private func payloadLength(of bytes: [UInt8]) -> Int {
        bytes[15..<19].reduce(0) { $0 << 8 | Int($1) }
    }
}

extension Envelope {
    func withMessage(_ message: Message) -> Envelope {
        var copy = self
        copy.message = message
        return copy
    }
}
