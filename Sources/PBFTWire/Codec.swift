// The binary encoding; docs/wire-format.md is its specification. Every integer is
// big-endian and fixed-width; every variable length is prefixed and bounded by a
// `WireLimits` field; the encoding is canonical (decoding then encoding gives back the
// same bytes), so a signature can be checked on re-encoded nested envelopes.

/// The only version this code speaks.
public let wireVersion: UInt8 = 3

/// Bytes before the payload: version, type, sender kind, sender id, epoch, payload length.
public let envelopeHeaderBytes = 1 + 1 + 1 + 4 + 8 + 4

extension Envelope {
    /// The exact bytes the sender signs: version, type, sender, epoch, payload length, payload.
    public static func signedBytes(sender: Principal, epoch: Epoch, message: Message) -> [UInt8] {
        var payload = ByteWriter()
        payload.message(message)
        var writer = ByteWriter(capacity: envelopeHeaderBytes + payload.bytes.count + Signature.byteCount)
        writer.u8(wireVersion)
        writer.u8(message.type.rawValue)
        writer.principal(sender)
        writer.u64(epoch.rawValue)
        writer.lengthPrefixed(payload.bytes)
        return writer.bytes
    }

    /// The bytes this envelope's signature covers (kept from decoding or sealing when they
    /// were, else encoded now).
    public var signedBytes: [UInt8] { signed ?? Self.signedBytes(sender: sender, epoch: epoch, message: message) }

    /// The whole envelope: the signed bytes followed by the signature.
    public func encoded() -> [UInt8] {
        var bytes = signedBytes
        bytes.append(contentsOf: signature.bytes)
        return bytes
    }

    /// Signs `message` as `signer` and returns the envelope.
    public static func seal(_ message: Message, epoch: Epoch, signer: some MessageSigner) -> Envelope {
        let bytes = signedBytes(sender: signer.principal, epoch: epoch, message: message)
        return Envelope(sender: signer.principal, epoch: epoch, message: message, signature: signer.sign(bytes), signed: bytes)
    }

    /// Decodes one envelope that fills `bytes` exactly.
    public static func decode(_ bytes: [UInt8], limits: WireLimits = .default) throws(WireError) -> Envelope {
        guard bytes.count <= limits.frameBytesMax else {
            throw .limitExceeded(field: "envelope", value: UInt64(bytes.count), limit: UInt64(limits.frameBytesMax))
        }
        var reader = ByteReader(bytes)
        let envelope = try reader.envelope(limits)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return envelope
    }
}

extension Frame {
    /// The frame as sent: the envelope, then (pre-prepare only) the batch or (reply root
    /// only) the proven reply.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.raw(envelope.encoded())
        switch envelope.message {
        case .prePrepare:
            writer.count(batch.count)
            for request in batch { writer.lengthPrefixed(request.encoded()) }
        case .reply:
            guard let reply else { preconditionFailure("a reply root's frame carries its reply") }
            writer.reply(reply.reply)
            writer.u32(reply.index)
            writer.count(reply.path.count)
            for digest in reply.path { writer.digest(digest) }
        default:
            break
        }
        precondition(batch.isEmpty || envelope.message.type == .prePrepare, "only a pre-prepare frame carries a batch")
        precondition(reply == nil || envelope.message.type == .reply, "only a reply root's frame carries a reply")
        return writer.bytes
    }

    /// Decodes a frame that fills `bytes` exactly; never traps.
    public static func decode(_ bytes: [UInt8], limits: WireLimits = .default) throws(WireError) -> Frame {
        guard bytes.count <= limits.frameBytesMax else {
            throw .limitExceeded(field: "frame", value: UInt64(bytes.count), limit: UInt64(limits.frameBytesMax))
        }
        var reader = ByteReader(bytes)
        let envelope = try reader.envelope(limits)
        var batch: [Envelope] = []
        var reply: ProvenReply?
        switch envelope.message {
        case .prePrepare: batch = try reader.batch("batch", limits)
        case .reply(let root): reply = try reader.provenReply(of: root, limits)
        default: break
        }
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return Frame(envelope: envelope, batch: batch, reply: reply)
    }
}

