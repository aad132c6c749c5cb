import PBFTTestSupport
import PBFTCore
import PBFTCrypto
import PBFTWire

/// Ed25519 keys derived from fixed seeds, and the membership of epoch 7 that lists them:
/// replicas 0...3 (f = 1), clients 1...3 and the operator.
enum TestKeys {
    static let epoch = Epoch(7)
    static let replicaIDs = (0..<4).map { ReplicaID(UInt32($0)) }
    static let clientIDs = (1...3).map { ClientID(UInt32($0)) }

    static let replicas: [SigningKey] = (0..<4).map { key(seed: 100 + UInt64($0)) }
    static let clients: [SigningKey] = (0..<3).map { key(seed: 200 + UInt64($0)) }
    static let operatorKey = key(seed: 300)

    static func key(seed: UInt64) -> SigningKey {
        var rng = SplitMix64(seed: seed)
        return SigningKey(seed: rng.bytes(SigningKey.seedByteCount))!
    }

    /// The key of `principal` if the membership lists it.
    static func signingKey(of principal: Principal) -> SigningKey? {
        switch principal {
        case .replica(let id): id.rawValue < 4 ? replicas[Int(id.rawValue)] : nil
        case .client(let id): (1...3).contains(id.rawValue) ? clients[Int(id.rawValue) - 1] : nil
        case .operator: operatorKey
        }
    }

    static func signer(_ principal: Principal) -> Ed25519Signer {
        Ed25519Signer(principal: principal, key: signingKey(of: principal)!)
    }

    static let membership: Membership = {
        let replicas = replicaIDs.map { id in
            ReplicaDescriptor(
                id: id, host: "10.0.0.\(id.rawValue + 1)", port: 7000,
                publicKey: Self.replicas[Int(id.rawValue)].publicKey)
        }
        let clients = zip(clientIDs, Self.clients).map { Membership.ClientKey(id: $0, publicKey: $1.publicKey) }
        return try! Membership(epoch: epoch, f: 1, replicas: replicas, clients: clients, operatorKey: operatorKey.publicKey)
    }()
}
