import PBFTWire
import Testing

/// docs/wire-format.md, "The order of checks": when an input breaks two rules, the one the
/// page lists first is reported. Each test breaks a rule together with one the page lists
/// later (issue 19: a decoder written from the page reported other errors than ours).
@Suite struct DecodeOrderTests {
    // MARK: - The envelope, front to back

    @Test func theInputsSizeComesBeforeItsFirstByte() {
        var limits = WireLimits.default
        limits.frameBytesMax = 40
        let bytes = WireBytes.envelope(version: 9, type: 7, payload: checkpoint())
        #expect(error(bytes, limits) == .limitExceeded(field: "frame", value: UInt64(bytes.count), limit: 40))
        #expect(envelopeError(bytes, limits) == .limitExceeded(field: "envelope", value: UInt64(bytes.count), limit: 40))
    }

    @Test func versionThenTypeThenSender() {
        #expect(error(WireBytes.envelope(version: 9, type: 99, senderKind: 7, payload: [])) == .unsupportedVersion(9))
        #expect(error(WireBytes.envelope(type: 99, senderKind: 7, payload: [])) == .unknownMessageType(99))
    }

    /// The kind and the id are both read before the kind is judged.
    @Test func theSendersIDIsReadBeforeItsKindIsJudged() {
        let cut = Array(WireBytes.envelope(type: 7, senderKind: 7, payload: []).prefix(5))
        #expect(error(cut) == .truncated(field: "sender.id", needed: 4, available: 2))
    }