// MARK: - Encoding

extension ByteWriter {
    mutating func principal(_ p: Principal) {
        switch p {
        case .replica(let id): u8(0); u32(id.rawValue)
        case .client(let id): u8(1); u32(id.rawValue)
        case .operator: u8(2); u32(0)
        }
    }

    mutating func nested(_ envelope: Envelope) { lengthPrefixed(envelope.encoded()) }

    mutating func nestedList(_ envelopes: [Envelope]) {
        count(envelopes.count)
        for envelope in envelopes { nested(envelope) }
    }

    mutating func descriptor(_ d: ReplicaDescriptor) {
        u32(d.id.rawValue)
        lengthPrefixed(Array(d.host.utf8))
        u16(d.port)
        publicKey(d.publicKey)
    }

    mutating func reply(_ r: Reply) {
        u64(r.view.rawValue)
        u64(r.timestamp.rawValue)
        principal(r.requester)
        lengthPrefixed(r.result)
    }

    mutating func message(_ message: Message) {
        switch message {
        case .request(let r):
            u64(r.timestamp.rawValue)
            lengthPrefixed(r.operation)
        case .reconfiguration(let r):
            u64(r.timestamp.rawValue)
            switch r.change {
            case .addReplica(let d): u8(1); descriptor(d)
            case .removeReplica(let id): u8(2); u32(id.rawValue)
            case .replaceReplica(let old, let new): u8(3); u32(old.rawValue); descriptor(new)
            case .setFaultTolerance(let f): u8(4); u32(f)
            }
        case .prePrepare(let p):
            u64(p.view.rawValue); u64(p.sequence.rawValue); digest(p.batchDigest)
        case .prepare(let v), .commit(let v):
            u64(v.view.rawValue); u64(v.sequence.rawValue); digest(v.batchDigest)
        case .reply(let r):
            digest(r.root)
            u32(r.leaves)
        case .checkpoint(let c):
            u64(c.sequence.rawValue); digest(c.stateDigest)
        case .viewChange(let v):
            u64(v.newView.rawValue)
            u64(v.stableSequence.rawValue)
            nestedList(v.checkpointProof)
            count(v.prepared.count)
            for certificate in v.prepared {
                nested(certificate.prePrepare)
                nestedList(certificate.batch)
                nestedList(certificate.prepares)
            }
        case .newView(let n):
            u64(n.view.rawValue)
            nestedList(n.viewChanges)
            nestedList(n.prePrepares)
        case .stateRequest(let s):
            u64(s.sequence.rawValue); digest(s.stateDigest); u32(s.chunkIndex)
        case .stateChunk(let s):
            u64(s.sequence.rawValue)
            digest(s.stateDigest)
            u32(s.chunkIndex)
            u32(s.chunkCount)
            u64(s.totalBytes)
            lengthPrefixed(s.bytes)
        case .status(let s):
            u64(s.view.rawValue); u64(s.stableSequence.rawValue); u64(s.lastExecuted.rawValue); u8((s.viewChanging ? 1 : 0) | (s.passive ? 2 : 0) | (s.suspecting ? 4 : 0))
        case .control(let c):
            u64(c.timestamp.rawValue)
            u8(c.target.kind)
            switch c.target {
            case .replica(let id): u32(id.rawValue)
            case .launcher(let run): u64(run.high); u64(run.low)
            }
            u8(c.command.rawValue)
            lengthPrefixed(c.argument)
        case .controlReply(let r):
            u64(r.timestamp.rawValue); u8(r.outcome.rawValue); u64(r.epoch.rawValue); lengthPrefixed(r.body)
        case .epochAnnouncement(let a):
            configuration(a.configuration)
            u64(a.firstSequence.rawValue)
        }
    }

