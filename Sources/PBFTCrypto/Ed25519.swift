import CSodium
public import PBFTWire

/// An Ed25519 secret key. The secret bytes live in memory this type owns and zeroes when it
/// is released; no description, debug description or mirror ever shows them.
public struct SigningKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public static let seedByteCount = Int(crypto_sign_SEEDBYTES)

    private let secret: SecretBytes
    public let publicKey: PublicKey

    /// Derives the key pair from a 32-byte seed (RFC 8032's secret key). Returns nil for
    /// any other length.
    public init?(seed: [UInt8]) {
        guard seed.count == Self.seedByteCount else { return nil }
        Sodium.ready()
        var publicBytes = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        let secret = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES))
        seed.withUnsafeBufferPointer { s in
            _ = crypto_sign_seed_keypair(&publicBytes, secret.pointer, s.baseAddress!)
        }
        self.secret = secret
        self.publicKey = PublicKey(bytes: publicBytes)!
    }

    /// A new key from the operating system's secure random source.
    public static func generate() -> SigningKey {
        var seed = Crypto.randomBytes(seedByteCount)
        defer { seed.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) } }
        return SigningKey(seed: seed)!
    }

    /// The 32-byte seed, for writing the key file. Handle with care: this is the secret.
    public func seedForStorage() -> [UInt8] {
        Array(UnsafeBufferPointer(start: secret.pointer, count: Self.seedByteCount))
    }

    /// A detached signature over `bytes`.
    public func sign(_ bytes: [UInt8]) -> Signature {
        var out = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        bytes.withUnsafeBufferPointer { m in
            _ = crypto_sign_detached(&out, nil, m.baseAddress, UInt64(m.count), secret.pointer)
        }
        return Signature(bytes: out)!
    }

    public var description: String { "SigningKey(public: \(publicKey), secret: <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey]) }
}

/// Ed25519 verification, the checks of libsodium's `crypto_sign_verify_detached`: a
/// canonical S, R and the public key not of small order, the public key canonical.
public enum Ed25519 {
    public static func verify(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool {
        Sodium.ready()
        let sig = signature.bytes
        let key = publicKey.bytes
        return bytes.withUnsafeBufferPointer { m in
            crypto_sign_verify_detached(sig, m.baseAddress, UInt64(m.count), key) == 0
        }
    }

    /// Whether `publicKey` is a canonical encoding of a point on the curve, in the main
    /// subgroup and not of small order: the keys a cluster file may list.
    public static func isUsablePublicKey(_ publicKey: PublicKey) -> Bool {
        Sodium.ready()
        return crypto_core_ed25519_is_valid_point(publicKey.bytes) == 1
    }
}

/// The production signer: Ed25519 under one principal's key.
public struct Ed25519Signer: MessageSigner {
    public let principal: Principal
    public let key: SigningKey

    public init(principal: Principal, key: SigningKey) {
        self.principal = principal
        self.key = key
    }

    public func sign(_ bytes: [UInt8]) -> Signature { key.sign(bytes) }
}

/// The production verifier.
public struct Ed25519Verifier: SignatureVerifier {
    public init() {}

    public func isValid(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool {
        Ed25519.verify(signature, of: bytes, by: publicKey)
    }
}

/// Secret bytes in memory of their own, zeroed on release. Immutable after
/// initialisation, hence safe to share.
private final class SecretBytes: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }

    deinit {
        sodium_memzero(pointer, count)
        pointer.deallocate()
    }
}