    @Test func theSenderIsJudgedBeforeWhetherItMaySendTheType() {
        // Unknown kind, and an operator with id 1, on a type only replicas send.
        #expect(error(WireBytes.envelope(type: 7, senderKind: 3, payload: checkpoint())) == .unknownPrincipalKind(3))
        #expect(error(WireBytes.envelope(type: 7, senderKind: 2, senderID: 1, payload: checkpoint()))
            == .invalidValue(field: "sender.id", reason: "the operator's id must be 0, got 1"))
    }

    @Test func whetherTheSenderMaySendComesBeforeTheEpoch() {
        let cut = Array(WireBytes.envelope(type: 3, senderKind: 1, payload: []).prefix(8))
        #expect(error(cut) == .senderNotAllowed(type: .prePrepare, sender: .client(ClientID(0))))
    }

    @Test func aPayloadLengthIsJudgedByItsLimitBeforeTheBytesLeft() {
        var limits = WireLimits.default
        limits.frameBytesMax = 200
        let bytes = WireBytes.envelope(type: 7, payloadLength: 201, payload: checkpoint())
        #expect(error(bytes, limits) == .limitExceeded(field: "payload", value: 201, limit: 200))
        let beyond = WireBytes.envelope(type: 7, payloadLength: 199, payload: checkpoint())
        #expect(error(beyond, limits) == .truncated(field: "payload", needed: 199, available: beyond.count - 19))
    }

    /// The payload is decoded in its window before the signature is read.
    @Test func aPayloadErrorComesBeforeAMissingSignature() {
        var status = WireBytes()
        status.zeros(24)
        status.u8(9)
        #expect(error(Array(WireBytes.envelope(type: 12, payload: status.bytes).dropLast(64)))
            == .invalidValue(field: "status.flags", reason: "9 sets a bit other than 0 (view changing), 1 (passive) and 2 (suspecting)"))
        #expect(error(Array(WireBytes.envelope(type: 7, payload: checkpoint() + [0, 0]).dropLast(64))) == .trailingBytes(count: 2))
        #expect(error(Array(WireBytes.envelope(type: 7, payload: checkpoint()).dropLast(1)))
            == .truncated(field: "signature", needed: 64, available: 63))
    }

    // MARK: - Inside a payload

    @Test func aLengthIsJudgedByItsLimitBeforeTheBytesLeft() {
        var request = WireBytes()
        request.u64(1)
        request.u32(UInt32(WireLimits.default.operationBytesMax + 1))
        #expect(error(WireBytes.envelope(type: 1, senderKind: 1, payload: request.bytes))
            == .limitExceeded(field: "request.operation", value: UInt64(WireLimits.default.operationBytesMax + 1), limit: UInt64(WireLimits.default.operationBytesMax)))
    }

    @Test func aValueIsJudgedAsSoonAsItIsRead() {
        // A chunk index not below its count, then a total above its limit: the index is reported.
        var chunk = WireBytes()
        chunk.u64(1)
        chunk.zeros(32)
        chunk.u32(2)
        chunk.u32(2)
        chunk.u64(.max)
        #expect(error(WireBytes.envelope(type: 11, payload: chunk.bytes)) == .invalidValue(field: "stateChunk.chunkIndex", reason: "chunk 2 of 2"))
        // An unknown reconfiguration kind, then nothing: the kind is reported.
        var reconfiguration = WireBytes()
        reconfiguration.u64(1)
        reconfiguration.u8(9)
        #expect(error(WireBytes.envelope(type: 2, senderKind: 2, payload: reconfiguration.bytes)) == .unknownReconfigurationKind(9))
    }

    @Test func aDigestIsReadInEightByteWords() {
        var checkpoint = WireBytes()
        checkpoint.u64(1)
        checkpoint.zeros(13)
        #expect(error(WireBytes.envelope(type: 7, payload: checkpoint.bytes)) == .truncated(field: "checkpoint.digest", needed: 8, available: 5))
    }

    // MARK: - Nested envelopes

    /// A nested envelope is decoded whole before its type is compared with its place, and
    /// its errors name its own fields.
    @Test func aNestedEnvelopeIsDecodedBeforeItsTypeIsJudged() {
        let prepare = WireBytes.envelope(type: 4, payload: [UInt8](repeating: 0, count: 48))
        #expect(error(viewChange(proof: prepare)) == .unexpectedNestedType(field: "viewChange.C", expected: .checkpoint, found: .prepare))
        var broken = prepare
        broken[0] = 9
        #expect(error(viewChange(proof: broken)) == .unsupportedVersion(9))
        let short = WireBytes.envelope(type: 7, payload: Array(checkpoint().prefix(20)))
        #expect(error(viewChange(proof: short)) == .truncated(field: "checkpoint.digest", needed: 8, available: 4))
    }

    // MARK: - The frame's tail

    @Test func aReplyIndexIsJudgedBeforeItsPath() {
        var root = WireBytes()
        root.zeros(32)
        root.u32(2)
        var tail = WireBytes()
        tail.u64(0)
        tail.u64(1)
        tail.u8(1)
        tail.u32(1)
        tail.u32(0)
        tail.u32(2)
        #expect(error(WireBytes.envelope(type: 6, payload: root.bytes) + tail.bytes) == .invalidValue(field: "reply.index", reason: "reply 2 of a tree of 2"))
    }

    @Test func theFrameIsWholeBeforeTrailingBytesAreCounted() {
        let prePrepare = WireBytes.envelope(type: 3, payload: [UInt8](repeating: 0, count: 48))
        #expect(error(prePrepare) == .truncated(field: "batch.count", needed: 2, available: 0))
        #expect(error(prePrepare + [0, 0, 7]) == .trailingBytes(count: 1))
    }

    // MARK: - Helpers

    func checkpoint() -> [UInt8] {
        var w = WireBytes()
        w.u64(10)
        w.zeros(32)
        return w.bytes
    }

    /// A view-change whose checkpoint proof holds `proof` (whatever it is), and no certificates.
    func viewChange(proof: [UInt8]) -> [UInt8] {
        var payload = WireBytes()
        payload.u64(1)
        payload.u64(0)
        payload.u16(1)
        payload.u32(UInt32(proof.count))
        payload.raw(proof)
        payload.u16(0)
        return WireBytes.envelope(type: 8, payload: payload.bytes)
    }

    func error(_ bytes: [UInt8], _ limits: WireLimits = .default) -> WireError? {
        do {
            _ = try Frame.decode(bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    func envelopeError(_ bytes: [UInt8], _ limits: WireLimits = .default) -> WireError? {
        do {
            _ = try Envelope.decode(bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }
}
