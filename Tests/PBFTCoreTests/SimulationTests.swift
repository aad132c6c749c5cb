import PBFTCore
import PBFTKeyValue
import PBFTSimulator
import PBFTWire
import Testing

/// Scenario tests on simulated clusters: the real core, the real wire code, a deterministic
/// network.
@Suite struct SimulationScenarioTests {
    func run(_ options: SimulationOptions) throws -> (SimulationResult, Simulation) {
        var simulation = try Simulation(options)
        let result = simulation.run()
        #expect(result.passed, "seed \(options.seed): \(result.violations.prefix(5)) \(result.finalStates)")
        return (result, simulation)
    }

    func executedRequests(_ result: SimulationResult, _ replica: UInt32) -> [String] {
        (result.executions[ReplicaID(replica)] ?? []).flatMap { $0.requests.map { "\($0.requester)/\($0.timestamp)" } }
    }

    @Test(arguments: [4, 7])
    func thousandRequestsExecuteEverywhereInTheSameOrder(_ n: Int) throws {
        let options = SimulationOptions(
            seed: 11, replicas: n, clients: 4, requestsPerClient: 250, checkpointInterval: 16, logWindow: 32,
            batchSizeMax: 16, sequencesInFlightMax: 8, ticksMax: 200_000)
        let (result, simulation) = try run(options)
        #expect(result.completedOperations == 1000)
        let reference = executedRequests(result, 0)
        #expect(reference.count == 1000)
        #expect(Set(reference).count == 1000)
        for r in 1..<UInt32(n) {
            #expect(executedRequests(result, r) == reference, "replica \(r) executed another order")
        }
        #expect(result.stateTransfers.isEmpty)
        let states = Set(simulation.replicas.map(\.app))
        #expect(states.count == 1)
    }

    @Test func isolatedBackupCatchesUpFromTheLogWhileOthersStillHoldIt() throws {
        // One client, a long checkpoint interval: while replica 3 is cut off the others
        // commit fewer than K sequence numbers, so the entries it missed are still in
        // their logs when it returns.
        let options = SimulationOptions(
            seed: 5, replicas: 4, clients: 1, requestsPerClient: 60, isolations: [Isolation(replica: ReplicaID(3), ticks: 20..<120)],
            checkpointInterval: 64, logWindow: 128, batchSizeMax: 4, sequencesInFlightMax: 4, ticksMax: 50_000)
        let (result, simulation) = try run(options)
        #expect(result.completedOperations == 60)
        let missedWhileIsolated = executedRequests(result, 0).count - (result.executions[ReplicaID(3)]?.filter { _ in true }.count ?? 0)
        #expect(missedWhileIsolated >= 0)
        #expect(executedRequests(result, 3) == executedRequests(result, 0), "replica 3 executed everything, in order")
        #expect(result.stateTransfers[ReplicaID(3)] == nil, "caught up from the log, not by state transfer")
        #expect(result.replicaCounters[ReplicaID(3)]!.statusSent > 0, "it asked")
        let caughtUp = simulation.replicas[3].app == simulation.replicas[0].app
        #expect(caughtUp)
    }

    @Test(arguments: [4, 7])
    func replicaPartitionedThroughSeveralCheckpointsCatchesUpByStateTransfer(_ n: Int) throws {
        let options = SimulationOptions(
            seed: 6, replicas: n, clients: 3, requestsPerClient: 80, isolations: [Isolation(replica: ReplicaID(UInt32(n - 1)), ticks: 30..<400)],
            checkpointInterval: 4, logWindow: 8, batchSizeMax: 2, sequencesInFlightMax: 4, ticksMax: 50_000)
        let (result, simulation) = try run(options)
        #expect(result.completedOperations == 240)
        let laggard = ReplicaID(UInt32(n - 1))
        #expect((result.stateTransfers[laggard] ?? []).count >= 1)
        let stable = (result.stableCheckpoints[ReplicaID(0)] ?? []).map(\.sequence)
        #expect(stable.count >= 3, "several checkpoints went by")
        #expect(simulation.replicas[n - 1].lastExecuted == simulation.replicas[0].lastExecuted)
        let caughtUp = simulation.replicas[n - 1].app == simulation.replicas[0].app
        #expect(caughtUp)
    }

