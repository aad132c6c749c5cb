import Dispatch
public import PBFTByzantine
import PBFTCore
public import PBFTWire
import Synchronization

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
    /// How often the runs met the combinations that matter (docs/simulator.md, "What the
    /// swarm meets"): counted from what happened in each run, not from what it drew.
    public var combinations = CombinationCounts()

    mutating func add(_ result: SimulationResult) {
        runs += 1
        simulatedTicks += result.ticks
        completedOperations += result.completedOperations
        worstLogEntries = max(worstLogEntries, result.maxLogEntries)
        highestView = max(highestView, result.highestView)
        reconfigurations += result.reconfigurations.count
        let epochs = Set(result.epochs.values.flatMap { $0.map(\.membership.epoch) })
        epochsEntered += epochs.count
        highestEpoch = max(highestEpoch, epochs.max() ?? Epoch(0))
        if !result.violations.isEmpty { failures.append((result.options.seed, result.violations)) }
        combinations.add(result)
    }
}

/// Counts of runs that met rare combinations of faults, each a run at most once per count.
public struct CombinationCounts: Sendable {
    /// Runs with a replica of this Byzantine behaviour.
    public var byzantine: [ByzantineBehaviour: Int] = [:]
    /// Of those, runs in which the operator submitted a reconfiguration.
    public var byzantineReconfigured: [ByzantineBehaviour: Int] = [:]
    /// Of those, runs in which that replica was the primary of view 0 (behaviours such as
    /// `equivocatingPrimary` do nothing as a backup).
    public var byzantinePrimaryReconfigured: [ByzantineBehaviour: Int] = [:]
    /// Runs in which some membership (the first or one a reconfiguration made) had n != 3f + 1.
    public var unequalMembership = 0
    /// Of those, runs whose first membership had n != 3f + 1.
    public var unequalMembershipAtStart = 0
    /// Runs that lost datagrams, submitted a reconfiguration and in which a replica that was
    /// a member from the start installed a state by state transfer.
    public var lossStateTransferReconfiguration = 0
    /// Runs in which a replica restarted without its state and a reconfiguration was submitted.
    public var amnesiaReconfiguration = 0

    mutating func add(_ result: SimulationResult) {
        let reconfigured = !result.reconfigurations.isEmpty
        for behaviour in Set(result.options.byzantine.values) {
            byzantine[behaviour, default: 0] += 1
            guard reconfigured else { continue }
            byzantineReconfigured[behaviour, default: 0] += 1
            if result.options.byzantine[ReplicaID(0)] == behaviour { byzantinePrimaryReconfigured[behaviour, default: 0] += 1 }
        }
        let unequalAtStart = result.options.replicas != 3 * result.options.f + 1
        let memberships = result.epochs.values.flatMap { $0.map(\.membership) }
        if unequalAtStart || memberships.contains(where: { $0.n != 3 * $0.f + 1 }) { unequalMembership += 1 }
        if unequalAtStart { unequalMembershipAtStart += 1 }
        let caughtUp = result.stateTransfers.contains { !$0.value.isEmpty && !result.joined.contains($0.key) }
        if reconfigured, caughtUp, result.datagramsLost > 0 { lossStateTransferReconfiguration += 1 }
        if reconfigured, !result.amnesiaRestarts.isEmpty { amnesiaReconfiguration += 1 }
    }
}

public enum Swarm {
    /// The options of the swarm's run with this seed: everything about a run follows from its
    /// seed (and the list of sizes), so `--runs 1 --seed S` replays it.
    /// `generator` decides what an adversarial run draws (`SwarmGenerator`).
    public static func options(
        seed: UInt64, replicas: [Int], realSignatureEvery: Int = 10, adversarial: Bool = false, generator: SwarmGenerator = .newest
    ) -> SimulationOptions {
        let n = replicas[Int(seed % UInt64(replicas.count))]
        var options: SimulationOptions
        switch (adversarial, generator) {
        case (false, _): options = .random(seed: seed, replicas: n)
        case (true, .independent): options = .adversarial(seed: seed, replicas: n)
        case (true, .stratified): options = .stratified(seed: seed, replicas: n)
        }
        options.realSignatures = realSignatureEvery > 0 && seed % UInt64(realSignatureEvery) == 0
        // A tenth of the runs (not those with real signatures, already the slowest) take no
        // shortcut: every receiver decodes and verifies its own copy of a datagram, as
        // separate processes do, and a run whose replicas stall waits the full tail.
        let reference = seed % 10 == 5
        options.authenticateOncePerPayload = !reference
        options.stopWhenStalled = !reference
        return options
    }

    /// Runs seeds `firstSeed ..< firstSeed + runs`. Every `realSignatureEvery`-th run uses
    /// real Ed25519 (0: never). `onRun` sees each result as it finishes, in seed order.
    ///
    /// With `workers` above 1 the runs are spread over that many threads. Runs share nothing,
    /// so each seed's result is the same as with one worker; results are reported in seed
    /// order, so the summary and the output are too.
    public static func run(
        firstSeed: UInt64, runs: Int, replicas: [Int], realSignatureEvery: Int = 10, adversarial: Bool = false,
        generator: SwarmGenerator = .newest, workers: Int = 1, traced: Set<ReplicaID> = [], onRun: (SimulationResult) -> Void = { _ in }
    ) throws -> SwarmSummary {
        @Sendable func simulate(_ i: Int) throws -> SimulationResult {
            let seed = firstSeed &+ UInt64(i)
            var options = options(seed: seed, replicas: replicas, realSignatureEvery: realSignatureEvery, adversarial: adversarial, generator: generator)
            options.traced = traced
            var simulation = try Simulation(options)
            return simulation.run()
        }
        var summary = SwarmSummary()
        guard workers > 1, runs > 1 else {
            for i in 0..<runs {
                let result = try simulate(i)
                summary.add(result)
                onRun(result)
            }
            return summary
        }
        let pool = WorkerPool(runs: runs)
        for worker in 0..<min(workers, runs) {
            // A queue of its own per worker: such queues get a thread each even while the
            // calling thread (perhaps one of the global pool's) blocks below.
            DispatchQueue(label: "pbft.swarm.\(worker)").async {
                while let i = pool.take() {
                    pool.finish(i, Result { try simulate(i) })
                }
            }
        }
        defer { pool.stop() }
        for i in 0..<runs {
            let result = try pool.wait(for: i).get()
            summary.add(result)
            onRun(result)
        }
        return summary
    }
}

/// Hands out run indices to worker threads and gives their results back in index order.
private final class WorkerPool: Sendable {
    private struct State {
        var next = 0
        var stopped = false
        var finished: [Int: Result<SimulationResult, any Error>] = [:]
    }

    private let runs: Int
    private let state = Mutex(State())
    /// Signalled once per finished run.
    private let finishedOne = DispatchSemaphore(value: 0)

    init(runs: Int) {
        self.runs = runs
    }

    /// The next run to simulate, or nil when there is none left (or the caller stopped).
    func take() -> Int? {
        state.withLock { state in
            guard !state.stopped, state.next < runs else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    func finish(_ i: Int, _ result: Result<SimulationResult, any Error>) {
        state.withLock { $0.finished[i] = result }
        finishedOne.signal()
    }

    /// Blocks until run `i` finished, and hands over its result.
    func wait(for i: Int) -> Result<SimulationResult, any Error> {
        while true {
            if let result = state.withLock({ $0.finished.removeValue(forKey: i) }) { return result }
            finishedOne.wait()
        }
    }

    /// Workers take no further runs (the caller gave up on an error).
    func stop() {
        state.withLock { $0.stopped = true }
    }
}
