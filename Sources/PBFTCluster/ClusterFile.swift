public import PBFTCore
import PBFTCrypto
public import PBFTWire

/// The cluster file (docs/keys.md): TOML listing the epoch, n and f, the operator's public
/// key, each replica's id, host, UDP port and public key, and each client's id and public
/// key. It holds no secrets. Loading it checks every rule a configuration must keep.
public enum ClusterFile {
    public static func load(_ path: String) throws(FileError) -> Membership {
        try loadContents(path).membership
    }

    /// The membership, and, in the file of an epoch after 0 that a replica joins, the
    /// membership of the epoch before (`previous_f` and `[[previous_replicas]]`): its members
    /// certify the state the new epoch starts from. Routes are where this process reaches
    /// replicas (`[[routes]]`).
    public static func loadContents(_ path: String) throws(FileError) -> Contents {
        let text = try Files.readText(path, secret: false)
        let fields = try TOMLFields.parse(text, file: path)
        do {
            let (membership, previous) = try parseEpochs(fields)
            var routes: [ReplicaID: Route] = [:]
            if fields.has("routes") {
                for table in try fields.tables("routes") {
                    let route = try descriptor(table, keyed: false)
                    routes[route.id] = Route(host: route.host, port: route.port)
                }
            }
            return Contents(membership: membership, previous: previous, routes: routes)
        } catch let error as FieldError {
            throw FileError(path, error.message)
        } catch let error as MembershipError {
            throw FileError(path, error.description)
        } catch {
            throw FileError(path, "\(error)")
        }
    }

    static func parseEpochs(_ fields: TOMLFields) throws -> (membership: Membership, previous: Membership?) {
        try fields.onlyKeys(["epoch", "n", "f", "operator_public_key", "replicas", "clients", "previous_f", "previous_replicas", "routes"])
        let epoch = Epoch(UInt64(try fields.integer("epoch", in: 0...Int.max)))
        let n = try fields.integer("n", in: 1...WireLimits.default.replicasMax)
        let f = try fields.integer("f", in: 0...Int(UInt32.max))
        let operatorKey = try publicKey(fields, "operator_public_key")

        let replicaTables = try fields.tables("replicas")
        guard replicaTables.count == n else {
            throw FieldError("field 'n' is \(n) but \(replicaTables.count) [[replicas]] are listed")
        }
        let replicas = try replicaTables.map(descriptor)

        var clients: [Membership.ClientKey] = []
        if fields.has("clients") {
            for table in try fields.tables("clients") {
                try table.onlyKeys(["id", "public_key"])
                clients.append(Membership.ClientKey(
                    id: ClientID(UInt32(try table.integer("id", in: 0...Int(UInt32.max)))),
                    publicKey: try publicKey(table, "public_key")))
            }
        }
        let membership = try Membership(epoch: epoch, f: f, replicas: replicas, clients: clients, operatorKey: operatorKey)
        guard fields.has("previous_replicas") || fields.has("previous_f") else { return (membership, nil) }
        guard epoch.rawValue > 0 else { throw FieldError(fields.reject("previous_f", "epoch 0 has no previous epoch")) }
        let previousF = try fields.integer("previous_f", in: 0...Int(UInt32.max))
        let previousReplicas = try fields.tables("previous_replicas").map(descriptor)
        let previous = try Membership(
            epoch: Epoch(epoch.rawValue - 1), f: previousF, replicas: previousReplicas, clients: clients, operatorKey: operatorKey)
        return (membership, previous)
    }

    private static func descriptor(_ table: TOMLFields) throws -> ReplicaDescriptor { try descriptor(table, keyed: true) }

    private static func descriptor(_ table: TOMLFields, keyed: Bool) throws -> ReplicaDescriptor {
        try table.onlyKeys(keyed ? ["id", "host", "port", "public_key"] : ["id", "host", "port"])
        let host = try table.string("host")
        guard ReplicaDescriptor.isValidHost(host) else {
            throw FieldError(table.reject("host", "'\(host)' is not a host name or address (1 to 253 ASCII letters, digits, . - _ : [ ])"))
        }
        return ReplicaDescriptor(
            id: ReplicaID(UInt32(try table.integer("id", in: 0...Int(UInt32.max)))),
            host: host,
            port: UInt16(try table.integer("port", in: 1...65535)),
            publicKey: keyed ? try publicKey(table, "public_key") : PublicKey(bytes: [UInt8](repeating: 9, count: 32))!)
    }

    /// Where one process reaches a replica (or, for itself, binds), when that differs from
    /// the replica's address in the membership: a fault proxy in between, say. Routes are
    /// local to a process; the membership, which every replica agrees on and checkpoints,
    /// keeps the replica's public address.
    public struct Route: Hashable, Sendable {
        public var host: String
        public var port: UInt16
        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }
    }

    public struct Contents: Sendable {
        public var membership: Membership
        public var previous: Membership?
        public var routes: [ReplicaID: Route]
    }

    private static func publicKey(_ fields: TOMLFields, _ key: String) throws(FieldError) -> PublicKey {
        let publicKey = PublicKey(bytes: try fields.hexBytes(key, count: PublicKey.byteCount))!
        guard Ed25519.isUsablePublicKey(publicKey) else {
            throw FieldError(fields.reject(key, "not a valid Ed25519 public key (off the curve or of small order)"))
        }
        return publicKey
    }

    /// The file's text for `membership` (with `previous`, the file a replica joining
    /// `membership`'s epoch starts from).
    public static func render(_ membership: Membership, previous: Membership? = nil, routes: [ReplicaID: Route] = [:]) -> String {
        var out = """
            # pbft cluster file: public, safe to share and commit. Secret keys live in separate
            # files (mode 0600). PBFT needs n >= 3f+1.
            epoch = \(membership.epoch.rawValue)
            n = \(membership.n)
            f = \(membership.f)
            operator_public_key = "\(membership.operatorKey)"

            """
        if let previous {
            // A top-level key: it must come before the first [[table]].
            out += "# The epoch before this one: its members certify the state this epoch starts from.\nprevious_f = \(previous.f)\n"
        }
        for replica in membership.replicas { out += replicaTable("replicas", replica) }
        for replica in previous?.replicas ?? [] { out += replicaTable("previous_replicas", replica) }
        for id in routes.keys.sorted() {
            let route = routes[id]!
            out += """

                [[routes]]
                id = \(id.rawValue)
                host = \(tomlString(route.host))
                port = \(route.port)

                """
        }
        for client in membership.clients {
            out += """

                [[clients]]
                id = \(client.id.rawValue)
                public_key = "\(client.publicKey)"

                """
        }
        return out
    }

    private static func replicaTable(_ name: String, _ replica: ReplicaDescriptor) -> String {
        """

            [[\(name)]]
            id = \(replica.id.rawValue)
            host = \(tomlString(replica.host))
            port = \(replica.port)
            public_key = "\(replica.publicKey)"

            """
    }

    public static func write(
        _ membership: Membership, previous: Membership? = nil, routes: [ReplicaID: Route] = [:], to path: String, overwrite: Bool
    ) throws(FileError) {
        try Files.writeText(render(membership, previous: previous, routes: routes), to: path, mode: 0o644, overwrite: overwrite)
    }
}