    mutating func configuration(_ c: ConfigurationRecord) {
        u64(c.epoch.rawValue)
        u32(c.f)
        count(c.replicas.count)
        for replica in c.replicas { descriptor(replica) }
        count(c.clients.count)
        for client in c.clients { u32(client.id.rawValue); publicKey(client.publicKey) }
        publicKey(c.operatorKey)
    }
}

extension ConfigurationRecord {
    /// The canonical encoding (checkpointed state includes it, so its digest covers it).
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.configuration(self)
        return writer.bytes
    }

    /// Decodes a record at `offset` in `bytes`, advancing the offset; never traps.
    public static func decode(_ bytes: [UInt8], offset: inout Int, limits: WireLimits = .default) throws(WireError) -> ConfigurationRecord {
        var reader = ByteReader(bytes, from: offset, to: bytes.count)
        let record = try reader.configuration("configuration", limits)
        offset = bytes.count - reader.remaining
        return record
    }
}

// MARK: - Decoding

extension ByteReader {
    mutating func principal(_ field: String) throws(WireError) -> Principal {
        let kind = try u8(field + ".kind")
        let id = try u32(field + ".id")
        switch kind {
        case 0: return .replica(ReplicaID(id))
        case 1: return .client(ClientID(id))
        case 2:
            guard id == 0 else { throw .invalidValue(field: field + ".id", reason: "the operator's id must be 0, got \(id)") }
            return .operator
        default: throw .unknownPrincipalKind(kind)
        }
    }

    /// One envelope: header, payload (decoded in a window that must be consumed exactly),
    /// signature.
    mutating func envelope(_ limits: WireLimits) throws(WireError) -> Envelope {
        let start = position
        let version = try u8("version")
        guard version == wireVersion else { throw .unsupportedVersion(version) }
        let typeByte = try u8("type")
        guard let type = MessageType(rawValue: typeByte) else { throw .unknownMessageType(typeByte) }
        let sender = try principal("sender")
        guard type.accepts(sender) else { throw .senderNotAllowed(type: type, sender: sender) }
        let epoch = Epoch(try u64("epoch"))
        let payloadLength = Int(try u32("payload.length"))
        guard payloadLength <= limits.frameBytesMax else {
            throw .limitExceeded(field: "payload", value: UInt64(payloadLength), limit: UInt64(limits.frameBytesMax))
        }
        guard payloadLength <= remaining else {
            throw .truncated(field: "payload", needed: payloadLength, available: remaining)
        }
        var payload = ByteReader(bytes, from: position, to: position + payloadLength)
        let message = try payload.message(type, limits)
        guard payload.remaining == 0 else { throw .trailingBytes(count: payload.remaining) }
        _ = try raw(payloadLength, "payload")
        let signed = Array(bytes[start..<position])
        let signature = try signature("signature")
        return Envelope(sender: sender, epoch: epoch, message: message, signature: signature, signed: signed)
    }

    /// A length-prefixed envelope nested in another message; its type must be one of `expected`.
    mutating func nested(_ field: String, _ expected: [MessageType], _ limits: WireLimits) throws(WireError) -> Envelope {
        let length = Int(try u32(field + ".length"))
        guard length <= remaining else { throw .truncated(field: field, needed: length, available: remaining) }
        var inner = ByteReader(bytes, from: position, to: position + length)
        let envelope = try inner.envelope(limits)
        guard inner.remaining == 0 else { throw .trailingBytes(count: inner.remaining) }
        _ = try raw(length, field)
        guard expected.contains(envelope.message.type) else {
            throw .unexpectedNestedType(field: field, expected: expected[0], found: envelope.message.type)
        }
        return envelope
    }

    mutating func nestedList(_ field: String, _ expected: [MessageType], limit: Int, _ limits: WireLimits) throws(WireError) -> [Envelope] {
        let n = try count(field, limit: limit)
        var list: [Envelope] = []
        list.reserveCapacity(min(n, remaining / (envelopeHeaderBytes + Signature.byteCount) + 1))
        for _ in 0..<n { list.append(try nested(field, expected, limits)) }
        return list
    }

