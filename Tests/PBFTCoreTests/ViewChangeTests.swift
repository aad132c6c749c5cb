import PBFTCore
import PBFTByzantine
import PBFTKeyValue
import PBFTSimulator
import PBFTWire
import Testing

/// View-change scenarios on simulated clusters of 4 and of 7. In each, every operation must
/// complete, and the checkers (agreement, integrity, checkpoints, replies, liveness after
/// the faults) must pass for the correct replicas.
@Suite struct ViewChangeScenarioTests {
    func options(_ n: Int, seed: UInt64 = 21, clients: Int = 4, requests: Int = 30) -> SimulationOptions {
        var o = SimulationOptions(
            seed: seed, replicas: n, clients: clients, requestsPerClient: requests,
            faults: NetworkFaults(delayTicks: 1...3), checkpointInterval: 4, logWindow: 8,
            batchSizeMax: 4, sequencesInFlightMax: 2, clientRetransmitTicks: 80, ticksMax: 60_000)
        o.viewChangeTimeoutTicks = 150
        return o
    }

    func check(_ result: SimulationResult, _ label: String) {
        #expect(result.passed, "\(label): \(result.violations.prefix(5)) \(result.finalStates)")
        #expect(result.completedOperations == result.options.clients * result.options.requestsPerClient, "\(label): \(result.finalStates)")
    }

    func runUntil(_ simulation: inout Simulation, _ condition: (Simulation) -> Bool) {
        while !condition(simulation), simulation.currentTick < 10_000 { simulation.step() }
        #expect(condition(simulation), "the awaited state never came")
    }

    @Test(arguments: [4, 7])
    func primaryCrashesMidBatchAndPreparedRequestsSurvive(_ n: Int) throws {
        var simulation = try Simulation(options(n))
        // Crash the primary while a sequence number is prepared somewhere but not yet executed everywhere.
        runUntil(&simulation) { sim in
            sim.replicas.contains { r in r.preparedButNotExecuted > 0 } && sim.replicas[0].lastExecuted.rawValue >= 3
        }
        simulation.crash(ReplicaID(0))
        let result = simulation.run()
        check(result, "crash n=\(n)")
        #expect(result.highestView >= ViewNumber(1))
    }

