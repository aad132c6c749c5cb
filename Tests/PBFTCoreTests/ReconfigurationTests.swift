import PBFTByzantine
import PBFTCore
import PBFTKeyValue
import PBFTSimulator
import PBFTWire
import Testing

/// Dynamic reconfiguration on simulated clusters under load: epochs change at checkpoint
/// boundaries, joiners catch up by state transfer, removed replicas retire, clients follow,
/// and every checker (agreement, integrity, checkpoints, replies, liveness, epochs) passes
/// across the epochs.
@Suite struct ReconfigurationTests {
    func options(seed: UInt64, replicas: Int = 4, changes: [SimulatedChange], at tick: UInt64 = 150) -> SimulationOptions {
        var options = SimulationOptions(
            seed: seed, replicas: replicas, clients: 3, requestsPerClient: 60, checkpointInterval: 8, logWindow: 16,
            batchSizeMax: 4, sequencesInFlightMax: 4, ticksMax: 100_000)
        options.reconfigurations = changes.map { ScheduledReconfiguration(tick: tick, change: $0) }
        return options
    }

    func run(_ options: SimulationOptions) throws -> SimulationResult {
        var simulation = try Simulation(options)
        let result = simulation.run()
        #expect(result.violations.isEmpty, "seed \(options.seed): \(result.violations.prefix(5)) \(result.finalStates) \(result.reconfigurations)")
        #expect(result.completedOperations == options.clients * options.requestsPerClient)
        return result
    }

    /// The membership each correct replica ended in.
    func finalMembers(_ result: SimulationResult) -> Set<ReplicaID>? {
        let last = result.epochs.values.compactMap(\.last).max { $0.membership.epoch < $1.membership.epoch }
        return last.map { Set($0.membership.replicas.map(\.id)) }
    }

    @Test func growFourToSevenUnderLoad() throws {
        let result = try run(options(seed: 1, changes: [.add(ReplicaID(4)), .add(ReplicaID(5)), .add(ReplicaID(6)), .setFaultTolerance(2)]))
        #expect(finalMembers(result) == Set((0..<7).map { ReplicaID(UInt32($0)) }))
        let last = result.epochs.values.compactMap(\.last).max { $0.membership.epoch < $1.membership.epoch }
        #expect(last?.membership.f == 2)
        for joiner in [4, 5, 6].map({ ReplicaID(UInt32($0)) }) {
            #expect(result.stateTransfers[joiner]?.isEmpty == false, "\(joiner) fetched the state it starts from")
            #expect((result.executions[joiner]?.count ?? 0) > 0, "\(joiner) took part after joining")
        }
    }

    @Test func shrinkSevenToFourUnderLoad() throws {
        let result = try run(options(
            seed: 2, replicas: 7, changes: [.setFaultTolerance(1), .remove(ReplicaID(6)), .remove(ReplicaID(5)), .remove(ReplicaID(4))]))
        #expect(finalMembers(result) == Set((0..<4).map { ReplicaID(UInt32($0)) }))
        for removed in [4, 5, 6].map({ ReplicaID(UInt32($0)) }) {
            #expect(result.retired[removed] != nil, "\(removed) retired")
        }
    }

    @Test func replaceAReplica() throws {
        let result = try run(options(seed: 3, changes: [.replace(ReplicaID(2), by: ReplicaID(9))]))
        #expect(finalMembers(result) == Set([0, 1, 3, 9].map { ReplicaID(UInt32($0)) }))
        #expect(result.retired[ReplicaID(2)] != nil)
        #expect((result.executions[ReplicaID(9)]?.count ?? 0) > 0)
    }

    @Test func removeTheCurrentPrimary() throws {
        let result = try run(options(seed: 4, changes: [.add(ReplicaID(7)), .remove(ReplicaID(0))]))
        #expect(finalMembers(result) == Set([1, 2, 3, 7].map { ReplicaID(UInt32($0)) }))
        #expect(result.retired[ReplicaID(0)] != nil)
    }
}

extension ReconfigurationTests {
    @Test func reconfigurationDuringAViewChange() throws {
        // The primary crashes just before the change is submitted: the view change and the
        // reconfiguration overlap; the new primary of the old epoch fills the epoch's tail.
        var options = options(seed: 5, changes: [.add(ReplicaID(4)), .add(ReplicaID(5))], at: 160)
        options.crashes = [Crash(replica: ReplicaID(0), tick: 150)]
        options.healTick = 1
        let result = try run(options)
        #expect(result.replicaCounters[ReplicaID(1)]!.viewChangesStarted >= 1)
        #expect(finalMembers(result) == Set([0, 1, 2, 3, 4, 5].map { ReplicaID(UInt32($0)) }))
    }

    @Test(arguments: [ByzantineBehaviour.equivocatingPrimary, .wrongCheckpoints, .viewChangeSpam, .wrongReplies, .forgedSender])
    func reconfigurationWithAByzantineOldMember(_ behaviour: ByzantineBehaviour) throws {
        var options = options(seed: 6, changes: [.add(ReplicaID(4)), .add(ReplicaID(5)), .add(ReplicaID(6)), .setFaultTolerance(2)])
        options.byzantine = [ReplicaID(0): behaviour]
        options.healTick = 1
        options.viewChangeTimeoutTicks = 200
        let result = try run(options)
        #expect(finalMembers(result) == Set((0..<7).map { ReplicaID(UInt32($0)) }))
    }

    @Test func invalidChangesAreAnsweredWithTheReasonAndChangeNothing() throws {
        var options = options(seed: 7, changes: [.remove(ReplicaID(3)), .setFaultTolerance(2), .add(ReplicaID(2)), .remove(ReplicaID(9))])
        options.requestsPerClient = 20
        var simulation = try Simulation(options)
        let result = simulation.run()
        let answers = result.reconfigurations.map { $0.result ?? "none" }
        #expect(answers == [
            "error: n = 3 replicas cannot tolerate f = 1: PBFT needs n >= 3f+1 = 4",
            "error: n = 4 replicas cannot tolerate f = 2: PBFT needs n >= 3f+1 = 7",
            "error: replica 2 is already a member",
            "error: replica 9 is not a member",
        ])
        #expect(result.epochs.isEmpty, "no epoch changed")
        #expect(result.completedOperations == 3 * 20)
    }
}