    /// A reply root's frame tail: the reply, its index, and a path exactly as long as its
    /// place in a tree of `root.leaves` replies needs.
    mutating func provenReply(of root: ReplyRoot, _ limits: WireLimits) throws(WireError) -> ProvenReply {
        let reply = try reply(limits)
        let index = try u32("reply.index")
        guard index < root.leaves else {
            throw .invalidValue(field: "reply.index", reason: "reply \(index) of a tree of \(root.leaves)")
        }
        let needed = ReplyTree.pathLength(index: index, leaves: root.leaves)
        let length = try count("reply.path", limit: needed)
        guard length == needed else {
            throw .invalidValue(field: "reply.path", reason: "\(length) hashes where reply \(index) of \(root.leaves) needs \(needed)")
        }
        var path: [Digest] = []
        path.reserveCapacity(length)
        for _ in 0..<length { path.append(try digest("reply.path")) }
        return ProvenReply(reply: reply, index: index, path: path)
    }

    mutating func reply(_ limits: WireLimits) throws(WireError) -> Reply {
        let view = ViewNumber(try u64("reply.view"))
        let timestamp = Timestamp(try u64("reply.timestamp"))
        let requester = try principal("reply.requester")
        if case .replica = requester {
            throw .invalidValue(field: "reply.requester", reason: "a reply answers a client or the operator, not a replica")
        }
        let result = try lengthPrefixed("reply.result", limit: limits.resultBytesMax)
        return Reply(view: view, timestamp: timestamp, requester: requester, result: result)
    }

    mutating func batch(_ field: String, _ limits: WireLimits) throws(WireError) -> [Envelope] {
        try nestedList(field, [.request, .reconfiguration], limit: limits.batchRequestsMax, limits)
    }

    mutating func descriptor(_ field: String, _ limits: WireLimits) throws(WireError) -> ReplicaDescriptor {
        let id = ReplicaID(try u32(field + ".id"))
        let hostBytes = try lengthPrefixed(field + ".host", limit: limits.hostBytesMax)
        guard let host = String(validating: hostBytes, as: UTF8.self), ReplicaDescriptor.isValidHost(host, limit: limits.hostBytesMax) else {
            throw .invalidValue(field: field + ".host", reason: "not a host name or address (ASCII letters, digits, . - _ : [ ])")
        }
        let port = try u16(field + ".port")
        guard port != 0 else { throw .invalidValue(field: field + ".port", reason: "port 0") }
        return ReplicaDescriptor(id: id, host: host, port: port, publicKey: try publicKey(field + ".publicKey"))
    }

