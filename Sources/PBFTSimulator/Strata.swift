import PBFTByzantine
import PBFTCore
import PBFTWire

/// Which draws turn a seed into an adversarial run. A seed names a run only together with
/// its generator: a seed found with one replays with the same one (`pbft sim --generator`).
public enum SwarmGenerator: Int, CaseIterable, Hashable, Sendable {
    /// Every fault, size and change drawn independently of the others
    /// (`SimulationOptions.adversarial`): the swarm until 2026-12. The seeds of issue 18
    /// and the regression tests replay with it.
    case independent = 1
    /// `independent`'s draws, then strata drawn from a stream of their own
    /// (`SimulationOptions.stratified`): a third of the runs start with n != 3f + 1, half
    /// combine a reconfiguration with a lead fault, loss and a long partition.
    case stratified = 2

    public static let newest = SwarmGenerator.stratified
}

extension SimulationOptions {
    /// Salt of the strata's own stream, so that `adversarial`'s draws are made as before.
    static let strataSalt: UInt64 = 0x5752_A7A0_0000_0002
    /// Share of the runs that start with n != 3f + 1.
    static let unequalSizeShare = 1.0 / 3
    /// Share of the runs whose faults and reconfigurations are drawn as a combination.
    static let combinationShare = 0.5

    /// The adversarial run of `SwarmGenerator.stratified`: `adversarial(seed:replicas:)`,
    /// then, from a stream of its own (docs/simulator.md, "What the swarm meets"):
    ///
    /// - **Unequal size** (a third of the runs): one or two correct replicas more than
    ///   `replicas`, keeping the f of `replicas` (n = 5, 6, 8, 9, 11, 12 from 4, 7, 10); or,
    ///   where f >= 2, `replicas` with f one lower (n = 7 with f = 1, n = 10 with f = 2).
    /// - **Combination** (half of the runs): the faults and reconfigurations are drawn again
    ///   together. A lead fault: a Byzantine replica (three in four, the behaviour uniform
    ///   over all of them, the primary of view 0 in half of those) or a crash that restarts
    ///   without its state; up to f - 1 more faults drawn as `adversarial` draws them;
    ///   1 to 3 reconfigurations, the first before GST; loss of 3% to 15% until GST; and in
    ///   half of the runs a correct replica cut off from a tick before GST / 4 until GST,
    ///   long enough to fall behind the others' window and catch up by state transfer.
    ///
    /// Both choices are drawn first, so neither shifts the other's draws.
    public static func stratified(seed: UInt64, replicas: Int) -> SimulationOptions {
        var options = adversarial(seed: seed, replicas: replicas)
        var rng = SplitMix64(seed: seed ^ strataSalt)
        let unequal = rng.chance(unequalSizeShare)
        let combination = rng.chance(combinationShare)
        if unequal { options.drawUnequalSize(redrawingFaults: combination, using: &rng) }
        if combination { options.drawCombination(using: &rng) }
        return options
    }

    /// The fault tolerance of the first membership.
    public var f: Int { faultTolerance ?? Membership.maxFaultTolerance(replicas: replicas) }

    /// Replicas that are faulty from the start: Byzantine or crashing.
    var faultyReplicas: Set<ReplicaID> { Set(byzantine.keys).union(crashes.map(\.replica)) }

    /// Starts the run with n != 3f + 1 (n = 3f + 1 given). A lower f is drawn only where
    /// the faults fit it: when they are drawn again after it, or are few enough already.
    mutating func drawUnequalSize(redrawingFaults: Bool, using rng: inout SplitMix64) {
        let n = replicas, f = self.f
        var choices: [(extra: Int, f: Int)] = [(1, f), (2, f)]
        if f >= 2, redrawingFaults || faultyReplicas.count <= f - 1 { choices.append((0, f - 1)) }
        let choice = choices.randomElement(using: &rng)!
        replicas += choice.extra
        faultTolerance = choice.f
        // The added replicas take the ids after the first n; the replicas the drawn
        // reconfigurations bring in move up past them.
        func moved(_ id: ReplicaID) -> ReplicaID { id.rawValue >= UInt32(n) ? ReplicaID(id.rawValue + UInt32(choice.extra)) : id }
        for i in reconfigurations.indices {
            switch reconfigurations[i].change {
            case .add(let id): reconfigurations[i].change = .add(moved(id))
            case .replace(let old, let id): reconfigurations[i].change = .replace(old, by: moved(id))
            case .remove, .setFaultTolerance: break
            }
        }
    }

    /// Draws the faults and reconfigurations again, as a combination of a lead fault, more
    /// faults up to f, loss, a long partition and reconfigurations during them.
    mutating func drawCombination(using rng: inout SplitMix64) {
        guard let heal = healTick else { preconditionFailure("a combination is drawn over an adversarial run, which has a GST") }
        let ids = (0..<replicas).map { ReplicaID(UInt32($0)) }
        byzantine = [:]
        crashes = []
        let lead: ReplicaID
        if rng.chance(0.75) {
            let behaviour = ByzantineBehaviour.allCases.randomElement(using: &rng)!
            lead = rng.chance(0.5) ? ReplicaID(0) : ids.randomElement(using: &rng)!
            byzantine[lead] = behaviour
        } else {
            lead = ids.randomElement(using: &rng)!
            let at = UInt64.random(in: 0...heal, using: &rng)
            crashes.append(Crash(replica: lead, tick: at, restartTick: at + UInt64.random(in: 50...1_000, using: &rng), amnesia: true))
        }
        var others = ids.filter { $0 != lead }
        others.shuffle(using: &rng)
        for id in others.prefix(Int.random(in: 0...f - 1, using: &rng)) {
            drawFault(of: id, heal: heal, using: &rng)
        }
        faults.loss = Double.random(in: 0.03...0.15, using: &rng)
        let faulty = faultyReplicas
        if rng.chance(0.5), let cutOff = ids.filter({ !faulty.contains($0) }).randomElement(using: &rng) {
            isolations.append(Isolation(replica: cutOff, ticks: UInt64.random(in: 0...heal / 4, using: &rng)..<heal))
        }
        // 1 to 3 changes, the first before GST, f lowered as well as raised.
        reconfigurations = Self.drawReconfigurations(
            replicas: replicas, f: f, faulty: faulty, firstTick: 50...heal, gapMax: (heal + 2_000) / 4, mayLowerF: true, using: &rng)
    }

    /// One more faulty replica, drawn as `adversarial` draws each: Byzantine with a random
    /// behaviour, or a crash that restarts in half the cases, a third of those without state.
    mutating func drawFault(of id: ReplicaID, heal: UInt64, using rng: inout SplitMix64) {
        if rng.chance(0.6) {
            byzantine[id] = ByzantineBehaviour.allCases.randomElement(using: &rng)!
            return
        }
        let at = UInt64.random(in: 0...heal, using: &rng)
        let restart: UInt64? = rng.chance(0.5) ? at + UInt64.random(in: 50...1_000, using: &rng) : nil
        crashes.append(Crash(replica: id, tick: at, restartTick: restart, amnesia: restart != nil && rng.chance(0.33)))
    }

}
