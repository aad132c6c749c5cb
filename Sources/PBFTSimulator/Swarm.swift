public import PBFTWire

/// Many seeded runs, each with its own random faults and sizes, each checked.
public struct SwarmSummary: Sendable {
    public var runs = 0
    public var failures: [(seed: UInt64, violations: [String])] = []
    public var incomplete: [UInt64] = []
    public var completedOperations = 0
    public var simulatedTicks: UInt64 = 0
    public var worstLogEntries = 0
    public var highestView = ViewNumber(0)
    /// Reconfigurations the operator submitted, and how many epochs runs went through.
    public var reconfigurations = 0
    public var epochsEntered = 0
    public var highestEpoch = Epoch(0)
}

public enum Swarm {
    /// Runs seeds `firstSeed ..< firstSeed + runs`. Every `realSignatureEvery`-th run uses
    /// real Ed25519 (0: never). `onRun` sees each result as it finishes.
    public static func run(
        firstSeed: UInt64, runs: Int, replicas: [Int], realSignatureEvery: Int = 10, adversarial: Bool = false,
        onRun: (SimulationResult) -> Void = { _ in }
    ) throws -> SwarmSummary {
        var summary = SwarmSummary()
        for i in 0..<runs {
            let seed = firstSeed &+ UInt64(i)
            // Everything about a run follows from its seed, so `--runs 1 --seed S` replays it.
            let n = replicas[Int(seed % UInt64(replicas.count))]
            var options = adversarial ? SimulationOptions.adversarial(seed: seed, replicas: n) : SimulationOptions.random(seed: seed, replicas: n)
            options.realSignatures = realSignatureEvery > 0 && seed % UInt64(realSignatureEvery) == 0
            var simulation = try Simulation(options)
            let result = simulation.run()
            summary.runs += 1
            summary.simulatedTicks += result.ticks
            summary.completedOperations += result.completedOperations
            summary.worstLogEntries = max(summary.worstLogEntries, result.maxLogEntries)
            summary.highestView = max(summary.highestView, result.highestView)
            summary.reconfigurations += result.reconfigurations.count
            let epochs = Set(result.epochs.values.flatMap { $0.map(\.membership.epoch) })
            summary.epochsEntered += epochs.count
            summary.highestEpoch = max(summary.highestEpoch, epochs.max() ?? Epoch(0))
            let violations = result.violations
            if !violations.isEmpty { summary.failures.append((seed, violations)) }
            onRun(result)
        }
        return summary
    }
}
