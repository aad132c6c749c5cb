public import PBFTCore
import PBFTCrypto
public import PBFTWire

/// A replica about to join a running cluster (docs/keys.md, "Adding a replica"): its fresh
/// key, its entry in the membership, and the cluster file it starts from. That file names
/// the epoch it joins and the epoch before it, whose members certify the state it fetches.
public struct Joiner: Sendable {
    public let key: KeyFile
    public let descriptor: ReplicaDescriptor
    /// The reconfiguration that makes it a member.
    public let change: ReconfigurationChange
    /// The epoch it joins: `previous` with `change` applied.
    public let membership: Membership
    public let previous: Membership

    /// A fresh key for replica `id` at `host:port`, joining the epoch after `current` as a
    /// new replica or, with `replacing`, in place of that one. Throws what the operator got
    /// wrong (id or address taken, no such replica to replace, a rule the result would break).
    public static func make(id: ReplicaID, host: String, port: UInt16, joining current: Membership, replacing old: ReplicaID? = nil) throws(JoinerError) -> Joiner {
        guard ReplicaDescriptor.isValidHost(host) else { throw .badHost(host) }
        guard port >= 1 else { throw .badPort(Int(port)) }
        if let taken = current.replica(id), taken.id != old { throw .idTaken(id, current.epoch) }
        if let taken = current.replicas.first(where: { $0.host == host && $0.port == port && $0.id != old }) {
            throw .addressTaken("\(host):\(port)", taken.id)
        }
        if let old, current.replica(old) == nil { throw .noSuchReplica(old, current.epoch) }
        let key = SigningKey.generate()
        let descriptor = ReplicaDescriptor(id: id, host: host, port: port, publicKey: key.publicKey)
        let change: ReconfigurationChange = old.map { .replaceReplica(old: $0, new: descriptor) } ?? .addReplica(descriptor)
        let next: Membership
        do { next = try current.applying(change) } catch { throw .invalid(error) }
        return Joiner(key: KeyFile(principal: .replica(id), key: key), descriptor: descriptor, change: change, membership: next, previous: current)
    }

    /// The key file's and the cluster file's names in a directory: `replica-ID.key` and
    /// `cluster-epoch-E.toml` (E: the epoch it joins).
    public var keyFileName: String { KeyFile.fileName(for: key.principal) }
    public var clusterFileName: String { Self.clusterFileName(epoch: membership.epoch) }

    public static func clusterFileName(epoch: Epoch) -> String { "cluster-epoch-\(epoch.rawValue).toml" }

    /// Writes the key (0600) and the joiner's cluster file (with `routes`, if this process
    /// reaches replicas elsewhere than at their public addresses) into `directory`; returns
    /// both paths. Without `overwrite` it writes neither if either exists.
    public func write(to directory: String, routes: [ReplicaID: ClusterFile.Route] = [:], overwrite: Bool) throws(FileError) -> (key: String, cluster: String) {
        try Files.makeDirectory(directory)
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        let paths = (key: base + keyFileName, cluster: base + clusterFileName)
        if !overwrite {
            for path in [paths.key, paths.cluster] where Files.exists(path) {
                throw FileError(path, "already exists; refusing to overwrite (use --force)")
            }
        }
        try key.write(to: paths.key, overwrite: overwrite)
        try ClusterFile.write(membership, previous: previous, routes: routes, to: paths.cluster, overwrite: overwrite)
        return paths
    }

    /// The replica's entry as it appears in the cluster file.
    public var clusterEntry: String {
        """
        [[replicas]]
        id = \(descriptor.id.rawValue)
        host = "\(descriptor.host)"
        port = \(descriptor.port)
        public_key = "\(descriptor.publicKey)"
        """
    }
}

/// What is wrong with a replica to add.
public enum JoinerError: Error, Hashable, Sendable, CustomStringConvertible {
    case badHost(String)
    case badPort(Int)
    case idTaken(ReplicaID, Epoch)
    case addressTaken(String, ReplicaID)
    case noSuchReplica(ReplicaID, Epoch)
    case invalid(MembershipError)

    public var description: String {
        switch self {
        case .badHost(let host): "host '\(host)' is not a host name or address (1 to 253 ASCII letters, digits, . - _ : [ ])"
        case .badPort(let port): "port \(port) is not a UDP port (1 to 65535)"
        case .idTaken(let id, let epoch): "replica id \(id.rawValue) is already a member of \(epoch); choose another id"
        case .addressTaken(let address, let id): "\(address) is replica \(id.rawValue)'s address; choose another port"
        case .noSuchReplica(let id, let epoch): "replica \(id.rawValue) is not a member of \(epoch)"
        case .invalid(let error): "\(error)"
        }
    }
}

extension Membership {
    /// The smallest replica id above every member's: the default id of a replica to add.
    public var nextReplicaID: ReplicaID { ReplicaID((replicas.map(\.id.rawValue).max() ?? 0) + 1) }
}
