import PBFTWire
import Testing

/// Each way a byte string can fail to be a message, with the error the decoder gives.
@Suite struct DecodeErrorTests {
    // MARK: - Framing

    @Test func everyStrictPrefixIsTruncated() {
        for type in MessageType.allCases {
            var generator = MessageGenerator(seed: UInt64(type.rawValue), scale: .small)
            let frame = generator.frame(type)
            let bytes = frame.encoded()
            for end in 0..<bytes.count {
                #expect(isTruncated(frameError(Array(bytes[..<end]))), "\(type) frame cut at \(end) of \(bytes.count)")
            }
            let envelope = frame.envelope.encoded()
            for end in 0..<envelope.count {
                #expect(isTruncated(envelopeError(Array(envelope[..<end]))), "\(type) envelope cut at \(end) of \(envelope.count)")
            }
        }
    }

    @Test func emptyInputNeedsTheVersion() {
        #expect(frameError([]) == .truncated(field: "version", needed: 1, available: 0))
    }

    /// Version 1 is the format before replies were signed per batch (a single reply in the
    /// envelope), version 2 the one before control commands named their target: refused,
    /// not misread.
    @Test(arguments: [0, 1, 2, 4, 255] as [UInt8])
    func unknownVersionIsRejected(_ version: UInt8) {
        let bytes = WireBytes.envelope(version: version, type: 7, payload: checkpointPayload())
        #expect(frameError(bytes) == .unsupportedVersion(version))
        #expect(envelopeError(bytes) == .unsupportedVersion(version))
    }

    @Test(arguments: [0, 16, 200, 255] as [UInt8])
    func unknownTypeIsRejected(_ type: UInt8) {
        #expect(MessageType(rawValue: type) == nil, "type \(type) is now taken; pick another")
        let bytes = WireBytes.envelope(type: type, payload: checkpointPayload())
        #expect(frameError(bytes) == .unknownMessageType(type))
        #expect(envelopeError(bytes) == .unknownMessageType(type))
    }

    @Test func unknownSenderKindIsRejected() {
        let bytes = WireBytes.envelope(type: 7, senderKind: 3, payload: checkpointPayload())
        #expect(frameError(bytes) == .unknownPrincipalKind(3))
    }

    @Test func trailingBytesAfterAnEnvelopeAreRejected() {
        var generator = MessageGenerator(seed: 1)
        let commit = generator.envelope(.commit).encoded()
        #expect(frameError(commit + [0]) == .trailingBytes(count: 1))
        #expect(envelopeError(commit + [1, 2, 3]) == .trailingBytes(count: 3))
        // `Envelope.decode` reads no batch, so a pre-prepare frame's batch is trailing there.
        let prePrepare = Frame(envelope: generator.envelope(.prePrepare), batch: [generator.envelope(.request)])
        #expect(throws: Never.self) { try Frame.decode(prePrepare.encoded()) }
        #expect(envelopeError(prePrepare.encoded()) == .trailingBytes(count: prePrepare.encoded().count - prePrepare.envelope.encoded().count))
    }

    /// A payload length that covers more than the message is not canonical.
    @Test func trailingBytesInsideThePayloadAreRejected() {
        let bytes = WireBytes.envelope(type: 7, payload: checkpointPayload() + [0, 0])
        #expect(envelopeError(bytes) == .trailingBytes(count: 2))
    }

    @Test func trailingBytesInsideANestedEnvelopeAreRejected() {
        let nested = WireBytes.envelope(type: 7, payload: checkpointPayload())
        var payload = WireBytes()
        payload.u64(1)  // newView
        payload.u64(0)  // stableSequence
        payload.u16(1)  // C.count
        payload.u32(UInt32(nested.count + 1))
        payload.raw(nested + [0])
        payload.u16(0)  // P.count
        #expect(envelopeError(WireBytes.envelope(type: 8, payload: payload.bytes)) == .trailingBytes(count: 1))
    }

