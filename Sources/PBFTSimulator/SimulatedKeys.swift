import PBFTCore
public import PBFTWire

/// The simulator's key directory: every principal's key in every epoch any node has known.
/// Each replica's core still decides which epochs it accepts; this only lets the shared
/// network verify signatures for all of them.
public struct SimulatedKeys: KeyDirectory {
    private var byEpoch: [Epoch: [Principal: PublicKey]] = [:]
    private(set) var replicasMax = 0

    mutating func add(_ membership: Membership) {
        var keys = byEpoch[membership.epoch] ?? [:]
        for replica in membership.replicas { keys[.replica(replica.id)] = replica.publicKey }
        for client in membership.clients { keys[.client(client.id)] = client.publicKey }
        keys[.operator] = membership.operatorKey
        byEpoch[membership.epoch] = keys
        replicasMax = max(replicasMax, keys.keys.filter { if case .replica = $0 { true } else { false } }.count)
    }

    func knows(_ membership: Membership) -> Bool {
        guard let keys = byEpoch[membership.epoch] else { return false }
        return membership.replicas.allSatisfy { keys[.replica($0.id)] == $0.publicKey }
    }

    public func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey? { byEpoch[epoch]?[principal] }
}