    mutating func message(_ type: MessageType, _ limits: WireLimits) throws(WireError) -> Message {
        switch type {
        case .request:
            let timestamp = Timestamp(try u64("request.timestamp"))
            let operation = try lengthPrefixed("request.operation", limit: limits.operationBytesMax)
            return .request(Request(timestamp: timestamp, operation: operation))
        case .reconfiguration:
            let timestamp = Timestamp(try u64("reconfiguration.timestamp"))
            let kind = try u8("reconfiguration.kind")
            let change: ReconfigurationChange
            switch kind {
            case 1: change = .addReplica(try descriptor("reconfiguration.add", limits))
            case 2: change = .removeReplica(ReplicaID(try u32("reconfiguration.remove")))
            case 3:
                let old = ReplicaID(try u32("reconfiguration.replace.old"))
                change = .replaceReplica(old: old, new: try descriptor("reconfiguration.replace.new", limits))
            case 4: change = .setFaultTolerance(try u32("reconfiguration.f"))
            default: throw .unknownReconfigurationKind(kind)
            }
            return .reconfiguration(Reconfiguration(timestamp: timestamp, change: change))
        case .prePrepare:
            return .prePrepare(PrePrepare(
                view: ViewNumber(try u64("prePrepare.view")),
                sequence: SequenceNumber(try u64("prePrepare.sequence")),
                batchDigest: try digest("prePrepare.digest")))
        case .prepare, .commit:
            let vote = Vote(
                view: ViewNumber(try u64("vote.view")),
                sequence: SequenceNumber(try u64("vote.sequence")),
                batchDigest: try digest("vote.digest"))
            return type == .prepare ? .prepare(vote) : .commit(vote)
        case .reply:
            let root = try digest("replyRoot.root")
            let leaves = try u32("replyRoot.leaves")
            guard leaves >= 1, leaves <= limits.batchRequestsMax else {
                throw .invalidValue(field: "replyRoot.leaves", reason: "\(leaves) replies: a batch has 1 to \(limits.batchRequestsMax)")
            }
            return .reply(ReplyRoot(root: root, leaves: leaves))
        case .checkpoint:
            return .checkpoint(Checkpoint(
                sequence: SequenceNumber(try u64("checkpoint.sequence")),
                stateDigest: try digest("checkpoint.digest")))
        case .viewChange:
            let newView = ViewNumber(try u64("viewChange.newView"))
            let stable = SequenceNumber(try u64("viewChange.stableSequence"))
            let proof = try nestedList("viewChange.C", [.checkpoint], limit: limits.replicasMax, limits)
            let n = try count("viewChange.P", limit: limits.logWindowMax)
            var prepared: [PreparedCertificate] = []
            prepared.reserveCapacity(min(n, remaining / 64 + 1))
            for _ in 0..<n {
                let prePrepare = try nested("viewChange.P.prePrepare", [.prePrepare], limits)
                let batch = try batch("viewChange.P.batch", limits)
                let prepares = try nestedList("viewChange.P.prepares", [.prepare], limit: limits.replicasMax, limits)
                prepared.append(PreparedCertificate(prePrepare: prePrepare, batch: batch, prepares: prepares))
            }
            return .viewChange(ViewChange(newView: newView, stableSequence: stable, checkpointProof: proof, prepared: prepared))
        case .newView:
            let view = ViewNumber(try u64("newView.view"))
            let v = try nestedList("newView.V", [.viewChange], limit: limits.replicasMax, limits)
            let o = try nestedList("newView.O", [.prePrepare], limit: limits.logWindowMax, limits)
            return .newView(NewView(view: view, viewChanges: v, prePrepares: o))
        case .stateRequest:
            return .stateRequest(StateRequest(
                sequence: SequenceNumber(try u64("stateRequest.sequence")),
                stateDigest: try digest("stateRequest.digest"),
                chunkIndex: try u32("stateRequest.chunkIndex")))
        case .stateChunk:
            let sequence = SequenceNumber(try u64("stateChunk.sequence"))
            let digest = try digest("stateChunk.digest")
            let index = try u32("stateChunk.chunkIndex")
            let count = try u32("stateChunk.chunkCount")
            guard index < count else {
                throw .invalidValue(field: "stateChunk.chunkIndex", reason: "chunk \(index) of \(count)")
            }
            let total = try u64("stateChunk.totalBytes")
            guard total <= limits.stateBytesMax else {
                throw .limitExceeded(field: "stateChunk.totalBytes", value: total, limit: limits.stateBytesMax)
            }
            let bytes = try lengthPrefixed("stateChunk.bytes", limit: limits.stateChunkBytesMax)
            return .stateChunk(StateChunk(
                sequence: sequence, stateDigest: digest, chunkIndex: index,
                chunkCount: count, totalBytes: total, bytes: bytes))
        case .status:
            let view = ViewNumber(try u64("status.view"))
            let stable = SequenceNumber(try u64("status.stableSequence"))
            let executed = SequenceNumber(try u64("status.lastExecuted"))
            let flags = try u8("status.flags")
            guard flags <= 7 else {
                throw .invalidValue(field: "status.flags", reason: "\(flags) sets a bit other than 0 (view changing), 1 (passive) and 2 (suspecting)")
            }
            return .status(Status(
                view: view, stableSequence: stable, lastExecuted: executed,
                viewChanging: flags & 1 != 0, passive: flags & 2 != 0, suspecting: flags & 4 != 0))
        case .control:
            let timestamp = Timestamp(try u64("control.timestamp"))
            let kind = try u8("control.target.kind")
            let target: Control.Target
            switch kind {
            case 1: target = .replica(ReplicaID(try u32("control.target.replica")))
            case 2: target = .launcher(RunID(high: try u64("control.target.run"), low: try u64("control.target.run")))
            default: throw .invalidValue(field: "control.target.kind", reason: "unknown target kind \(kind)")
            }
            let byte = try u8("control.command")
            guard let command = Control.Command(rawValue: byte) else { throw .invalidValue(field: "control.command", reason: "unknown command \(byte)") }
            let argument = try lengthPrefixed("control.argument", limit: limits.controlBytesMax)
            return .control(Control(timestamp: timestamp, target: target, command: command, argument: argument))
        case .controlReply:
            let timestamp = Timestamp(try u64("controlReply.timestamp"))
            let byte = try u8("controlReply.outcome")
            guard let outcome = ControlReply.Outcome(rawValue: byte) else { throw .invalidValue(field: "controlReply.outcome", reason: "unknown outcome \(byte)") }
            let epoch = Epoch(try u64("controlReply.epoch"))
            let body = try lengthPrefixed("controlReply.body", limit: limits.controlBytesMax)
            return .controlReply(ControlReply(timestamp: timestamp, outcome: outcome, epoch: epoch, body: body))
        case .epochAnnouncement:
            let configuration = try configuration("epochAnnouncement.configuration", limits)
            return .epochAnnouncement(EpochAnnouncement(configuration: configuration, firstSequence: SequenceNumber(try u64("epochAnnouncement.firstSequence"))))
        }
    }