    // MARK: - Senders

    @Test func aClientMayNotSendAPrePrepare() {
        let bytes = WireBytes.envelope(type: 3, senderKind: 1, senderID: 5, payload: [UInt8](repeating: 0, count: 48))
        #expect(frameError(bytes) == .senderNotAllowed(type: .prePrepare, sender: .client(ClientID(5))))
    }

    @Test func onlyTheRightPrincipalsSendEachType() {
        let principals: [Principal] = [.replica(ReplicaID(1)), .client(ClientID(1)), .operator]
        var generator = MessageGenerator(seed: 3)
        for type in MessageType.allCases {
            let message = generator.message(type)
            for sender in principals {
                let bytes = Envelope(sender: sender, epoch: Epoch(0), message: message, signature: .zero).encoded()
                let allowed =
                    switch (type, sender) {
                    case (.request, .client), (.reconfiguration, .operator), (.control, .operator), (.controlReply, .operator): true
                    case (.request, _), (.reconfiguration, _), (.control, _): false
                    case (_, .replica): true
                    default: false
                    }
                #expect(type.accepts(sender) == allowed, "\(sender) sending \(type)")
                if allowed {
                    #expect(envelopeError(bytes) == nil, "\(sender) sending \(type)")
                } else {
                    #expect(envelopeError(bytes) == .senderNotAllowed(type: type, sender: sender))
                }
            }
        }
    }

    @Test func theOperatorsIDMustBeZero() {
        let bytes = WireBytes.envelope(type: 2, senderKind: 2, senderID: 1, payload: reconfigurationPayload(kind: 4))
        guard case .invalidValue(let field, _) = frameError(bytes) else {
            Issue.record("expected invalidValue, got \(String(describing: frameError(bytes)))")
            return
        }
        #expect(field == "sender.id")
        let valid = WireBytes.envelope(type: 2, senderKind: 2, senderID: 0, payload: reconfigurationPayload(kind: 4))
        #expect(frameError(valid) == nil)
    }

    @Test func aReplyToAReplicaIsRejected() {
        let reply = Reply(view: ViewNumber(1), timestamp: Timestamp(2), requester: .replica(ReplicaID(3)), result: [1])
        let bytes = replyFrame(reply).encoded()
        guard case .invalidValue(let field, _) = frameError(bytes) else {
            Issue.record("expected invalidValue, got \(String(describing: frameError(bytes)))")
            return
        }
        #expect(field == "reply.requester")
    }

    @Test func aReplyToTheOperatorWithANonZeroIDIsRejected() {
        var root = WireBytes()
        root.zeros(32)
        root.u32(1)
        var tail = WireBytes()
        tail.u64(1)
        tail.u64(2)
        tail.u8(2)
        tail.u32(9)
        tail.u32(0)
        tail.u32(0)
        tail.u16(0)
        guard case .invalidValue(let field, _)? = frameError(WireBytes.envelope(type: 6, payload: root.bytes) + tail.bytes) else {
            Issue.record("expected invalidValue")
            return
        }
        #expect(field == "reply.requester.id")
    }

    // MARK: - Limits

    /// A claimed length far above its limit is refused before anything is allocated: the
    /// input is 95 bytes and claims a 4 GiB operation.
    @Test func aHugeOperationLengthIsALimitNotAnAllocation() {
        var payload = WireBytes()
        payload.u64(1)
        payload.u32(0xFFFF_FFFF)
        let bytes = WireBytes.envelope(type: 1, senderKind: 1, senderID: 1, payload: payload.bytes)
        #expect(bytes.count == 95)
        let limit = UInt64(WireLimits.default.operationBytesMax)
        #expect(frameError(bytes) == .limitExceeded(field: "request.operation", value: 0xFFFF_FFFF, limit: limit))
    }

