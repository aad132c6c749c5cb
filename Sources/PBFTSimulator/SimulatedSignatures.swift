import PBFTByzantine
public import PBFTCrypto
public import PBFTWire

/// The simulator's fast stand-in for Ed25519: each principal's tag is a keyed BLAKE2b over
/// the signed bytes, under a secret derived from its public key and a per-simulation
/// secret. Only the signer handed to a node can produce its tags, so each node (a Byzantine
/// one included) can sign only as itself, as with real signatures; verification costs a
/// hash instead of 48 µs.
public struct SimulatedScheme: Sendable {
    let secret: [UInt8]

    public init(seed: UInt64) {
        var rng = SplitMix64(seed: seed ^ 0x5157_5349_4d00_0001)
        secret = (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    func principalSecret(_ publicKey: PublicKey) -> [UInt8] {
        Crypto.blake2b(publicKey.bytes, key: secret, length: 32)
    }

    public func signer(for principal: Principal, publicKey: PublicKey) -> SimulatedSigner {
        SimulatedSigner(principal: principal, key: principalSecret(publicKey))
    }

    public var verifier: SimulatedVerifier { SimulatedVerifier(scheme: self) }

    /// A verifier that derives the secrets of `publicKeys` once instead of at every check.
    public func verifier(knowing publicKeys: some Sequence<PublicKey>) -> SimulatedVerifier {
        SimulatedVerifier(scheme: self, secrets: Dictionary(publicKeys.map { ($0, principalSecret($0)) }, uniquingKeysWith: { a, _ in a }))
    }
}

public struct SimulatedSigner: MessageSigner {
    public let principal: Principal
    let key: [UInt8]

    public func sign(_ bytes: [UInt8]) -> Signature {
        Signature(bytes: Crypto.blake2b(bytes, key: key, length: 64))!
    }
}

public struct SimulatedVerifier: SignatureVerifier {
    let scheme: SimulatedScheme
    /// Secrets derived ahead of time, by public key; others are derived when checked.
    var secrets: [PublicKey: [UInt8]] = [:]

    public func isValid(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool {
        let expected = Crypto.blake2b(bytes, key: secrets[publicKey] ?? scheme.principalSecret(publicKey), length: 64)
        return Crypto.constantTimeEqual(expected, signature.bytes)
    }
}

/// A verifier that is either scheme, so one simulation type serves both.
public enum SimulationVerifier: SignatureVerifier {
    case simulated(SimulatedVerifier)
    case ed25519(Ed25519Verifier)

    public func isValid(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool {
        switch self {
        case .simulated(let v): v.isValid(signature, of: bytes, by: publicKey)
        case .ed25519(let v): v.isValid(signature, of: bytes, by: publicKey)
        }
    }
}