    @Test(arguments: [4, 7])
    func timeFromPrimaryCrashToTheFirstExecutionInTheNewView(_ n: Int) throws {
        // Default timeouts (Configuration's: view change 200 ticks, status 20), one tick = 1 ms.
        var o = SimulationOptions(seed: 3, replicas: n, clients: 4, requestsPerClient: 40, faults: NetworkFaults(delayTicks: 1...2), ticksMax: 60_000)
        o.viewChangeTimeoutTicks = 200
        o.crashes = [Crash(replica: ReplicaID(0), tick: 100)]
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "crash timing n=\(n)")
        let firstInNewView = (1..<n).compactMap { r -> UInt64? in
            let id = ReplicaID(UInt32(r))
            guard let batches = result.executions[id], let ticks = result.executionTicks[id] else { return nil }
            return zip(batches, ticks).first { $0.0.view >= ViewNumber(1) }?.1
        }.min()
        let gap = try #require(firstInNewView) - 100
        print("view change n=\(n): primary crashed at tick 100, first execution in the new view \(gap) ticks later (view-change timeout 200)")
        #expect(gap < 3 * 200, "\(gap) ticks")
    }

    @Test(arguments: [4, 7])
    func mutePrimaryIsReplaced(_ n: Int) throws {
        var o = options(n)
        o.byzantine = [ReplicaID(0): .mutePrimary]
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "mute n=\(n)")
        #expect(result.highestView >= ViewNumber(1))
    }

    @Test(arguments: [4, 7])
    func slowPrimaryIsReplaced(_ n: Int) throws {
        // Every pre-prepare is held for three timeouts: slower than the timer allows.
        var o = options(n)
        o.byzantine = [ReplicaID(0): .slowPrimary]
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "slow n=\(n)")
        #expect(result.highestView >= ViewNumber(1))
    }

    @Test(arguments: [4, 7])
    func equivocatingPrimaryIsReplacedAndNothingDiverges(_ n: Int) throws {
        var o = options(n, clients: 6)
        o.sequencesInFlightMax = 1  // requests pile up, so batches hold several
        o.byzantine = [ReplicaID(0): .equivocatingPrimary]
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "equivocate n=\(n)")
        let conflicts = result.replicaCounters.values.map { $0[.conflicting] + $0[.wrongDigest] }.reduce(0, +)
        #expect(result.highestView >= ViewNumber(1) || conflicts > 0)
    }

    @Test func twoConsecutiveFaultyPrimariesOnFour() throws {
        // f = 1: replica 0 is mute, and replica 1 is cut off while the view changes, so
        // view 1 cannot start either and view 2 is reached.
        var o = options(4)
        o.byzantine = [ReplicaID(0): .mutePrimary]
        o.isolations = [Isolation(replica: ReplicaID(1), ticks: 0..<1_500)]
        o.healTick = 1_500
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "two faulty n=4")
        #expect(result.highestView >= ViewNumber(2))
    }

    @Test func twoConsecutiveFaultyPrimariesOnSeven() throws {
        var o = options(7)
        o.crashes = [Crash(replica: ReplicaID(0), tick: 50), Crash(replica: ReplicaID(1), tick: 50)]
        var simulation = try Simulation(o)
        let result = simulation.run()
        check(result, "two crashed n=7")
        #expect(result.highestView >= ViewNumber(2))
    }

    @Test(arguments: [4, 7])
    func newViewDroppingAPreparedRequestIsRejected(_ n: Int) throws {
        // Replica 0 is cut off mid-load (a network fault), so the view changes to 1, whose
        // primary (replica 1) is faulty and sends an O without a prepared request.
        var o = options(n)
        o.byzantine = [ReplicaID(1): .dropPreparedInNewView]
        o.sequencesInFlightMax = 4
        o.checkpointInterval = 32  // prepared certificates stay in P until a checkpoint is stable
        o.logWindow = 64
        var simulation = try Simulation(o)
        runUntil(&simulation) { sim in sim.replicas[2].preparedButNotExecuted > 0 && sim.replicas[2].lastExecuted.rawValue >= 2 }
        simulation.crash(ReplicaID(0), restartAfterTicks: 3_000)
        let result = simulation.run()
        check(result, "bad new-view n=\(n)")
        let rejected = result.replicaCounters.filter { $0.key != ReplicaID(1) }.values.map { $0[.invalidNewView] }.reduce(0, +)
        #expect(rejected > 0, "the faulty NEW-VIEW was seen and refused")
        #expect(result.highestView >= ViewNumber(2))
    }

    @Test(arguments: [4, 7])
    func viewChangeWhileACheckpointIsBecomingStable(_ n: Int) throws {
        var simulation = try Simulation(options(n))
        runUntil(&simulation) { sim in
            sim.replicas.contains { $0.ownCheckpointCount > 0 && $0.lastExecuted.rawValue >= 4 && $0.lowWaterMark.rawValue < 4 }
        }
        simulation.crash(ReplicaID(0))
        let result = simulation.run()
        check(result, "checkpoint n=\(n)")
        #expect(result.highestView >= ViewNumber(1))
        let stable = result.stableCheckpoints.filter { $0.key != ReplicaID(0) }.values.map { $0.map(\.sequence.rawValue).max() ?? 0 }
        #expect(stable.allSatisfy { $0 >= 8 }, "checkpoints keep becoming stable after the view change: \(stable)")
    }

    @Test func slowPrimaryWithWrongRepliesAndCheckpointsDoesNotFoolClients() throws {
        for behaviour in [ByzantineBehaviour.wrongReplies, .wrongCheckpoints, .wrongDigests, .replayOld, .viewChangeSpam, .silent] {
            var o = options(4, seed: 33)
            o.byzantine = [ReplicaID(2): behaviour]
            var simulation = try Simulation(o)
            let result = simulation.run()
            check(result, "\(behaviour)")
        }
    }
}