    @Test func aHugePayloadLengthIsALimit() {
        let bytes = WireBytes.envelope(type: 7, payloadLength: 0xFFFF_FFFF, payload: checkpointPayload())
        #expect(frameError(bytes) == .limitExceeded(field: "payload", value: 0xFFFF_FFFF, limit: UInt64(WireLimits.default.frameBytesMax)))
    }

    @Test func aPayloadLengthBeyondTheInputIsTruncated() {
        let bytes = WireBytes.envelope(type: 7, payloadLength: 1000, payload: checkpointPayload())
        #expect(frameError(bytes) == .truncated(field: "payload", needed: 1000, available: 40 + 64))
    }

    @Test func aFrameLargerThanTheLimitIsRejectedFirst() {
        let limits = WireLimits(frameBytesMax: 100)
        let bytes = [UInt8](repeating: 0xFF, count: 101)
        #expect(throws: WireError.limitExceeded(field: "frame", value: 101, limit: 100)) { try Frame.decode(bytes, limits: limits) }
        #expect(throws: WireError.limitExceeded(field: "envelope", value: 101, limit: 100)) { try Envelope.decode(bytes, limits: limits) }
    }

    @Test func oneAboveEachLimitIsRejected() {
        let limits = WireLimits.default
        var g = MessageGenerator(seed: 11, scale: .small)
        let one = UInt64(1)

        let operation = [UInt8](repeating: 0, count: limits.operationBytesMax + 1)
        let request = Envelope(sender: .client(ClientID(1)), epoch: Epoch(0), message: .request(Request(timestamp: Timestamp(0), operation: operation)), signature: .zero)
        #expect(envelopeError(request.encoded()) == .limitExceeded(field: "request.operation", value: UInt64(operation.count), limit: UInt64(limits.operationBytesMax)))

        let reply = Reply(view: ViewNumber(0), timestamp: Timestamp(0), requester: .operator, result: [UInt8](repeating: 0, count: limits.resultBytesMax + 1))
        #expect(frameError(replyFrame(reply).encoded()) == .limitExceeded(field: "reply.result", value: UInt64(limits.resultBytesMax) + one, limit: UInt64(limits.resultBytesMax)))

        let batch = (0...limits.batchRequestsMax).map { _ in g.envelope(.request) }
        let frame = Frame(envelope: g.envelope(.prePrepare), batch: batch)
        #expect(frameError(frame.encoded()) == .limitExceeded(field: "batch.count", value: UInt64(batch.count), limit: UInt64(limits.batchRequestsMax)))

        let checkpoints = (0...limits.replicasMax).map { _ in g.envelope(.checkpoint) }
        let viewChange = ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: checkpoints, prepared: [])
        #expect(envelopeError(replicaEnvelope(.viewChange(viewChange)).encoded()) == .limitExceeded(field: "viewChange.C.count", value: UInt64(checkpoints.count), limit: UInt64(limits.replicasMax)))

        let prePrepares = [Envelope](repeating: g.envelope(.prePrepare), count: limits.logWindowMax + 1)
        let newView = NewView(view: ViewNumber(1), viewChanges: [], prePrepares: prePrepares)
        #expect(envelopeError(replicaEnvelope(.newView(newView)).encoded()) == .limitExceeded(field: "newView.O.count", value: UInt64(prePrepares.count), limit: UInt64(limits.logWindowMax)))

        let chunk = StateChunk(sequence: SequenceNumber(0), stateDigest: .zero, chunkIndex: 0, chunkCount: 1, totalBytes: limits.stateBytesMax + 1, bytes: [])
        #expect(envelopeError(replicaEnvelope(.stateChunk(chunk)).encoded()) == .limitExceeded(field: "stateChunk.totalBytes", value: limits.stateBytesMax + 1, limit: limits.stateBytesMax))

