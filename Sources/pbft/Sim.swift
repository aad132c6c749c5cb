import ArgumentParser
import Foundation
import PBFTByzantine
import PBFTSimulator
import PBFTWire

struct Sim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run seeded simulations of the real protocol core over a deterministic, faulty network.",
        discussion: """
            Each run draws loss, duplication, delay, batch size, checkpoint interval and window from
            its seed, runs clients against a simulated cluster, and checks agreement, integrity,
            checkpoint digests, replies and completion. A failing seed replays exactly with
            `pbft sim --seed S --runs 1` and the same --replicas and --generator (the line printed
            for it).
            """
    )

    @Option(help: "First seed; run i uses seed + i.")
    var seed: UInt64 = 1

    @Option(help: "Number of runs.")
    var runs: Int = 100

    @Option(help: "Replicas per run (comma-separated to alternate, e.g. 4,7).")
    var replicas: String = "4"

    @Option(help: "Use real Ed25519 in every N-th run (0: never).")
    var realSignatureEvery: Int = 10

    @Flag(help: "Faulty replicas (Byzantine, crashed, restarting), partitions and loss until a stabilisation time; then every operation must complete.")
    var adversarial = false

    @Option(help: "With --adversarial: what a seed draws. 1: faults, sizes and changes drawn independently (the swarm until 2026-12, issue 18's seeds); 2: and strata of unequal sizes and combined faults (docs/simulator.md).")
    var generator: Int = SwarmGenerator.newest.rawValue

    @Option(help: "Runs simulated at once, on as many threads (default: one per core). Results and output do not depend on it.")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print one line per run.")
    var verbose = false

    @Option(help: "With --runs 1: print every message to and from these replicas (comma-separated ids) and each change of their state.")
    var trace: String?

    func run() async throws {
        let sizes = replicas.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 4 && $0 <= 64 }) else {
            throw ValidationError("--replicas \(replicas): give replica counts between 4 and 64, e.g. 4 or 4,7")
        }
        guard runs >= 1 else { throw ValidationError("--runs \(runs): must be at least 1") }
        guard jobs >= 1 else { throw ValidationError("--jobs \(jobs): must be at least 1") }
        guard let generator = SwarmGenerator(rawValue: generator) else {
            throw ValidationError("--generator \(self.generator): give one of \(SwarmGenerator.allCases.map { String($0.rawValue) }.joined(separator: ", "))")
        }
        var traced: Set<ReplicaID> = []
        if let trace {
            let ids = trace.split(separator: ",").map { UInt32($0.trimmingCharacters(in: .whitespaces)) }
            guard runs == 1, !ids.isEmpty, ids.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--trace \(trace): give replica ids (e.g. 0,2) and --runs 1")
            }
            traced = Set(ids.map { ReplicaID($0!) })
        }
        let start = ContinuousClock.now
        let summary = try Swarm.run(firstSeed: seed, runs: runs, replicas: sizes, realSignatureEvery: realSignatureEvery, adversarial: adversarial, generator: generator, workers: jobs, traced: traced) { result in
            for line in result.trace { Output.line(line) }
            let verdict = result.passed ? "ok" : "FAIL"
            if verbose || !result.passed {
                if !result.passed || verbose && runs == 1 { for line in result.finalStates { Output.line("    " + line) } }
                let faults = result.options.byzantine.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" }
                    + result.options.crashes.map { "\($0.replica)=crash@\($0.tick)" + ($0.restartTick.map { "..\($0)" } ?? "") + ($0.amnesia ? "(amnesia)" : "") }
                Output.line("seed \(result.options.seed): \(verdict) n=\(result.options.replicas) f=\(result.options.f) \(result.highestView) faults=[\(faults.joined(separator: " "))] ops=\(result.completedOperations)/\(result.history.count) ticks=\(result.ticks) sent=\(result.datagramsSent) lost=\(result.datagramsLost)")
            }
        }
        let seconds = (ContinuousClock.now - start).seconds
        for failure in summary.failures {
            Output.line("FAILED seed \(failure.seed): replay with: pbft sim --seed \(failure.seed) --runs 1 --replicas \(replicas) --real-signature-every \(realSignatureEvery)\(adversarial ? " --adversarial --generator \(generator.rawValue)" : "")")
            for violation in failure.violations.prefix(5) { Output.line("    \(violation)") }
        }
        let runsPerSecond = Double(summary.runs) / max(seconds, 1e-9)
        let opsPerSimSecond = Double(summary.completedOperations) / max(Double(summary.simulatedTicks) / 1000, 1e-9)
        let ticksPerRun = Double(summary.simulatedTicks) / Double(summary.runs)
        Output.line(String(
            format: "%d runs in %.1f s (%d jobs): %.1f runs/s, avg %.0f simulated ticks (%.1f s of simulated time) per run",
            summary.runs, seconds, jobs, runsPerSecond, ticksPerRun, ticksPerRun / 1000))
        Output.line(String(
            format: "%d failed, %d operations completed, %.0f operations per simulated second (1 tick = 1 ms), largest log %d entries, highest view %llu",
            summary.failures.count, summary.completedOperations, opsPerSimSecond, summary.worstLogEntries, summary.highestView.rawValue))
        if summary.reconfigurations > 0 {
            Output.line("\(summary.reconfigurations) reconfigurations submitted, \(summary.epochsEntered) epochs entered, highest epoch \(summary.highestEpoch.rawValue)")
        }
        let met = summary.combinations
        if adversarial {
            Output.line(
                "combinations: \(met.unequalMembership) runs with n != 3f+1 (\(met.unequalMembershipAtStart) from the start), "
                    + "\(met.lossStateTransferReconfiguration) with loss, state transfer and a reconfiguration, "
                    + "\(met.amnesiaReconfiguration) with amnesia and a reconfiguration")
        }
        for behaviour in ByzantineBehaviour.allCases where met.byzantine[behaviour, default: 0] > 0 {
            Output.line(
                "  \(behaviour.rawValue): \(met.byzantine[behaviour, default: 0]) runs, \(met.byzantineReconfigured[behaviour, default: 0]) with a reconfiguration "
                    + "(\(met.byzantinePrimaryReconfigured[behaviour, default: 0]) of them as primary of view 0)")
        }
        if !summary.failures.isEmpty { throw ExitCode(1) }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