@Suite struct AmnesiaTests {
    @Test(arguments: [4, 7])
    func replicaThatLostItsStateRejoinsWithoutSigningWhatItMayHaveSignedBefore(_ n: Int) throws {
        var o = SimulationOptions(
            seed: 41, replicas: n, clients: 4, requestsPerClient: 120, faults: NetworkFaults(delayTicks: 1...3),
            checkpointInterval: 8, logWindow: 16, batchSizeMax: 2, sequencesInFlightMax: 4, ticksMax: 100_000)
        o.crashes = [Crash(replica: ReplicaID(2), tick: 300, restartTick: 500, amnesia: true)]
        var simulation = try Simulation(o)
        let result = simulation.run()
        #expect(result.passed, "\(result.violations.prefix(3)) \(result.finalStates)")
        #expect(result.completedOperations == 480)
        let votes = result.votesSent[ReplicaID(2)] ?? []
        let before = votes.filter { $0.tick < 300 }
        let after = votes.filter { $0.tick >= 500 }
        #expect(!before.isEmpty && !after.isEmpty, "it voted before the crash and again after rejoining")
        let signedBefore = Set(before.map { "\($0.view.rawValue)/\($0.sequence.rawValue)" })
        let highestBefore = before.map(\.sequence.rawValue).max() ?? 0
        for vote in after {
            #expect(!signedBefore.contains("\(vote.view.rawValue)/\(vote.sequence.rawValue)"), "voted again at \(vote.view)/\(vote.sequence)")
            #expect(vote.sequence.rawValue > highestBefore, "after amnesia it only signs above anything it could have signed before")
        }
        #expect(simulation.replicas[2].amnesia == nil, "it rejoined")
        let caughtUp = simulation.replicas[2].app == simulation.replicas[0].app
        #expect(caughtUp)
    }
}

/// Retransmission during a view change: a replica that asks (STATUS) gets the VIEW-CHANGE or
/// NEW-VIEW it lacks, but these carry every prepared certificate above h, so one peer gets
/// them again only after a gap that doubles up to one view-change timeout.
@Suite struct ViewChangeResendTests {
    /// Replica 1 suspects the primary (a request waits a whole timeout) and moves to view 1;
    /// replica 2, still in view 0, sends STATUS every status interval.
    @Test func aViewChangeIsResentToOnePeerWithADoublingGap() throws {
        var harness = try Harness(n: 4)
        try harness.deliver(Frame(envelope: harness.request(client: 0, timestamp: 1)), to: 1)
        while !harness.replicas[1].suspectsPrimary { try harness.tick(1, 1) }
        try harness.suspicions(of: 0, from: [2, 3], to: 1)
        // r2's STATUS was just answered: the next one gets an answer a status interval on.
        for _ in 0..<10 { _ = harness.replicas[1].step(.tick) }
        #expect(harness.replicas[1].view == ViewNumber(1))
        let status = Frame(envelope: harness.seal(
            .status(Status(view: ViewNumber(0), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0), viewChanging: false)),
            as: .replica(ReplicaID(2))))
        var resentAt: [Int] = []
        for tick in 0..<400 {
            if tick % 10 == 0 {
                let actions = try harness.deliver(status, to: 1)
                if actions.contains(where: { if case .send(let frame, ReplicaID(2)) = $0, case .viewChange = frame.envelope.message { true } else { false } }) {
                    resentAt.append(tick)
                }
            }
            _ = harness.replicas[1].step(.tick)
        }
        // Gaps of 10, 20, 40, 80, then the timeout (100): not one copy per status.
        #expect(resentAt == [0, 10, 30, 70, 150, 250, 350])
    }
}
