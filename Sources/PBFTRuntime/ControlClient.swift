import NIOCore
public import PBFTCluster
public import PBFTCore
import PBFTCrypto
public import PBFTWire

/// Sends operator-signed control commands to replicas and collects their signed replies.
public final class ControlClient: @unchecked Sendable {
    let membership: Membership
    let signer: any MessageSigner
    let authenticator: Authenticator<Ed25519Verifier, Membership>
    let endpoint = UDPEndpoint()
    var reassembler = Reassembler()
    var replies: [ReplicaID: ControlReply] = [:]
    var addresses: [String: ReplicaID] = [:]
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
        _ = try await endpoint.bind(host: "0.0.0.0", port: 0) { [self] bytes, address in received(bytes, from: address) }
        let timestamp = Timestamp(WallClock.microseconds() ?? 1)
        let envelope = Envelope.seal(.control(Control(timestamp: timestamp, command: command, argument: argument)), epoch: membership.epoch, signer: signer)
        let datagrams = DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: timestamp.rawValue)
        try await endpoint.eventLoop.submit { [self] in
            for id in replicas {
                guard let descriptor = membership.replica(id) else { continue }
                let address = try SocketAddress.makeAddressResolvingHost(descriptor.host, port: Int(descriptor.port))
                addresses[address.description] = id
                endpoint.send(datagrams, to: address)
            }
        }.get()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(timeoutMilliseconds)))
        while ContinuousClock.now < deadline {
            let done = try await endpoint.eventLoop.submit { [self] in replies.count == replicas.count }.get()
            if done { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = try await endpoint.eventLoop.submit { [self] in replies.filter { $0.value.timestamp == timestamp } }.get()
        await endpoint.close()
        return result
    }

    func received(_ bytes: [UInt8], from address: SocketAddress) {
        guard case .frame(let frameBytes) = reassembler.receive(bytes, from: SenderKey(address.description), now: ticks),
              let frame = try? authenticator.open(frameBytes),
              case .controlReply(let reply) = frame.value.envelope.message,
              case .replica(let id) = frame.value.envelope.sender
        else { return }
        replies[id] = reply
    }
}