    @Test func retransmittedAndDuplicatedRequestsExecuteOnce() throws {
        // Clients time out quickly and re-broadcast; the network duplicates half the datagrams.
        let options = SimulationOptions(
            seed: 8, replicas: 4, clients: 4, requestsPerClient: 40,
            faults: NetworkFaults(loss: 0.05, duplication: 0.5, delayTicks: 1...6),
            checkpointInterval: 8, logWindow: 16, clientRetransmitTicks: 4, ticksMax: 100_000)
        var simulation = try Simulation(options)
        let result = simulation.run()
        #expect(result.passed, "\(result.violations.prefix(5))")
        #expect(result.completedOperations == 160)
        #expect(simulation.replicas.allSatisfy { $0.app == simulation.replicas[0].app })
        for replica in simulation.replicas {
            let executed = result.executions[replica.id]?.reduce(0) { $0 + $1.requests.count } ?? 0
            #expect(executed <= 160, "\(replica.id) executed \(executed) of 160 requests")
            if result.stateTransfers[replica.id] == nil { #expect(executed == 160, "\(replica.id) executed each request exactly once") }
            for c in 0..<4 {
                #expect(replica.replyCache.entry(for: .client(ClientID(UInt32(c))))?.timestamp == Timestamp(40), "\(replica.id): client \(c)'s last request is in its state")
            }
        }
        #expect(result.replicaCounters.values.map { $0[.duplicate] }.reduce(0, +) > 0, "duplicates did arrive")
    }

    @Test func logIsGarbageCollectedUnderLoad() throws {
        let window = 32
        let options = SimulationOptions(
            seed: 12, replicas: 4, clients: 4, requestsPerClient: 2_500, checkpointInterval: 16, logWindow: window,
            batchSizeMax: 8, sequencesInFlightMax: 16, ticksMax: 400_000)
        let (result, simulation) = try run(options)
        #expect(result.completedOperations == 10_000)
        #expect(result.maxLogEntries <= window, "the log never held more than L entries: \(result.maxLogEntries)")
        for replica in simulation.replicas {
            #expect(replica.logCount <= window)
            #expect(replica.ownCheckpointCount <= window / 16 + 1)
            #expect(replica.checkpointVoteCount <= 4 * (window / 16))
            #expect(replica.lowWaterMark.rawValue + UInt64(16) > replica.lastExecuted.rawValue, "h follows execution")
        }
        print("garbage collection: 10,000 requests, \(result.executions[ReplicaID(0)]!.count) sequence numbers, largest log \(result.maxLogEntries) entries (L = \(window)), final log \(result.finalLogEntries.values.max()!)")
    }

    @Test func sameSeedSameRun() throws {
        let options = SimulationOptions.random(seed: 424_242, replicas: 4)
        var a = try Simulation(options), b = try Simulation(options)
        let ra = a.run(), rb = b.run()
        #expect(ra.ticks == rb.ticks)
        #expect(ra.executions == rb.executions)
        #expect(ra.datagramsSent == rb.datagramsSent)
        #expect(ra.history == rb.history)
    }
}

/// At least 500 seeded runs over n in {4, 7} with random loss, duplication and
/// reordering, no crashed replicas; every run must pass every checker and complete.
@Suite struct SeededSimulationTests {
    static let chunks = Array(0..<10)

    @Test(arguments: chunks)
    func fiveHundredSeededRuns(_ chunk: Int) throws {
        let summary = try Swarm.run(firstSeed: UInt64(10_000 + chunk * 50), runs: 50, replicas: [4, 7], realSignatureEvery: 10)
        #expect(summary.runs == 50)
        for failure in summary.failures {
            Issue.record("seed \(failure.seed) failed: \(failure.violations.prefix(3)); replay: pbft sim --seed \(failure.seed) --runs 1 --replicas 4,7")
        }
    }
}

@Suite struct LargeStateTransferTests {
    @Test func tenMegabytesOfKeyValueDataTransfer() throws {
        var options = SimulationOptions(
            seed: 77, replicas: 4, clients: 4, requestsPerClient: 170, keySpace: 1_000_000, valueBytes: 16_000,
            isolations: [Isolation(replica: ReplicaID(3), ticks: 10..<2_500)],
            checkpointInterval: 128, logWindow: 256, batchSizeMax: 8, sequencesInFlightMax: 8, ticksMax: 100_000)
        options.writeOnly = true
        var simulation = try Simulation(options)
        let result = simulation.run()
        #expect(result.passed, "\(result.violations.prefix(3)) \(result.finalStates)")
        let stateBytes = simulation.replicas[0].stableState?.state.count ?? 0
        #expect(stateBytes >= 10_000_000, "state of \(stateBytes) bytes")
        #expect((result.stateTransfers[ReplicaID(3)] ?? []).count >= 1, "replica 3 caught up by state transfer")
        let same = simulation.replicas[3].app == simulation.replicas[0].app
        #expect(same, "replica 3 has the others' state")
        print("state transfer: \(stateBytes) bytes of state, \(result.replicaCounters[ReplicaID(3)]!.stateTransfersCompleted) transfers into replica 3")
    }
}

/// The swarm: at least 1,000 seeded runs per `swift test`, each drawing n from {4, 7, 10}
/// (and n != 3f + 1 in a third of them), up to f faulty replicas (Byzantine with a random
/// behaviour, or crashed, some restarting), partitions, loss, duplication and reordering
/// until a stabilisation time, and in half of them a lead fault combined with
/// reconfigurations (the newest `SwarmGenerator`); every run must pass agreement,
/// integrity, checkpoints, replies and liveness after the heal, and end converged.
@Suite struct AdversarialSwarmTests {
    @Test(arguments: Array(0..<20))
    func thousandAdversarialRuns(_ chunk: Int) throws {
        let first = UInt64(200_000 + chunk * 50)
        let summary = try Swarm.run(firstSeed: first, runs: 50, replicas: [4, 7, 10], realSignatureEvery: 25, adversarial: true)
        #expect(summary.runs == 50)
        for failure in summary.failures {
            let replay = "replay: pbft sim --seed \(failure.seed) --runs 1 --replicas 4,7,10 --real-signature-every 25 --adversarial --generator \(SwarmGenerator.newest.rawValue)"
            Issue.record("seed \(failure.seed) failed: \(failure.violations.prefix(3)); \(replay)")
        }
    }
}
