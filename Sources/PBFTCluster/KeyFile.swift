public import PBFTCrypto
public import PBFTWire

/// One principal's secret key file (docs/keys.md): TOML with `role`, `id`, `seed` and
/// `public_key`, mode 0600. Loading refuses group- or world-accessible files, truncated or
/// malformed ones, and a public key that does not match the seed.
public struct KeyFile: Sendable {
    public let principal: Principal
    public let key: SigningKey

    public init(principal: Principal, key: SigningKey) {
        self.principal = principal
        self.key = key
    }

    /// The conventional file name: `replica-0.key`, `client-3.key`, `operator.key`.
    public static func fileName(for principal: Principal) -> String {
        switch principal {
        case .replica(let id): "replica-\(id.rawValue).key"
        case .client(let id): "client-\(id.rawValue).key"
        case .operator: "operator.key"
        }
    }

    public var signer: Ed25519Signer { Ed25519Signer(principal: principal, key: key) }

    public static func load(_ path: String) throws(FileError) -> KeyFile {
        let text = try Files.readText(path, secret: true)
        let fields = try TOMLFields.parse(text, file: path)
        do {
            return try parse(fields)
        } catch {
            throw FileError(path, error.message)
        }
    }

    private static func parse(_ fields: TOMLFields) throws(FieldError) -> KeyFile {
        let role = try fields.string("role")
        let principal: Principal
        switch role {
        case "replica", "client":
            try fields.onlyKeys(["role", "id", "seed", "public_key"])
            let id = UInt32(try fields.integer("id", in: 0...Int(UInt32.max)))
            principal = role == "replica" ? .replica(ReplicaID(id)) : .client(ClientID(id))
        case "operator":
            try fields.onlyKeys(["role", "seed", "public_key"])
            principal = .operator
        default:
            throw FieldError(fields.reject("role", "'\(role)' is not one of replica, client, operator"))
        }
        var seed = try fields.hexBytes("seed", count: SigningKey.seedByteCount)
        defer { for i in seed.indices { seed[i] = 0 } }
        let key = SigningKey(seed: seed)!
        let listed = try fields.hexBytes("public_key", count: PublicKey.byteCount)
        guard PublicKey(bytes: listed) == key.publicKey else {
            throw FieldError(fields.reject("public_key", "does not match the seed; the file is damaged"))
        }
        return KeyFile(principal: principal, key: key)
    }

    /// The file's text. It holds the secret: write it only through `write(to:overwrite:)`.
    func render() -> String {
        var lines = ["# pbft secret key for \(principal). Keep it private (mode 0600); never commit it."]
        switch principal {
        case .replica(let id): lines += ["role = \"replica\"", "id = \(id.rawValue)"]
        case .client(let id): lines += ["role = \"client\"", "id = \(id.rawValue)"]
        case .operator: lines += ["role = \"operator\""]
        }
        lines.append("seed = \"\(Hex.encode(key.seedForStorage()))\"")
        lines.append("public_key = \"\(key.publicKey)\"")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the file with mode 0600, refusing to replace an existing one unless `overwrite`.
    public func write(to path: String, overwrite: Bool) throws(FileError) {
        try Files.writeText(render(), to: path, mode: 0o600, overwrite: overwrite)
    }
}
