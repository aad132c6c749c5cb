import PBFTCrypto
import PBFTWire

#if canImport(Glibc)
import Glibc
#endif

/// Ed25519 through PBFTCrypto on this machine, now: the figures the ceiling is computed from.
///
/// Measured in CPU time of the measuring thread, not wall-clock time: on a shared machine a
/// thread that is descheduled mid-loop would otherwise count another process's work as the
/// cost of a signature. The work is split into rounds and each figure is the median of
/// the rounds' averages, so one noisy round does not move it.
public struct CryptoCost: Sendable, Equatable {
    public var signMicroseconds: Double
    public var verifyMicroseconds: Double
    /// The smallest and largest round averages, to show how steady the machine was.
    public var signRangeMicroseconds: ClosedRange<Double>
    public var verifyRangeMicroseconds: ClosedRange<Double>
    public var iterations: Int
    public var messageBytes: Int

    public init(signMicroseconds: Double, verifyMicroseconds: Double, signRangeMicroseconds: ClosedRange<Double>, verifyRangeMicroseconds: ClosedRange<Double>,
                iterations: Int, messageBytes: Int) {
        self.signMicroseconds = signMicroseconds
        self.verifyMicroseconds = verifyMicroseconds
        self.signRangeMicroseconds = signRangeMicroseconds
        self.verifyRangeMicroseconds = verifyRangeMicroseconds
        self.iterations = iterations
        self.messageBytes = messageBytes
    }

    /// Signs `iterations` messages of `messageBytes` bytes, then verifies every signature,
    /// in `rounds` rounds. Throws if libsodium does not work here or a signature does not verify.
    public static func measure(iterations: Int, messageBytes: Int = 64, rounds: Int = 5) throws(CryptoCostError) -> CryptoCost {
        precondition(rounds >= 1 && iterations >= rounds && messageBytes >= 0, "at least one iteration per round")
        guard let key = SigningKey(seed: [UInt8](repeating: 42, count: SigningKey.seedByteCount)) else { throw .unusable("no key from a 32-byte seed") }
        let messages = (0..<64).map { i in [UInt8](repeating: UInt8(i), count: messageBytes) }
        let perRound = iterations / rounds
        var signRounds: [Double] = []
        var verifyRounds: [Double] = []
        for _ in 0..<rounds {
            var signatures: [Signature] = []
            signatures.reserveCapacity(perRound)
            let signStart = threadCPUNanoseconds()
            for i in 0..<perRound { signatures.append(key.sign(messages[i % messages.count])) }
            let verifyStart = threadCPUNanoseconds()
            var valid = 0
            for i in 0..<perRound where Ed25519.verify(signatures[i], of: messages[i % messages.count], by: key.publicKey) { valid += 1 }
            let verifyEnd = threadCPUNanoseconds()
            guard valid == perRound else { throw .unusable("\(perRound - valid) of \(perRound) signatures did not verify") }
            signRounds.append(Double(verifyStart - signStart) / 1e3 / Double(perRound))
            verifyRounds.append(Double(verifyEnd - verifyStart) / 1e3 / Double(perRound))
        }
        return CryptoCost(
            signMicroseconds: median(signRounds), verifyMicroseconds: median(verifyRounds),
            signRangeMicroseconds: signRounds.min()!...signRounds.max()!, verifyRangeMicroseconds: verifyRounds.min()!...verifyRounds.max()!,
            iterations: perRound * rounds, messageBytes: messageBytes)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// CPU time the calling thread has used.
    static func threadCPUNanoseconds() -> UInt64 {
        var now = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) == 0 else { return 0 }
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

public enum CryptoCostError: Error, CustomStringConvertible {
    case unusable(String)
    public var description: String {
        switch self { case .unusable(let why): "Ed25519 through libsodium does not work here: \(why)" }
    }
}
