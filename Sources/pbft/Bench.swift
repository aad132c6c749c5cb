import ArgumentParser
import PBFTBench
import PBFTCrypto
import PBFTWire

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print their figures: a cluster of replica processes (the default), or the crypto alone.",
        subcommands: [ClusterBench.self, CryptoBench.self],
        defaultSubcommand: ClusterBench.self
    )
}

/// Ed25519 and SHA-256 through the Swift wrapper, on this machine, now.
struct CryptoBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto",
        abstract: "Measure Ed25519 sign and verify and SHA-256 through PBFTCrypto."
    )

    @Option(help: "Signatures to make and verify.")
    var iterations: Int = 20_000

    @Option(help: "Bytes per signed message.")
    var messageBytes: Int = 64

    func run() async throws {
        guard iterations >= 100 else { throw ValidationError("--iterations \(iterations): use at least 100") }
        guard (0...(1 << 20)).contains(messageBytes) else { throw ValidationError("--message-bytes \(messageBytes): use 0 to 1048576") }
        let cost: CryptoCost
        do { cost = try CryptoCost.measure(iterations: iterations, messageBytes: messageBytes) } catch { throw Failure("\(error)") }
        let clock = ContinuousClock()
        let block = [UInt8](repeating: 7, count: 1024)
        let hashes = 50_000
        var distinct = Set<Digest>()
        let hashTime = clock.measure { for _ in 0..<hashes { distinct.insert(Crypto.sha256(block)) } }
        guard distinct.count == 1 else { throw ValidationError("SHA-256 is not deterministic") }

        let signMicros = cost.signMicroseconds
        let verifyMicros = cost.verifyMicroseconds
        let megabytesPerSecond = Double(hashes * 1024) / hashTime.seconds / 1e6
        Output.line(String(format: "ed25519 sign   %.1f µs of CPU per %d-byte message (%d signatures; rounds %.1f-%.1f)",
                           signMicros, messageBytes, cost.iterations, cost.signRangeMicroseconds.lowerBound, cost.signRangeMicroseconds.upperBound))
        Output.line(String(format: "ed25519 verify %.1f µs of CPU per %d-byte message (%d verifications; rounds %.1f-%.1f)",
                           verifyMicros, messageBytes, cost.iterations, cost.verifyRangeMicroseconds.lowerBound, cost.verifyRangeMicroseconds.upperBound))
        Output.line(String(format: "sha-256        %.0f MB/s on 1 KiB inputs", megabytesPerSecond))
        Output.line(String(format: "verify/sign    %.2f (ratio measured in this run)", verifyMicros / signMicros))
    }
}
