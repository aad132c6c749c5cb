import NIOCore
public import PBFTCluster
public import PBFTCore
import PBFTCrypto
public import PBFTWire

/// Sends operator-signed control commands to replicas, or to a launcher, and collects the
/// signed replies.
public final class ControlClient: @unchecked Sendable {
    let membership: Membership
    let signer: any MessageSigner
    let authenticator: Authenticator<Ed25519Verifier, Membership>
    let endpoint = UDPEndpoint()
    var reassembler = Reassembler()
    var replies: [Principal: ControlReply] = [:]
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
    /// `timeoutMilliseconds` (a replica that is down simply has none). Call once per client.
    public func send(_ command: Control.Command, argument: [UInt8] = [], to replicas: [ReplicaID], timeoutMilliseconds: Int = 1_500) async throws -> [ReplicaID: ControlReply] {
        var addresses: [(host: String, port: Int)] = []
        for id in replicas {
            guard let descriptor = membership.replica(id) else { continue }
            addresses.append((descriptor.host, Int(descriptor.port)))
        }
        let expected = Set(replicas.map { Principal.replica($0) })
        let result = try await exchange(Control(timestamp: Self.timestamp(), command: command, argument: argument), addresses: addresses, expected: expected, timeoutMilliseconds: timeoutMilliseconds)
        var byReplica: [ReplicaID: ControlReply] = [:]
        for (principal, reply) in result { if case .replica(let id) = principal { byReplica[id] = reply } }
        return byReplica
    }

    /// Sends a `launcher` command to the launcher at `host:port` and returns its reply,
    /// signed with the operator's key, or nil if none came in time. Call once per client.
    public func sendToLauncher(_ argument: [UInt8], host: String, port: Int, timeoutMilliseconds: Int = 5_000) async throws -> ControlReply? {
        let control = Control(timestamp: Self.timestamp(), command: .launcher, argument: argument)
        return try await exchange(control, addresses: [(host, port)], expected: [.operator], timeoutMilliseconds: timeoutMilliseconds)[.operator]
    }

    static func timestamp() -> Timestamp { Timestamp(WallClock.microseconds() ?? 1) }

    func exchange(_ control: Control, addresses: [(host: String, port: Int)], expected: Set<Principal>, timeoutMilliseconds: Int) async throws -> [Principal: ControlReply] {
        _ = try await endpoint.bind(host: "0.0.0.0", port: 0) { [self] bytes, address in received(bytes, from: address) }
        let envelope = Envelope.seal(.control(control), epoch: membership.epoch, signer: signer)
        let datagrams = DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: control.timestamp.rawValue)
        do {
            try await endpoint.eventLoop.submit { [self] in
                for (host, port) in addresses {
                    endpoint.send(datagrams, to: try SocketAddress.makeAddressResolvingHost(host, port: port))
                }
            }.get()
        } catch {
            await endpoint.close()
            throw error
        }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(timeoutMilliseconds)))
        while ContinuousClock.now < deadline {
            let done = try await endpoint.eventLoop.submit { [self] in expected.isSubset(of: replies.filter { $0.value.timestamp == control.timestamp }.keys) }.get()
            if done { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = try await endpoint.eventLoop.submit { [self] in replies.filter { $0.value.timestamp == control.timestamp && expected.contains($0.key) } }.get()
        await endpoint.close()
        return result
    }

    func received(_ bytes: [UInt8], from address: SocketAddress) {
        guard case .frame(let frameBytes) = reassembler.receive(bytes, from: SenderKey(address.description), now: ticks),
              let frame = try? authenticator.open(frameBytes),
              case .controlReply(let reply) = frame.value.envelope.message
        else { return }
        replies[frame.value.envelope.sender] = reply
    }
}
