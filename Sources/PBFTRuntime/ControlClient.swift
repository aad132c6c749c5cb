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
/// Each command is bound to its target (a replica id, or a launcher's run) and signed in the
/// epoch this client believes the target is in; a target in another epoch refuses it once
/// with its epoch, and the client sends it again in that epoch (docs/runtime.md, *Control
/// security*). Epochs change under a long-lived client (a launcher's): `update` gives it the
/// keys of every epoch and where each replica is and in which epoch.
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
        var authenticator: Authenticator<Ed25519Verifier, ReplyKeys>
        var targets: [ReplicaID: Target]
    }

    public init(membership: Membership, operatorKey: KeyFile) throws {
        guard operatorKey.principal == .operator, operatorKey.key.publicKey == membership.operatorKey else {
            throw RuntimeError.configuration("the key file is not the operator key of this cluster file")
        }
        signer = operatorKey.signer
        var targets: [ReplicaID: Target] = [:]
        for r in membership.replicas { targets[r.id] = Target(host: r.host, port: Int(r.port), epoch: membership.epoch) }
        directory = Mutex(Directory(authenticator: Self.authenticator(EpochKeys(membership)), targets: targets))
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

    static func authenticator(_ keys: EpochKeys) -> Authenticator<Ed25519Verifier, ReplyKeys> {
        var limits = WireLimits.default
        limits.replicasMax = max(limits.replicasMax, keys.memberships.values.map(\.n).max() ?? 0)
        return Authenticator(verifier: Ed25519Verifier(), keys: ReplyKeys(keys), limits: limits)
    }

    /// Sends `command` to each of `replicas` (each gets its own, bound to it and signed in the
    /// epoch this client knows it in) and returns the replies that arrived within
    /// `timeoutMilliseconds` (a replica that is down simply has none). A replica that answers
    /// that it is in another epoch is asked once more, in that epoch, with a new timestamp;
    /// the client remembers its epoch for the next commands.
    public func send(_ command: Control.Command, argument: [UInt8] = [], to replicas: [ReplicaID], timeoutMilliseconds: Int = 1_500) async throws -> [ReplicaID: ControlReply] {
        var byReplica = try await sendOnce(command, argument: argument, to: replicas, timeoutMilliseconds: timeoutMilliseconds)
        let moved = byReplica.filter { $0.value.outcome == .wrongEpoch }
        guard !moved.isEmpty else { return byReplica }
        directory.withLock { d in
            for (id, reply) in moved { d.targets[id]?.epoch = reply.epoch }
        }
        let again = try await sendOnce(command, argument: argument, to: moved.keys.sorted(), timeoutMilliseconds: timeoutMilliseconds)
        for (id, reply) in again { byReplica[id] = reply }
        return byReplica
    }

    func sendOnce(_ command: Control.Command, argument: [UInt8], to replicas: [ReplicaID], timeoutMilliseconds: Int) async throws -> [ReplicaID: ControlReply] {
        let known = directory.withLock { $0.targets }
        let timestamp = nextTimestamp()
        var outgoing: [(Target, Control)] = []
        for id in replicas {
            guard let target = known[id] else { continue }
            outgoing.append((target, Control(timestamp: timestamp, target: .replica(id), command: command, argument: argument)))
        }
        let expected = Set(replicas.map { Principal.replica($0) })
        let result = try await exchange(outgoing, timestamp: timestamp, expected: expected, timeoutMilliseconds: timeoutMilliseconds)
        var byReplica: [ReplicaID: ControlReply] = [:]
        for (principal, reply) in result { if case .replica(let id) = principal { byReplica[id] = reply } }
        return byReplica
    }

    /// Sends a `launcher` command to the launcher of `run` at `host:port`, signed in `epoch`
    /// (the launcher's epoch as launch.json tells it), and returns its reply, signed with the
    /// operator's key, or nil if none came in time. A launcher in another epoch answers so,
    /// and the command goes once more in that epoch.
    public func sendToLauncher(_ argument: [UInt8], host: String, port: Int, run: RunID, epoch: Epoch, timeoutMilliseconds: Int = 5_000) async throws -> ControlReply? {
        var epoch = epoch
        var reply: ControlReply?
        for _ in 0..<2 {
            let timestamp = nextTimestamp()
            let control = Control(timestamp: timestamp, target: .launcher(run), command: .launcher, argument: argument)
            reply = try await exchange([(Target(host: host, port: port, epoch: epoch), control)], timestamp: timestamp, expected: [.operator], timeoutMilliseconds: timeoutMilliseconds)[.operator]
            guard let answer = reply, answer.outcome == .wrongEpoch, answer.epoch != epoch else { break }
            epoch = answer.epoch
        }
        return reply
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

    /// Sends each command to its address, signed in its target's epoch, and collects the
    /// replies to `timestamp` (every command of one exchange carries it) until `expected`
    /// have all answered or the time is up.
    func exchange(_ commands: [(target: Target, control: Control)], timestamp: Timestamp, expected: Set<Principal>, timeoutMilliseconds: Int) async throws -> [Principal: ControlReply] {
        try await bound()
        let key = timestamp.rawValue
        let outgoing = commands.map { command in
            let envelope = Envelope.seal(.control(command.control), epoch: command.target.epoch, signer: signer)
            return (target: command.target, datagrams: DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: key))
        }
        try await endpoint.eventLoop.submit { [self] in
            replies[key] = [:]
            for (target, datagrams) in outgoing {
                endpoint.send(datagrams, to: try SocketAddress.makeAddressResolvingHost(target.host, port: target.port))
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

/// The operator's key, in every epoch: what a replica or a launcher checks a control command
/// against. The operator's key never changes with the membership (`Membership.applying`).
public struct OperatorKey: KeyDirectory {
    public let key: PublicKey
    public init(_ key: PublicKey) { self.key = key }
    public func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey? {
        principal == .operator ? key : nil
    }
}

/// The keys that verify control replies: each epoch's, and for an epoch this client does not
/// know (a replica answering from an epoch after the cluster file ctl read) the signer's key
/// in the newest membership that lists it. A reply signed with another key fails its check.
public struct ReplyKeys: KeyDirectory {
    public let epochs: EpochKeys
    public init(_ epochs: EpochKeys) { self.epochs = epochs }
    public func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey? {
        if let key = epochs.publicKey(of: principal, epoch: epoch) { return key }
        for known in epochs.memberships.keys.sorted(by: >) {
            if let key = epochs.memberships[known]!.publicKey(of: principal, epoch: known) { return key }
        }
        return nil
    }
}
