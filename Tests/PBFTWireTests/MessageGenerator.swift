import PBFTTestSupport
import PBFTCrypto
import PBFTWire

/// Builds random, valid instances of every message within `WireLimits.default`, replayable
/// from a seed. Envelopes whose sender has a key in `TestKeys` are sometimes really signed
/// (in `TestKeys.epoch`); the rest carry random signature bytes.
struct MessageGenerator {
    /// How large lists and byte fields usually get; nesting multiplies these, so the
    /// robustness corpus uses `.small` to keep each encoding short.
    struct Scale {
        var listTypical: Int
        var bytesTypical: Int
        /// Byte fields never exceed this, whatever their limit.
        var bytesCap: Int
        static let small = Scale(listTypical: 2, bytesTypical: 16, bytesCap: 256)
        static let roundTrip = Scale(listTypical: 4, bytesTypical: 96, bytesCap: .max)
    }

    var rng: SplitMix64
    let scale: Scale
    let limits = WireLimits.default

    init(seed: UInt64, scale: Scale = .roundTrip) {
        rng = SplitMix64(seed: seed)
        self.scale = scale
    }

    // MARK: - Frames and envelopes

    /// A frame carrying a message of `type`; a pre-prepare's frame carries a batch.
    mutating func frame(_ type: MessageType) -> Frame {
        let envelope = envelope(type)
        switch envelope.message {
        case .prePrepare: return Frame(envelope: envelope, batch: batch())
        case .reply(let root): return Frame(envelope: envelope, reply: provenReply(of: root))
        default: return Frame(envelope: envelope)
        }
    }

    /// A reply at a random place of a tree of `root.leaves`, with a path of the length that
    /// place needs (random hashes: it decodes, it does not prove).
    mutating func provenReply(of root: ReplyRoot) -> ProvenReply {
        let index = UInt32.random(in: 0..<root.leaves, using: &rng)
        let path = (0..<ReplyTree.pathLength(index: index, leaves: root.leaves)).map { _ in digest() }
        return ProvenReply(reply: reply(), index: index, path: path)
    }

    mutating func envelope(_ type: MessageType) -> Envelope {
        seal(message(type), by: sender(for: type))
    }

    /// A sender allowed to send `type`, often one that `TestKeys` holds a key for.
    mutating func sender(for type: MessageType) -> Principal {
        let known = rng.chance(1, in: 2)
        switch type {
        case .request: return .client(known ? TestKeys.clientIDs.randomElement(using: &rng)! : ClientID(rng.edgy32()))
        case .reconfiguration, .control: return .operator
        default: return .replica(known ? TestKeys.replicaIDs.randomElement(using: &rng)! : ReplicaID(rng.edgy32()))
        }
    }

    mutating func seal(_ message: Message, by sender: Principal) -> Envelope {
        if let key = TestKeys.signingKey(of: sender), rng.chance(1, in: 3) {
            return Envelope.seal(message, epoch: TestKeys.epoch, signer: Ed25519Signer(principal: sender, key: key))
        }
        return Envelope(sender: sender, epoch: Epoch(rng.edgy64()), message: message, signature: signature())
    }

    // MARK: - Messages

    mutating func message(_ type: MessageType) -> Message {
        switch type {
        case .request: .request(request())
        case .reconfiguration: .reconfiguration(reconfiguration())
        case .prePrepare: .prePrepare(PrePrepare(view: view(), sequence: sequence(), batchDigest: digest()))
        case .prepare: .prepare(vote())
        case .commit: .commit(vote())
        case .reply: .reply(ReplyRoot(root: digest(), leaves: UInt32.random(in: 1...UInt32(limits.batchRequestsMax), using: &rng)))
        case .checkpoint: .checkpoint(Checkpoint(sequence: sequence(), stateDigest: digest()))
        case .viewChange: .viewChange(viewChange())
        case .newView: .newView(newView())
        case .stateRequest: .stateRequest(StateRequest(sequence: sequence(), stateDigest: digest(), chunkIndex: rng.edgy32()))
        case .stateChunk: .stateChunk(stateChunk())
        case .status: .status(Status(view: view(), stableSequence: sequence(), lastExecuted: sequence(), viewChanging: Bool.random(using: &rng), passive: Bool.random(using: &rng)))
        case .control:
            .control(Control(
                timestamp: Timestamp(rng.edgy64()),
                target: rng.chance(1, in: 2) ? .replica(ReplicaID(rng.edgy32())) : .launcher(RunID(high: rng.edgy64(), low: rng.edgy64())),
                command: Control.Command.allCases.randomElement(using: &rng)!, argument: bytes(upTo: limits.controlBytesMax)))
        case .controlReply:
            .controlReply(ControlReply(
                timestamp: Timestamp(rng.edgy64()), outcome: ControlReply.Outcome.allCases.randomElement(using: &rng)!, epoch: Epoch(rng.edgy64()),
                body: bytes(upTo: limits.controlBytesMax)))
        case .epochAnnouncement:
            .epochAnnouncement(EpochAnnouncement(configuration: configurationRecord(), firstSequence: sequence()))
        }
    }

