import PBFTCrypto
import PBFTWire

/// Ed25519 through PBFTCrypto on this machine, now: the figures the ceiling is computed from.
public struct CryptoCost: Sendable, Equatable {
    public var signMicroseconds: Double
    public var verifyMicroseconds: Double
    public var iterations: Int
    public var messageBytes: Int

    /// Signs `iterations` messages of `messageBytes` bytes, then verifies every signature.
    /// Throws if libsodium does not work here or a signature does not verify.
    public static func measure(iterations: Int, messageBytes: Int = 64) throws(CryptoCostError) -> CryptoCost {
        precondition(iterations >= 1 && messageBytes >= 0, "at least one iteration")
        guard let key = SigningKey(seed: [UInt8](repeating: 42, count: SigningKey.seedByteCount)) else { throw .unusable("no key from a 32-byte seed") }
        let messages = (0..<64).map { i in [UInt8](repeating: UInt8(i), count: messageBytes) }
        let clock = ContinuousClock()
        var signatures: [Signature] = []
        signatures.reserveCapacity(iterations)
        let signTime = clock.measure {
            for i in 0..<iterations { signatures.append(key.sign(messages[i % messages.count])) }
        }
        var valid = 0
        let verifyTime = clock.measure {
            for i in 0..<iterations where Ed25519.verify(signatures[i], of: messages[i % messages.count], by: key.publicKey) { valid += 1 }
        }
        guard valid == iterations else { throw .unusable("\(iterations - valid) of \(iterations) signatures did not verify") }
        return CryptoCost(
            signMicroseconds: signTime.inSeconds * 1e6 / Double(iterations), verifyMicroseconds: verifyTime.inSeconds * 1e6 / Double(iterations),
            iterations: iterations, messageBytes: messageBytes)
    }
}

public enum CryptoCostError: Error, CustomStringConvertible {
    case unusable(String)
    public var description: String {
        switch self { case .unusable(let why): "Ed25519 through libsodium does not work here: \(why)" }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
