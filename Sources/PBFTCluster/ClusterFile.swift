public import PBFTCore
import PBFTCrypto
import PBFTWire

/// The cluster file (docs/keys.md): TOML listing the epoch, n and f, the operator's public
/// key, each replica's id, host, UDP port and public key, and each client's id and public
/// key. It holds no secrets. Loading it checks every rule a configuration must keep.
public enum ClusterFile {
    public static func load(_ path: String) throws(FileError) -> Membership {
        let text = try Files.readText(path, secret: false)
        let fields = try TOMLFields.parse(text, file: path)
        do {
            return try parse(fields)
        } catch let error as FieldError {
            throw FileError(path, error.message)
        } catch let error as MembershipError {
            throw FileError(path, error.description)
        } catch {
            throw FileError(path, "\(error)")
        }
    }

    static func parse(_ fields: TOMLFields) throws -> Membership {
        try fields.onlyKeys(["epoch", "n", "f", "operator_public_key", "replicas", "clients"])
        let epoch = Epoch(UInt64(try fields.integer("epoch", in: 0...Int.max)))
        let n = try fields.integer("n", in: 1...WireLimits.default.replicasMax)
        let f = try fields.integer("f", in: 0...Int(UInt32.max))
        let operatorKey = try publicKey(fields, "operator_public_key")

        let replicaTables = try fields.tables("replicas")
        guard replicaTables.count == n else {
            throw FieldError("field 'n' is \(n) but \(replicaTables.count) [[replicas]] are listed")
        }
        var replicas: [ReplicaDescriptor] = []
        for table in replicaTables {
            try table.onlyKeys(["id", "host", "port", "public_key"])
            let host = try table.string("host")
            guard ReplicaDescriptor.isValidHost(host) else {
                throw FieldError(table.reject("host", "'\(host)' is not a host name or address (1 to 253 ASCII letters, digits, . - _ : [ ])"))
            }
            replicas.append(ReplicaDescriptor(
                id: ReplicaID(UInt32(try table.integer("id", in: 0...Int(UInt32.max)))),
                host: host,
                port: UInt16(try table.integer("port", in: 1...65535)),
                publicKey: try publicKey(table, "public_key")))
        }

        var clients: [Membership.ClientKey] = []
        if fields.has("clients") {
            for table in try fields.tables("clients") {
                try table.onlyKeys(["id", "public_key"])
                clients.append(Membership.ClientKey(
                    id: ClientID(UInt32(try table.integer("id", in: 0...Int(UInt32.max)))),
                    publicKey: try publicKey(table, "public_key")))
            }
        }
        return try Membership(epoch: epoch, f: f, replicas: replicas, clients: clients, operatorKey: operatorKey)
    }

    private static func publicKey(_ fields: TOMLFields, _ key: String) throws(FieldError) -> PublicKey {
        let publicKey = PublicKey(bytes: try fields.hexBytes(key, count: PublicKey.byteCount))!
        guard Ed25519.isUsablePublicKey(publicKey) else {
            throw FieldError(fields.reject(key, "not a valid Ed25519 public key (off the curve or of small order)"))
        }
        return publicKey
    }

    /// The file's text for `membership`.
    public static func render(_ membership: Membership) -> String {
        var out = """
            # pbft cluster file: public, safe to share and commit. Secret keys live in separate
            # files (mode 0600). PBFT needs n >= 3f+1.
            epoch = \(membership.epoch.rawValue)
            n = \(membership.n)
            f = \(membership.f)
            operator_public_key = "\(membership.operatorKey)"

            """
        for replica in membership.replicas {
            out += """

                [[replicas]]
                id = \(replica.id.rawValue)
                host = \(tomlString(replica.host))
                port = \(replica.port)
                public_key = "\(replica.publicKey)"

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

    public static func write(_ membership: Membership, to path: String, overwrite: Bool) throws(FileError) {
        try Files.writeText(render(membership), to: path, mode: 0o644, overwrite: overwrite)
    }
}
