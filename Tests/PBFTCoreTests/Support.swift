import PBFTCore
import PBFTCrypto
import PBFTKeyValue
import PBFTSimulator
import PBFTWire

/// A hand-driven cluster for scripted tests: n replicas, a few clients, the simulator's
/// fast signatures, and helpers that sign any message as any principal.
struct Harness {
    let scheme = SimulatedScheme(seed: 99)
    let membership: Membership
    let configuration: Configuration
    var replicas: [Replica<KeyValueStore>]
    let authenticator: Authenticator<SimulatedVerifier, Membership>

    init(n: Int = 4, clients: Int = 3, checkpointInterval: Int = 4, logWindow: Int = 8, batchSizeMax: Int = 4, sequencesInFlightMax: Int = 8) throws {
        let descriptors = (0..<n).map { i in
            ReplicaDescriptor(id: ReplicaID(UInt32(i)), host: "h", port: UInt16(1000 + i), publicKey: Harness.publicKey(.replica(ReplicaID(UInt32(i)))))
        }
        let clientKeys = (0..<clients).map { j in
            Membership.ClientKey(id: ClientID(UInt32(j)), publicKey: Harness.publicKey(.client(ClientID(UInt32(j)))))
        }
        membership = try Membership(epoch: Epoch(0), f: (n - 1) / 3, replicas: descriptors, clients: clientKeys, operatorKey: Harness.publicKey(.operator))
        configuration = Configuration(
            membership: membership, checkpointInterval: checkpointInterval, logWindow: logWindow,
            batchSizeMax: batchSizeMax, sequencesInFlightMax: sequencesInFlightMax,
            viewChangeTimeoutTicks: 100, statusIntervalTicks: 10)
        authenticator = Authenticator(verifier: scheme.verifier, keys: membership)
        var replicas: [Replica<KeyValueStore>] = []
        for d in descriptors {
            replicas.append(try Replica(configuration: configuration, id: d.id, app: KeyValueStore(), signer: scheme.signer(for: .replica(d.id), publicKey: d.publicKey), digester: SHA256Digester()))
        }
        self.replicas = replicas
    }

    static func publicKey(_ principal: Principal) -> PublicKey {
        let tag: UInt8 = switch principal {
        case .replica(let id): UInt8(id.rawValue)
        case .client(let id): 100 + UInt8(id.rawValue)
        case .operator: 255
        }
        return PublicKey(bytes: [UInt8](repeating: tag, count: 31) + [tag ^ 0x5a])!
    }

    func signer(_ principal: Principal) -> SimulatedSigner {
        scheme.signer(for: principal, publicKey: Harness.publicKey(principal))
    }

    func seal(_ message: Message, as principal: Principal) -> Envelope {
        Envelope.seal(message, epoch: membership.epoch, signer: signer(principal))
    }

    /// Encodes, decodes and verifies, as a shell would: only authenticated frames go in.
    func authenticated(_ frame: Frame) throws -> Authenticated<Frame> {
        try authenticator.open(frame.encoded())
    }

    func request(client: UInt32, timestamp: UInt64, _ operation: KeyValueOperation = .put(key: [1], value: [2])) -> Envelope {
        seal(.request(Request(timestamp: Timestamp(timestamp), operation: operation.encoded())), as: .client(ClientID(client)))
    }

    func batchDigest(_ batch: [Envelope]) -> Digest { replicas[0].digest(ofBatch: batch) }

    func prePrepare(view: UInt64 = 0, sequence: UInt64, batch: [Envelope], from primary: UInt32 = 0, digest: Digest? = nil) -> Frame {
        let p = PrePrepare(view: ViewNumber(view), sequence: SequenceNumber(sequence), batchDigest: digest ?? batchDigest(batch))
        return Frame(envelope: seal(.prePrepare(p), as: .replica(ReplicaID(primary))), batch: batch)
    }

    func vote(_ kind: MessageType, view: UInt64 = 0, sequence: UInt64, digest: Digest, from replica: UInt32) -> Frame {
        let v = Vote(view: ViewNumber(view), sequence: SequenceNumber(sequence), batchDigest: digest)
        return Frame(envelope: seal(kind == .prepare ? .prepare(v) : .commit(v), as: .replica(ReplicaID(replica))))
    }

    @discardableResult
    mutating func deliver(_ frame: Frame, to replica: Int) throws -> [Action] {
        replicas[replica].step(.message(try authenticated(frame)))
    }

    /// Ticks `replica` `count` times while the other backups send it STATUS every status
    /// interval, as waiting backups do: it hears 2f peers, so its view-change timer may fire
    /// (a replica that hears nobody is cut off and postpones it). Returns every action.
    @discardableResult
    mutating func tick(_ replica: Int, _ count: Int) throws -> [Action] {
        let me = replicas[replica]
        let peers = (0..<replicas.count).filter { $0 != replica && ReplicaID(UInt32($0)) != me.primary }
        var actions: [Action] = []
        for _ in 0..<count {
            if replicas[replica].now % UInt64(configuration.statusIntervalTicks) == 0 {
                let status = Status(view: replicas[replica].view, stableSequence: replicas[replica].lowWaterMark, lastExecuted: replicas[replica].lastExecuted, viewChanging: false)
                for peer in peers {
                    actions += try deliver(Frame(envelope: seal(.status(status), as: .replica(ReplicaID(UInt32(peer))))), to: replica)
                }
            }
            actions += replicas[replica].step(.tick)
        }
        return actions
    }
}

extension Harness {
    /// STATUS from each of `peers` saying it suspects the primary of `view`, delivered to `replica`.
    mutating func suspicions(of view: UInt64, from peers: [UInt32], to replica: Int) throws -> [Action] {
        var actions: [Action] = []
        for peer in peers {
            let status = Status(view: ViewNumber(view), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0), suspecting: true)
            actions += try deliver(Frame(envelope: seal(.status(status), as: .replica(ReplicaID(peer)))), to: replica)
        }
        return actions
    }
}

extension Action {
    var broadcastMessage: Message? {
        if case .broadcast(let frame) = self { return frame.envelope.message }
        return nil
    }

    /// A STATUS that says its sender suspects the primary.
    var isSuspicion: Bool {
        if case .status(let s)? = broadcastMessage { s.suspecting } else { false }
    }

    /// A VIEW-CHANGE for `view`.
    func isViewChange(to view: UInt64) -> Bool {
        if case .viewChange(let v)? = broadcastMessage { v.newView == ViewNumber(view) } else { false }
    }
}