    mutating func configurationRecord() -> ConfigurationRecord {
        let replicas = list(upTo: min(8, limits.replicasMax)) { $0.descriptor() }
        let clients = list(upTo: 8) { generator in
            ClientKey(id: ClientID(generator.rng.edgy32()), publicKey: generator.publicKey())
        }
        return ConfigurationRecord(epoch: Epoch(rng.edgy64()), f: rng.edgy32(), replicas: replicas, clients: clients, operatorKey: publicKey())
    }

    mutating func request() -> Request {
        Request(timestamp: Timestamp(rng.edgy64()), operation: bytes(upTo: limits.operationBytesMax))
    }

    mutating func reconfiguration() -> Reconfiguration {
        let change: ReconfigurationChange =
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: .addReplica(descriptor())
            case 1: .removeReplica(ReplicaID(rng.edgy32()))
            case 2: .replaceReplica(old: ReplicaID(rng.edgy32()), new: descriptor())
            default: .setFaultTolerance(rng.edgy32())
            }
        return Reconfiguration(timestamp: Timestamp(rng.edgy64()), change: change)
    }

    mutating func vote() -> Vote { Vote(view: view(), sequence: sequence(), batchDigest: digest()) }

    mutating func reply() -> Reply {
        let requester: Principal = rng.chance(1, in: 4) ? .operator : .client(ClientID(rng.edgy32()))
        return Reply(
            view: view(), timestamp: Timestamp(rng.edgy64()), requester: requester,
            result: bytes(upTo: limits.resultBytesMax))
    }

    mutating func viewChange() -> ViewChange {
        let proof = list(upTo: limits.replicasMax) { $0.envelope(.checkpoint) }
        let prepared = list(upTo: limits.logWindowMax) { $0.certificate() }
        return ViewChange(newView: view(), stableSequence: sequence(), checkpointProof: proof, prepared: prepared)
    }

    mutating func certificate() -> PreparedCertificate {
        PreparedCertificate(
            prePrepare: envelope(.prePrepare),
            batch: batch(),
            prepares: list(upTo: limits.replicasMax) { $0.envelope(.prepare) })
    }

    mutating func newView() -> NewView {
        NewView(
            view: view(),
            viewChanges: list(upTo: limits.replicasMax, typical: 2) { $0.envelope(.viewChange) },
            prePrepares: list(upTo: limits.logWindowMax) { $0.envelope(.prePrepare) })
    }

    mutating func stateChunk() -> StateChunk {
        let count = max(1, rng.edgy32())
        return StateChunk(
            sequence: sequence(), stateDigest: digest(),
            chunkIndex: UInt32.random(in: 0..<count, using: &rng), chunkCount: count,
            totalBytes: UInt64.random(in: 0...limits.stateBytesMax, using: &rng),
            bytes: bytes(upTo: limits.stateChunkBytesMax))
    }

    /// Requests and reconfigurations, as a pre-prepare orders them.
    mutating func batch() -> [Envelope] {
        list(upTo: limits.batchRequestsMax) { $0.envelope($0.rng.chance(1, in: 5) ? .reconfiguration : .request) }
    }

    // MARK: - Fields

    mutating func view() -> ViewNumber { ViewNumber(rng.edgy64()) }
    mutating func sequence() -> SequenceNumber { SequenceNumber(rng.edgy64()) }
    mutating func digest() -> Digest { Digest(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
    mutating func signature() -> Signature { Signature(bytes: rng.bytes(Signature.byteCount))! }
    mutating func publicKey() -> PublicKey { PublicKey(bytes: rng.bytes(PublicKey.byteCount))! }

    mutating func descriptor() -> ReplicaDescriptor {
        ReplicaDescriptor(
            id: ReplicaID(rng.edgy32()), host: host(),
            port: UInt16.random(in: 1...UInt16.max, using: &rng),
            publicKey: PublicKey(bytes: rng.bytes(PublicKey.byteCount))!)
    }

    /// A non-empty host of at most `hostBytesMax` bytes from the characters a host may use.
    mutating func host() -> String {
        let target = max(1, rng.length(upTo: limits.hostBytesMax, typical: 24))
        var scalars = String.UnicodeScalarView()
        var used = 0
        while used < target {
            let scalar = randomScalar()
            let width = String(scalar).utf8.count
            if used + width > target { break }
            scalars.append(scalar)
            used += width
        }
        if scalars.isEmpty { scalars.append("h") }
        return String(scalars)
    }

    private mutating func randomScalar() -> Unicode.Scalar {
        let allowed = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]".unicodeScalars)
        return allowed.randomElement(using: &rng)!
    }

    mutating func bytes(upTo limit: Int) -> [UInt8] {
        rng.bytes(rng.length(upTo: min(limit, scale.bytesCap), typical: scale.bytesTypical))
    }

    mutating func list<T>(upTo limit: Int, typical: Int? = nil, _ element: (inout Self) -> T) -> [T] {
        // Lists at their limits are covered by their own test; random ones stay short
        // because nesting multiplies their sizes.
        let n = Int.random(in: 0...min(typical ?? scale.listTypical, limit), using: &rng)
        var out: [T] = []
        for _ in 0..<n { out.append(element(&self)) }
        return out
    }
}