        let bigChunk = StateChunk(sequence: SequenceNumber(0), stateDigest: .zero, chunkIndex: 0, chunkCount: 1, totalBytes: 0, bytes: [UInt8](repeating: 0, count: limits.stateChunkBytesMax + 1))
        #expect(envelopeError(replicaEnvelope(.stateChunk(bigChunk)).encoded()) == .limitExceeded(field: "stateChunk.bytes", value: UInt64(limits.stateChunkBytesMax) + one, limit: UInt64(limits.stateChunkBytesMax)))

        let host = String(repeating: "h", count: limits.hostBytesMax + 1)
        let add = Reconfiguration(timestamp: Timestamp(0), change: .addReplica(ReplicaDescriptor(id: ReplicaID(0), host: host, port: 1, publicKey: PublicKey(bytes: [UInt8](repeating: 0, count: 32))!)))
        let reconfiguration = Envelope(sender: .operator, epoch: Epoch(0), message: .reconfiguration(add), signature: .zero)
        #expect(envelopeError(reconfiguration.encoded()) == .limitExceeded(field: "reconfiguration.add.host", value: UInt64(host.utf8.count), limit: UInt64(limits.hostBytesMax)))
    }

    @Test func aCountOf0xFFFFIsALimit() {
        var payload = WireBytes()
        payload.u64(1)
        payload.u16(0xFFFF)
        let bytes = WireBytes.envelope(type: 9, payload: payload.bytes)
        #expect(envelopeError(bytes) == .limitExceeded(field: "newView.V.count", value: 0xFFFF, limit: UInt64(WireLimits.default.replicasMax)))
    }

    /// A count within its limit but beyond the bytes present fails as truncated, having
    /// reserved no more than the input could hold.
    @Test func aCountBeyondTheInputIsTruncated() {
        var payload = WireBytes()
        payload.u64(1)
        payload.u16(60)
        payload.u16(0)
        let bytes = WireBytes.envelope(type: 9, payload: payload.bytes)
        #expect(isTruncated(envelopeError(bytes)))
    }

    // MARK: - Nesting

    @Test func aNestedEnvelopeOfTheWrongTypeIsRejected() {
        var g = MessageGenerator(seed: 5)
        let prepare = g.envelope(.prepare)
        let viewChange = ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: [prepare], prepared: [])
        #expect(envelopeError(replicaEnvelope(.viewChange(viewChange)).encoded()) == .unexpectedNestedType(field: "viewChange.C", expected: .checkpoint, found: .prepare))

        let certificate = PreparedCertificate(prePrepare: g.envelope(.commit), batch: [], prepares: [])
        let badCertificate = ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: [], prepared: [certificate])
        #expect(envelopeError(replicaEnvelope(.viewChange(badCertificate)).encoded()) == .unexpectedNestedType(field: "viewChange.P.prePrepare", expected: .prePrepare, found: .commit))

        let newView = NewView(view: ViewNumber(1), viewChanges: [], prePrepares: [g.envelope(.checkpoint)])
        #expect(envelopeError(replicaEnvelope(.newView(newView)).encoded()) == .unexpectedNestedType(field: "newView.O", expected: .prePrepare, found: .checkpoint))

        let frame = Frame(envelope: g.envelope(.prePrepare), batch: [g.envelope(.request), g.envelope(.commit)])
        #expect(frameError(frame.encoded()) == .unexpectedNestedType(field: "batch", expected: .request, found: .commit))
    }

    @Test func aBatchMayHoldReconfigurations() throws {
        var g = MessageGenerator(seed: 6)
        let frame = Frame(envelope: g.envelope(.prePrepare), batch: [g.envelope(.reconfiguration), g.envelope(.request)])
        #expect(try Frame.decode(frame.encoded()) == frame)
    }

    // MARK: - Values

    @Test(arguments: [(1, 1), (5, 5), (UInt32.max, UInt32.max), (1, 0), (0, 0)] as [(UInt32, UInt32)])
    func aStateChunkIndexMustBeBelowTheCount(_ index: UInt32, _ count: UInt32) {
        guard case .invalidValue(let field, _) = envelopeError(stateChunk(index, of: count)) else {
            Issue.record("chunk \(index) of \(count) accepted")
            return
        }
        #expect(field == "stateChunk.chunkIndex")
    }

    /// A control command names a replica (kind 1, u32 id) or a launcher's run (kind 2, 16 bytes);
    /// any other kind, or a target cut short, is rejected.
    @Test(arguments: [0, 3, 255] as [UInt8])
    func aControlTargetOfUnknownKindIsRejected(_ kind: UInt8) {
        var payload = WireBytes()
        payload.u64(1)
        payload.u8(kind)
        payload.u32(0)
        payload.u8(1)
        payload.u32(0)
        let bytes = WireBytes.envelope(type: 13, senderKind: 2, payload: payload.bytes)
        #expect(envelopeError(bytes) == .invalidValue(field: "control.target.kind", reason: "unknown target kind \(kind)"))
    }

    @Test func aControlCommandForALauncherCarriesSixteenBytesOfRunID() {
        func command(runBytes: Int) -> [UInt8] {
            var payload = WireBytes()
            payload.u64(1)
            payload.u8(2)
            payload.zeros(runBytes)
            payload.u8(4)
            payload.u32(0)
            return WireBytes.envelope(type: 13, senderKind: 2, payload: payload.bytes)
        }
        #expect(envelopeError(command(runBytes: 16)) == nil)
        #expect(envelopeError(command(runBytes: 4)) != nil, "a launcher's run id is not a replica id")
    }

    @Test(arguments: [3, 4, 255] as [UInt8])
    func aControlReplyOfUnknownOutcomeIsRejected(_ outcome: UInt8) {
        var payload = WireBytes()
        payload.u64(1)
        payload.u8(outcome)
        payload.u64(0)
        payload.u32(0)
        let bytes = WireBytes.envelope(type: 14, payload: payload.bytes)
        #expect(envelopeError(bytes) == .invalidValue(field: "controlReply.outcome", reason: "unknown outcome \(outcome)"))
        var known = payload.bytes
        known[8] = 2
        #expect(envelopeError(WireBytes.envelope(type: 14, payload: known)) == nil)
    }

    @Test func theLastStateChunkIsAccepted() {
        #expect(envelopeError(stateChunk(0, of: 1)) == nil)
        #expect(envelopeError(stateChunk(UInt32.max - 1, of: UInt32.max)) == nil)
    }

    @Test(arguments: [0, 5, 255] as [UInt8])
    func unknownReconfigurationKindIsRejected(_ kind: UInt8) {
        let bytes = WireBytes.envelope(type: 2, senderKind: 2, payload: reconfigurationPayload(kind: kind))
        #expect(envelopeError(bytes) == .unknownReconfigurationKind(kind))
    }

    @Test(arguments: [[], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x68, 0xE2, 0x82], Array("a b".utf8), [0x68, 0x00], Array("caf\u{e9}".utf8), Array("cafe\u{301}".utf8)] as [[UInt8]])
    func aHostMustBeANonEmptyASCIIName(_ host: [UInt8]) {
        guard case .invalidValue(let field, _) = envelopeError(addReplica(host: host, port: 7000)) else {
            Issue.record("host \(host) accepted")
            return
        }
        #expect(field == "reconfiguration.add.host")
    }

    @Test func portZeroIsRejected() {
        guard case .invalidValue(let field, _) = envelopeError(addReplica(host: Array("a".utf8), port: 0)) else {
            Issue.record("port 0 accepted")
            return
        }
        #expect(field == "reconfiguration.add.port")
        #expect(envelopeError(addReplica(host: Array("a".utf8), port: 1)) == nil)
        #expect(envelopeError(addReplica(host: Array("[::1]".utf8), port: 1)) == nil)
        #expect(envelopeError(addReplica(host: Array("replica-3.example_net".utf8), port: 1)) == nil)
    }

    // MARK: - Helpers

    /// A reply root over one reply (a made-up root and signature: the decoder checks shapes).
    private func replyFrame(_ reply: Reply, index: UInt32 = 0, leaves: UInt32 = 1, path: [Digest] = []) -> Frame {
        Frame(
            envelope: Envelope(sender: .replica(ReplicaID(0)), epoch: Epoch(0), message: .reply(ReplyRoot(root: .zero, leaves: leaves)), signature: .zero),
            reply: ProvenReply(reply: reply, index: index, path: path))
    }

    @Test func aReplyMustFitItsTree() {
        let reply = Reply(view: ViewNumber(1), timestamp: Timestamp(2), requester: .client(ClientID(3)), result: [1])
        let d = Digest(w0: 1, w1: 2, w2: 3, w3: 4)
        #expect(frameError(replyFrame(reply, index: 4, leaves: 5, path: [d]).encoded()) == nil)
        #expect(frameError(replyFrame(reply, index: 2, leaves: 5, path: [d, d, d]).encoded()) == nil)
        guard case .invalidValue(let field, _)? = frameError(replyFrame(reply, index: 5, leaves: 5, path: [d]).encoded()) else {
            Issue.record("an index outside the tree decoded")
            return
        }
        #expect(field == "reply.index")
        #expect(frameError(replyFrame(reply, index: 2, leaves: 5, path: [d, d, d, d]).encoded()) == .limitExceeded(field: "reply.path.count", value: 4, limit: 3))
        guard case .invalidValue("reply.path", _)? = frameError(replyFrame(reply, index: 2, leaves: 5, path: [d, d]).encoded()) else {
            Issue.record("a path too short for its place decoded")
            return
        }
        for leaves in [UInt32(0), UInt32(WireLimits.default.batchRequestsMax + 1)] {
            guard case .invalidValue("replyRoot.leaves", _)? = frameError(replyFrame(reply, index: 0, leaves: leaves).encoded()) else {
                Issue.record("a tree of \(leaves) replies decoded")
                continue
            }
        }
    }

    private func frameError(_ bytes: [UInt8]) -> WireError? {
        do {
            _ = try Frame.decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    private func envelopeError(_ bytes: [UInt8]) -> WireError? {
        do {
            _ = try Envelope.decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    private func isTruncated(_ error: WireError?) -> Bool {
        if case .truncated = error { true } else { false }
    }

    private func stateChunk(_ index: UInt32, of count: UInt32) -> [UInt8] {
        let chunk = StateChunk(sequence: SequenceNumber(1), stateDigest: .zero, chunkIndex: index, chunkCount: count, totalBytes: 0, bytes: [])
        return replicaEnvelope(.stateChunk(chunk)).encoded()
    }

    private func replicaEnvelope(_ message: Message) -> Envelope {
        Envelope(sender: .replica(ReplicaID(0)), epoch: Epoch(0), message: message, signature: .zero)
    }

    /// sequence (8) and digest (32).
    private func checkpointPayload() -> [UInt8] {
        var w = WireBytes()
        w.u64(10)
        w.zeros(32)
        return w.bytes
    }

    /// A timestamp, the kind byte, and a body that fits kinds 2 and 4.
    private func reconfigurationPayload(kind: UInt8) -> [UInt8] {
        var w = WireBytes()
        w.u64(1)
        w.u8(kind)
        w.u32(2)
        return w.bytes
    }

    private func addReplica(host: [UInt8], port: UInt16) -> [UInt8] {
        var w = WireBytes()
        w.u64(1)
        w.u8(1)
        w.u32(4)
        w.u32(UInt32(host.count))
        w.raw(host)
        w.u16(port)
        w.zeros(32)
        return WireBytes.envelope(type: 2, senderKind: 2, payload: w.bytes)
    }
}