    mutating func configuration(_ field: String, _ limits: WireLimits) throws(WireError) -> ConfigurationRecord {
        let epoch = Epoch(try u64(field + ".epoch"))
        let f = try u32(field + ".f")
        let replicaCount = try count(field + ".replicas", limit: limits.replicasMax)
        var replicas: [ReplicaDescriptor] = []
        for _ in 0..<replicaCount { replicas.append(try descriptor(field + ".replicas", limits)) }
        let clientCount = try count(field + ".clients", limit: limits.clientsMax)
        var clients: [ClientKey] = []
        clients.reserveCapacity(min(clientCount, remaining / 36 + 1))
        for _ in 0..<clientCount {
            let id = ClientID(try u32(field + ".clients.id"))
            clients.append(ClientKey(id: id, publicKey: try publicKey(field + ".clients.publicKey")))
        }
        let operatorKey = try publicKey(field + ".operatorKey")
        return ConfigurationRecord(epoch: epoch, f: f, replicas: replicas, clients: clients, operatorKey: operatorKey)
    }
}

// MARK: - Kept bytes

extension Envelope {
    /// The same envelope with no bytes kept from decoding or sealing, nested envelopes
    /// included: encoding it encodes every field afresh. The tests compare that with the input
    /// to check that the decoder accepts only canonical bytes (which is what makes the kept
    /// bytes equal to a fresh encoding).
    public var withoutKeptBytes: Envelope {
        var message = message
        switch message {
        case .viewChange(var v):
            v.checkpointProof = v.checkpointProof.map(\.withoutKeptBytes)
            v.prepared = v.prepared.map { c in
                PreparedCertificate(prePrepare: c.prePrepare.withoutKeptBytes, batch: c.batch.map(\.withoutKeptBytes), prepares: c.prepares.map(\.withoutKeptBytes))
            }
            message = .viewChange(v)
        case .newView(var n):
            n.viewChanges = n.viewChanges.map(\.withoutKeptBytes)
            n.prePrepares = n.prePrepares.map(\.withoutKeptBytes)
            message = .newView(n)
        default:
            break
        }
        return Envelope(sender: sender, epoch: epoch, message: message, signature: signature)
    }
}

extension Frame {
    /// The same frame with no kept bytes anywhere in it (`Envelope.withoutKeptBytes`).
    public var withoutKeptBytes: Frame {
        Frame(envelope: envelope.withoutKeptBytes, batch: batch.map(\.withoutKeptBytes), reply: reply)
    }
}
