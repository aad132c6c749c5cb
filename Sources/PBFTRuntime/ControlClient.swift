import NIOCore
public import PBFTCluster
public import PBFTCore
import PBFTCrypto
public import PBFTWire
import Synchronization

/// Sends operator-signed control commands to replicas, or to a launcher, and collects the
/// signed replies. One client may send many commands, concurrently too (a launcher keeps one
/// for its lifetime); its socket is bound at the first and released by `close()`.
public final class ControlClient: @unchecked Sendable {
    let membership: Membership
    let signer: any MessageSigner
    let authenticator: Authenticator<Ed25519Verifier, Membership>
    let endpoint = UDPEndpoint()
    /// The socket's binding (started once) and the last timestamp used (each command's is newer).
    private let state = Mutex<(binding: Task<Void, any Error>?, lastTimestamp: UInt64)>((nil, 0))
    // On the endpoint's loop: reassembly, and the replies of each exchange in progress by its timestamp.
    var reassembler = Reassembler()
    var replies: [UInt64: [Principal: ControlReply]] = [:]
    var ticks: UInt64 = 0

    public init(membership: Membership, operatorKey: KeyFile) throws {
        guard operatorKey.principal == .operator, operatorKey.key.publicKey == membership.operatorKey else {
            throw RuntimeError.configuration("the key file is not the operator key of this cluster file")
        }
        self.membership = membership
        signer = operatorKey.signer
        authenticator = Authenticator(verifier: Ed25519Verifier(), keys: membership)
    }

    /// Sends `command` to each of `replicas` and returns the replies that arrived within
    /// `timeoutMilliseconds` (a replica that is down simply has none).
    public func send(_ command: Control.Command, argument: [UInt8] = [], to replicas: [ReplicaID], timeoutMilliseconds: Int = 1_500) async throws -> [ReplicaID: ControlReply] {
        var addresses: [(host: String, port: Int)] = []
        for id in replicas {
            guard let descriptor = membership.replica(id) else { continue }
            addresses.append((descriptor.host, Int(descriptor.port)))
        }
        let expected = Set(replicas.map { Principal.replica($0) })
        let result = try await exchange(Control(timestamp: nextTimestamp(), command: command, argument: argument), addresses: addresses, expected: expected, timeoutMilliseconds: timeoutMilliseconds)
        var byReplica: [ReplicaID: ControlReply] = [:]
        for (principal, reply) in result { if case .replica(let id) = principal { byReplica[id] = reply } }
        return byReplica
    }

    /// Sends a `launcher` command to the launcher at `host:port` and returns its reply,
    /// signed with the operator's key, or nil if none came in time.
    public func sendToLauncher(_ argument: [UInt8], host: String, port: Int, timeoutMilliseconds: Int = 5_000) async throws -> ControlReply? {
        let control = Control(timestamp: nextTimestamp(), command: .launcher, argument: argument)
        return try await exchange(control, addresses: [(host, port)], expected: [.operator], timeoutMilliseconds: timeoutMilliseconds)[.operator]
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

    func exchange(_ control: Control, addresses: [(host: String, port: Int)], expected: Set<Principal>, timeoutMilliseconds: Int) async throws -> [Principal: ControlReply] {
        try await bound()
        let key = control.timestamp.rawValue
        let envelope = Envelope.seal(.control(control), epoch: membership.epoch, signer: signer)
        let datagrams = DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: key)
        try await endpoint.eventLoop.submit { [self] in
            replies[key] = [:]
            for (host, port) in addresses {
                endpoint.send(datagrams, to: try SocketAddress.makeAddressResolvingHost(host, port: port))
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
        guard case .frame(let frameBytes) = reassembler.receive(bytes, from: SenderKey(address.description), now: ticks),
              let frame = try? authenticator.open(frameBytes),
              case .controlReply(let reply) = frame.value.envelope.message,
              replies[reply.timestamp.rawValue] != nil
        else { return }
        replies[reply.timestamp.rawValue]?[frame.value.envelope.sender] = reply
    }
}
