import NIOCore
public import PBFTCluster
public import PBFTCore
import PBFTCrypto
public import PBFTWire
import Synchronization

/// Sends operator-signed control commands to replicas, or to a launcher, and collects the
/// signed replies. One client may send many commands, concurrently too (a launcher keeps one
/// for its lifetime); its socket is bound at the first and released by `close()`.
///
/// Epochs change under a long-lived client (a launcher's): `update` gives it the keys of
/// every epoch to verify replies with (a replica signs in the epoch it is in), where each
/// replica is, and the epoch to sign each replica's commands in (one that replica knows).
public final class ControlClient: @unchecked Sendable {
    let signer: any MessageSigner
    /// Where replicas are and which keys verify them; replaced by `update`.
    private let directory: Mutex<Directory>
    let endpoint = UDPEndpoint()
    /// The socket's binding (started once) and the last timestamp used (each command's is newer).
    private let state = Mutex<(binding: Task<Void, any Error>?, lastTimestamp: UInt64)>((nil, 0))
    // On the endpoint's loop: reassembly, and the replies of each exchange in progress by its timestamp.
    var reassembler = Reassembler()
    var replies: [UInt64: [Principal: ControlReply]] = [:]
    var ticks: UInt64 = 0

    /// A replica's address and the epoch its commands are signed in.
    public struct Target: Hashable, Sendable {
        public var host: String
        public var port: Int
        public var epoch: Epoch
        public init(host: String, port: Int, epoch: Epoch) {
            self.host = host
            self.port = port
            self.epoch = epoch
        }
    }

    struct Directory {
        var authenticator: Authenticator<Ed25519Verifier, EpochKeys>
        var targets: [ReplicaID: Target]
        /// Commands to a launcher are signed in this epoch (the operator's key is the same in all).
        var epoch: Epoch
    }

    public init(membership: Membership, operatorKey: KeyFile) throws {
        guard operatorKey.principal == .operator, operatorKey.key.publicKey == membership.operatorKey else {
            throw RuntimeError.configuration("the key file is not the operator key of this cluster file")
        }
        signer = operatorKey.signer
        var targets: [ReplicaID: Target] = [:]
        for r in membership.replicas { targets[r.id] = Target(host: r.host, port: Int(r.port), epoch: membership.epoch) }
        directory = Mutex(Directory(authenticator: Self.authenticator(EpochKeys(membership)), targets: targets, epoch: membership.epoch))
    }

    /// Replaces what the client knows: the memberships whose keys verify replies, and each
    /// replica's address and signing epoch. Safe while commands are in flight.
    public func update(keys: EpochKeys, targets: [ReplicaID: Target]) {
        let authenticator = Self.authenticator(keys)
        directory.withLock {
            $0.authenticator = authenticator
            $0.targets = targets
        }
    }

    static func authenticator(_ keys: EpochKeys) -> Authenticator<Ed25519Verifier, EpochKeys> {
        var limits = WireLimits.default
        limits.replicasMax = max(limits.replicasMax, keys.memberships.values.map(\.n).max() ?? 0)
        return Authenticator(verifier: Ed25519Verifier(), keys: keys, limits: limits)
    }

    /// Sends `command` to each of `replicas` and returns the replies that arrived within
    /// `timeoutMilliseconds` (a replica that is down simply has none).
    public func send(_ command: Control.Command, argument: [UInt8] = [], to replicas: [ReplicaID], timeoutMilliseconds: Int = 1_500) async throws -> [ReplicaID: ControlReply] {
        let known = directory.withLock { $0.targets }
        let targets = replicas.compactMap { known[$0] }
        let expected = Set(replicas.map { Principal.replica($0) })
        let result = try await exchange(Control(timestamp: nextTimestamp(), command: command, argument: argument), targets: targets, expected: expected, timeoutMilliseconds: timeoutMilliseconds)
        var byReplica: [ReplicaID: ControlReply] = [:]
        for (principal, reply) in result { if case .replica(let id) = principal { byReplica[id] = reply } }
        return byReplica
    }

    /// Sends a `launcher` command to the launcher at `host:port` and returns its reply,
    /// signed with the operator's key, or nil if none came in time.
    public func sendToLauncher(_ argument: [UInt8], host: String, port: Int, timeoutMilliseconds: Int = 5_000) async throws -> ControlReply? {
        let control = Control(timestamp: nextTimestamp(), command: .launcher, argument: argument)
        let epoch = directory.withLock { $0.epoch }
        return try await exchange(control, targets: [Target(host: host, port: port, epoch: epoch)], expected: [.operator], timeoutMilliseconds: timeoutMilliseconds)[.operator]
    }

    /// Releases the socket and its thread.
    public func close() async {
        let binding = state.withLock { $0.binding }
        _ = try? await binding?.value
        await endpoint.close()
    }

    /// The wall clock in microseconds, strictly newer than this client's last command.
    func nextTimestamp() -> Timestamp {
        let now = WallClock.microseconds() ?? 1
        return Timestamp(state.withLock { s in
            s.lastTimestamp = max(now, s.lastTimestamp + 1)
            return s.lastTimestamp
        })
    }

    func bound() async throws {
        let binding = state.withLock { s -> Task<Void, any Error> in
            if let binding = s.binding { return binding }
            let binding = Task { [self] in
                _ = try await endpoint.bind(host: "0.0.0.0", port: 0) { [self] bytes, address in received(bytes, from: address) }
            }
            s.binding = binding
            return binding
        }
        try await binding.value
    }

    func exchange(_ control: Control, targets: [Target], expected: Set<Principal>, timeoutMilliseconds: Int) async throws -> [Principal: ControlReply] {
        try await bound()
        let key = control.timestamp.rawValue
        // One signed envelope per epoch the targets are in: the same command, timestamp included.
        var signed: [Epoch: [[UInt8]]] = [:]
        for epoch in Set(targets.map(\.epoch)) {
            let envelope = Envelope.seal(.control(control), epoch: epoch, signer: signer)
            signed[epoch] = DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: key)
        }
        let datagrams = signed
        try await endpoint.eventLoop.submit { [self] in
            replies[key] = [:]
            for target in targets {
                endpoint.send(datagrams[target.epoch]!, to: try SocketAddress.makeAddressResolvingHost(target.host, port: target.port))
            }
        }.get()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(timeoutMilliseconds)))
        while ContinuousClock.now < deadline {
            let done = try await endpoint.eventLoop.submit { [self] in expected.isSubset(of: replies[key, default: [:]].keys) }.get()
            if done { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await endpoint.eventLoop.submit { [self] in
            (replies.removeValue(forKey: key) ?? [:]).filter { expected.contains($0.key) }
        }.get()
    }

    /// On the loop: a reply counts only for an exchange still waiting for its timestamp.
    func received(_ bytes: [UInt8], from address: SocketAddress) {
        for frameBytes in reassembler.receive(bytes, from: SenderKey(address.description), now: ticks).completed {
            guard let frame = try? directory.withLock({ $0.authenticator }).open(frameBytes),
                  case .controlReply(let reply) = frame.value.envelope.message,
                  replies[reply.timestamp.rawValue] != nil
            else { continue }
            replies[reply.timestamp.rawValue]?[frame.value.envelope.sender] = reply
        }
    }
}
