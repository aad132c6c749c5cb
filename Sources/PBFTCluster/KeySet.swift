public import PBFTCore
import PBFTCrypto
import PBFTWire

/// What `pbft keygen` makes: a key per replica, per client and for the operator, and the
/// cluster file that lists their public keys.
public struct KeySet: Sendable {
    public let membership: Membership
    public let keyFiles: [KeyFile]

    /// Fresh keys for `replicas` replicas on `host`, ports `basePort`, `basePort+1`, ...,
    /// with f = floor((n-1)/3).
    public static func generate(replicas: Int, clients: Int, host: String, basePort: Int) throws(KeySetError) -> KeySet {
        guard replicas >= 4 else { throw .tooFewReplicas(replicas) }
        guard replicas <= WireLimits.default.replicasMax else { throw .tooManyReplicas(replicas) }
        guard clients >= 0 else { throw .negativeClients(clients) }
        guard basePort >= 1, basePort + replicas - 1 <= 65535 else { throw .portRange(basePort, replicas) }
        var files: [KeyFile] = []
        var descriptors: [ReplicaDescriptor] = []
        for i in 0..<replicas {
            let key = SigningKey.generate()
            let id = ReplicaID(UInt32(i))
            files.append(KeyFile(principal: .replica(id), key: key))
            descriptors.append(ReplicaDescriptor(id: id, host: host, port: UInt16(basePort + i), publicKey: key.publicKey))
        }
        var clientKeys: [Membership.ClientKey] = []
        for j in 0..<clients {
            let key = SigningKey.generate()
            let id = ClientID(UInt32(j))
            files.append(KeyFile(principal: .client(id), key: key))
            clientKeys.append(Membership.ClientKey(id: id, publicKey: key.publicKey))
        }
        let operatorKey = SigningKey.generate()
        files.append(KeyFile(principal: .operator, key: operatorKey))
        let membership: Membership
        do {
            membership = try Membership(
                epoch: Epoch(0), f: Membership.maxFaultTolerance(replicas: replicas),
                replicas: descriptors, clients: clientKeys, operatorKey: operatorKey.publicKey)
        } catch {
            throw .invalid(error)
        }
        return KeySet(membership: membership, keyFiles: files)
    }

    public static let clusterFileName = "cluster.toml"

    /// Writes every key file and the cluster file into `directory`. Without `overwrite` it
    /// first checks that none of them exists, so it never leaves a half-replaced key set.
    /// Returns the paths written, the cluster file last.
    public func write(to directory: String, overwrite: Bool) throws(FileError) -> [String] {
        try Files.makeDirectory(directory)
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        let keyPaths = keyFiles.map { base + KeyFile.fileName(for: $0.principal) }
        let clusterPath = base + Self.clusterFileName
        if !overwrite {
            for path in keyPaths + [clusterPath] where Files.exists(path) {
                throw FileError(path, "already exists; refusing to overwrite keys (use --force)")
            }
        }
        for (file, path) in zip(keyFiles, keyPaths) { try file.write(to: path, overwrite: overwrite) }
        try ClusterFile.write(membership, to: clusterPath, overwrite: overwrite)
        return keyPaths + [clusterPath]
    }
}

public enum KeySetError: Error, Hashable, Sendable, CustomStringConvertible {
    case tooFewReplicas(Int)
    case tooManyReplicas(Int)
    case negativeClients(Int)
    case portRange(Int, Int)
    case invalid(MembershipError)

    public var description: String {
        switch self {
        case .tooFewReplicas(let n): "--replicas \(n): PBFT needs at least 4 replicas (n >= 3f+1 with f >= 1)"
        case .tooManyReplicas(let n): "--replicas \(n): at most \(WireLimits.default.replicasMax) replicas are supported"
        case .negativeClients(let m): "--clients \(m): must not be negative"
        case .portRange(let port, let n): "--base-port \(port): ports \(port)...\(port + n - 1) do not fit in 1...65535"
        case .invalid(let error): "\(error)"
        }
    }
}
