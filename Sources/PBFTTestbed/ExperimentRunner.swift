import Foundation
import PBFTByzantine
import PBFTCheck
import PBFTCluster
import PBFTCore
import PBFTKeyValue
import PBFTRuntime
import PBFTWire

/// Runs an experiment (docs/experiments.md): launches the cluster into the results folder,
/// runs the load while recording every operation, fires the timeline's faults on time or on
/// protocol events within the fault budget, records protocol events, and writes the history,
/// per-second metrics and the scenario as run. Judging the results is `PBFTCheck`'s.
public final class ExperimentRunner: @unchecked Sendable {
    public struct Options: Sendable {
        public var experiment: Experiment
        /// The results folder to create.
        public var directory: String
        public var executable: String
        public var version: String
        /// Called about once a second with a progress line.
        public var progress: @Sendable (String) -> Void = { _ in }

        public init(experiment: Experiment, directory: String, executable: String, version: String) {
            self.experiment = experiment
            self.directory = directory
            self.executable = executable
            self.version = version
        }
    }

    /// One fault as scheduled: the experiment's steps plus the random ones drawn from the seed.
    struct Scheduled {
        var step: Experiment.Step
        var index: Int
        /// When its trigger first held (seconds since the load started).
        var triggered: Double?
        var fired = false
    }

    let options: Options
    var experiment: Experiment { options.experiment }
    let clock = ContinuousClock()
    var loadStart = ContinuousClock.now
    let history: HistoryRecorder
    var launcher: Launcher?

    public init(options: Options) throws {
        self.options = options
        try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        history = try HistoryRecorder(path: options.directory + "/history.jsonl")
    }

    func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    // MARK: The schedule and the budget

    /// The steps a run will take (the timeline and the random faults drawn from the seed),
    /// checked against the fault budget; throws when the budget is exceeded without `beyond`.
    public static func plan(_ experiment: Experiment) throws -> [Experiment.Step] {
        let steps = try schedule(experiment)
        try planCheck(experiment, steps: steps)
        return steps
    }

    /// The timeline, with the random faults drawn from the seed (each healed before the next).
    static func schedule(_ experiment: Experiment) throws -> [Experiment.Step] {
        var steps = experiment.timeline
        guard let random = experiment.random else { return steps }
        var rng = SplitMix64(seed: experiment.seed ^ 0xFA017)
        let ids = (0..<experiment.cluster.replicas).map { ReplicaID(UInt32($0)) }
        let slot = (random.end - random.start) / Double(random.count)
        for k in 0..<random.count {
            let start = random.start + Double(k) * slot + Double.random(in: 0...(slot * 0.2), using: &rng)
            let length = slot * Double.random(in: 0.3...0.6, using: &rng)
            let kind = random.kinds[Int.random(in: 0..<random.kinds.count, using: &rng)]
            let victim = rng.chance(0.5) ? "primary" : "\(Int.random(in: 0..<ids.count, using: &rng))"
            let pairs: [(String, String)]
            switch kind {
            case "kill": pairs = [("kill \(victim)", "restart \(victim)")]
            case "pause": pairs = [("pause \(victim)", "resume \(victim)")]
            case "restart": pairs = [("restart \(victim)" + (rng.chance(0.3) ? " --wipe" : ""), "")]
            case "partition": pairs = [("partition \(victim)", "heal")]
            case "drop": pairs = [("drop \(Int.random(in: 5...30, using: &rng))%", "heal")]
            case "delay": pairs = [("delay \(Int.random(in: 5...50, using: &rng)) --jitter \(Int.random(in: 0...10, using: &rng))", "heal")]
            default:
                let modes = ByzantineBehaviour.allCases.filter { $0 != .garbageFlood }
                pairs = [("byzantine \(victim) \(modes[Int.random(in: 0..<modes.count, using: &rng)].rawValue)", "byzantine \(victim) off")]
            }
            for (on, off) in pairs {
                steps.append(Experiment.Step(trigger: .time(start), after: 0, action: try LaunchRequest(words: on, replicas: ids), text: on, line: nil))
                if !off.isEmpty {
                    // "primary" in the healing step must name the replica the fault hit: the runner resolves it.
                    steps.append(Experiment.Step(trigger: .time(start + length), after: 0, action: try LaunchRequest(words: off, replicas: ids), text: off, line: nil))
                }
            }
        }
        return steps
    }

    /// Which replicas count as faulty while the steps run in order: crashed, stopped,
    /// paused, cut off by a partition (all but its largest group), Byzantine or twinned.
    struct FaultLedger {
        var down = Set<ReplicaID>()
        var byzantine = Set<ReplicaID>()
        var twinned = Set<ReplicaID>()
        var isolated = Set<ReplicaID>()
        /// Replicas that were ever Byzantine or twinned: not judged as correct.
        var everByzantine = Set<ReplicaID>()

        var faulty: Set<ReplicaID> { down.union(byzantine).union(twinned).union(isolated) }

        /// The ledger after `action` hits `id` (or, for a partition, the groups it names; the
        /// replicas it does not name form one more group, as the launcher reads it).
        func applying(_ action: LaunchRequest, to id: ReplicaID?, groups named: [[ReplicaID]]? = nil, replicas: [ReplicaID]) -> FaultLedger {
            var next = self
            switch action.verb {
            case .kill, .stop, .pause: if let id { next.down.insert(id) }
            case .resume, .restart: if let id { next.down.remove(id) }
            case .byzantine:
                if let id {
                    if action.mode == "off" { next.byzantine.remove(id) } else {
                        next.byzantine.insert(id)
                        next.everByzantine.insert(id)
                    }
                }
            case .twin:
                if let id {
                    if action.stopTwin == true { next.twinned.remove(id) } else {
                        next.twinned.insert(id)
                        next.everByzantine.insert(id)
                    }
                }
            case .partition:
                if let named, let groups = try? Partition(groups: named, oneWay: false, replicas: replicas).groups {
                    let largest = groups.max { $0.count < $1.count } ?? []
                    next.isolated = Set(replicas).subtracting(largest)
                }
            case .heal: next.isolated = []
            case .fault, .status: break
            // A reconfiguration breaks nothing; who counts is the members of the epoch in force.
            case .addReplica, .removeReplica, .replaceReplica, .setF: break
            }
            return next
        }

        /// The faulty replicas among `members`: a replica removed from the membership no
        /// longer counts, one not yet in it does not count yet.
        func faulty(among members: [ReplicaID]) -> Set<ReplicaID> { faulty.intersection(members) }
    }

    /// The budget while the membership has fault threshold `f`.
    static func budget(_ experiment: Experiment, f: Int) -> Int { experiment.budgetFollowsF ? f : experiment.faultBudget }

    /// Checks the schedule against the budget before anything runs, reading `primary` as
    /// the replica a fault-free view change would make primary (r0 in view 0, then the
    /// next after each fault that stops the primary). The runner checks again with the
    /// replicas that `primary` really named.
    static func planCheck(_ experiment: Experiment, steps: [Experiment.Step]) throws {
        guard !experiment.beyondBudget else { return }
        var members = (0..<experiment.cluster.replicas).map { ReplicaID(UInt32($0)) }
        var used = Set(members)
        var f = experiment.f
        var ledger = FaultLedger()
        var primary = members[0]
        let ordered = steps.enumerated().sorted { a, b in
            let ta = if case .time(let t) = a.element.trigger { t + a.element.after } else { Double.infinity }
            let tb = if case .time(let t) = b.element.trigger { t + b.element.after } else { Double.infinity }
            return (ta, a.offset) < (tb, b.offset)
        }
        // The replica the last fault written as "primary" hit: a healing step written as
        // "primary" hits it too, as at run time.
        var lastPrimaryFault: ReplicaID?
        /// The member after `id` in id order: the primary of the next view.
        func successor(_ id: ReplicaID) -> ReplicaID { members.first { $0 > id } ?? members[0] }
        for (_, step) in ordered {
            func resolve(_ name: String?) -> ReplicaID? {
                guard let name else { return nil }
                return name == "primary" ? primary : ReplicaID(UInt32(name) ?? 0)
            }
            let heals = [.restart, .resume].contains(step.action.verb) || step.action.mode == "off" || step.action.stopTwin == true
            var id = resolve(step.action.replica)
            if step.action.replica == "primary" {
                if heals, let hit = lastPrimaryFault { id = hit } else { lastPrimaryFault = id }
            }
            if step.action.verb.isReconfiguration {
                // As the replicas will: the new epoch starts in view 0, its first member primary.
                let added = step.action.newReplica.flatMap(UInt32.init).map { ReplicaID($0) } ?? ReplicaID((used.map(\.rawValue).max() ?? 0) + 1)
                switch step.action.verb {
                case .addReplica: members.append(added)
                case .removeReplica: members.removeAll { $0 == id }
                case .replaceReplica: members = members.filter { $0 != id } + [added]
                default: f = step.action.faultTolerance ?? f
                }
                if [.addReplica, .replaceReplica].contains(step.action.verb) { used.insert(added) }
                members.sort()
                if !members.isEmpty { primary = members[0] }
                continue
            }
            let groups = step.action.groups?.map { $0.compactMap(resolve) }
            ledger = ledger.applying(step.action, to: id, groups: groups, replicas: members)
            let faulty = ledger.faulty(among: members)
            let budget = budget(experiment, f: f)
            if faulty.count > budget {
                throw FaultError("step '\(step.text)'\(step.line.map { " (line \($0))" } ?? "") makes \(faulty.count) replicas faulty at once (\(faulty.sorted().map { "r\($0.rawValue)" }.joined(separator: ", "))), over the fault budget of \(budget); set [budget] beyond = true if that is the point")
            }
            if [.kill, .stop, .pause].contains(step.action.verb), id == primary { primary = successor(primary) }
            if step.action.verb == .partition, ledger.isolated.contains(primary) { primary = successor(primary) }
        }
    }

    // MARK: Running

    public struct Outcome: Sendable {
        public let directory: String
        public let operations: Int
        public let completed: Int
    }

    public func run() async throws -> Outcome {
        let steps = try Self.plan(experiment)
        let dir = options.directory
        try experiment.source.write(toFile: dir + "/scenario.toml", atomically: true, encoding: .utf8)

        var launchOptions = LaunchOptions(runDirectory: dir, replicas: experiment.cluster.replicas, executable: options.executable)
        launchOptions.clients = max(4, experiment.load.clients)
        launchOptions.basePort = try consecutiveFreeUDPPorts(count: experiment.cluster.replicas)
        launchOptions.seed = experiment.seed
        launchOptions.allowByzantine = experiment.cluster.allowByzantine
        launchOptions.replicaArguments = [
            "--tick-ms", "\(experiment.cluster.tickMs)", "--view-change-timeout-ticks", "\(experiment.cluster.viewChangeTimeoutTicks)",
            "--checkpoint-interval", "\(experiment.cluster.checkpointInterval)", "--log-window", "\(experiment.cluster.logWindow)",
            "--batch-size", "\(experiment.cluster.batchSize)",
        ] + (experiment.cluster.sync ? [] : ["--no-sync"])
        let launcher = try await Launcher.start(launchOptions)
        self.launcher = launcher
        let events = launcher.events
        do {
            let outcome = try await drive(launcher, steps: steps, events: events)
            await launcher.shutdown()
            return outcome
        } catch {
            await launcher.shutdown()
            throw error
        }
    }

    func drive(_ launcher: Launcher, steps: [Experiment.Step], events: EventLog) async throws -> Outcome {
        // Wait for every replica to answer.
        let ready = clock.now.advanced(by: .seconds(30))
        while clock.now < ready {
            if await launcher.snapshot().replicas.allSatisfy({ $0.view != nil }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let membership = await launcher.membership
        var clients: [ClientNode] = []
        for j in 0..<experiment.load.clients {
            let key = try KeyFile.load(launcher.keysDirectory + "/client-\(membership.clients[j].id.rawValue).key")
            let node = try ClientNode(membership: membership, key: key, tickMilliseconds: 5, retransmitTicks: max(20, 2 * experiment.cluster.viewChangeTimeoutTicks * experiment.cluster.tickMs / 5 / 4))
            try await node.start(host: "127.0.0.1")
            clients.append(node)
        }
        try writeScenarioJSON(steps: steps, launcher: launcher)
        loadStart = clock.now
        history.start = loadStart
        events.record("load_start", ["clients": experiment.load.clients, "duration_s": experiment.load.durationSeconds, "rate": experiment.load.rate ?? 0, "seed": experiment.seed])
        let end = loadStart.advanced(by: .milliseconds(Int64(experiment.load.durationSeconds * 1000)))

        let nodes = clients
        let load = Task { [self] in
            await withTaskGroup(of: Void.self) { group in
                for (j, node) in nodes.enumerated() {
                    group.addTask { await self.runClient(j, node: node, until: end, events: events) }
                }
            }
        }
        var scheduled = steps.enumerated().map { Scheduled(step: $0.element, index: $0.offset) }
        var ledger = FaultLedger()
        /// Replicas that "primary" named when a step fired, so its healing step hits the same one.
        var resolvedPrimary: [Int: ReplicaID] = [:]
        var lastView: UInt64?
        var lastEpoch: UInt64?
        var lastCheckpoint: UInt64 = 0
        var lastProgress = clock.now
        while clock.now < end {
            let snapshot = await launcher.snapshot()
            let now = seconds(since: loadStart)
            if let view = snapshot.view, let epoch = snapshot.newestEpoch, (epoch, view) != (lastEpoch ?? epoch, lastView) {
                // Views restart in a new epoch: that is no view change (the launcher records the epoch).
                if lastView != nil, lastEpoch == epoch {
                    events.record("view_change", ["view": Int(view), "primary": snapshot.primary.map { Int($0.rawValue) } ?? -1, "t": now, "epoch": Int(epoch)])
                }
                lastView = view
                lastEpoch = epoch
            }
            let stable = snapshot.replicas.compactMap(\.stableCheckpoint).max() ?? 0
            if stable > lastCheckpoint {
                events.record("checkpoint_stable", ["seq": Int(stable), "t": now])
                lastCheckpoint = stable
            }
            for index in scheduled.indices where !scheduled[index].fired {
                if scheduled[index].triggered == nil, holds(scheduled[index].step.trigger, snapshot: snapshot, now: now) {
                    scheduled[index].triggered = now
                }
                guard let at = scheduled[index].triggered, now >= at + scheduled[index].step.after else { continue }
                scheduled[index].fired = true
                var action = scheduled[index].step.action
                // A healing step written as "primary" hits the replica its fault hit.
                if action.replica == "primary", [.restart, .resume, .byzantine, .twin].contains(action.verb),
                   let earlier = scheduled[..<index].last(where: { $0.fired && $0.step.action.replica == "primary" && resolvedPrimary[$0.index] != nil }),
                   action.verb == .restart || action.verb == .resume || action.mode == "off" || action.stopTwin == true {
                    action.replica = "\(resolvedPrimary[earlier.index]!.rawValue)"
                }
                var target: ReplicaID?
                if let name = action.replica {
                    target = name == "primary" ? snapshot.primary : UInt32(name).map { ReplicaID($0) }
                    if let target, name == "primary" {
                        resolvedPrimary[scheduled[index].index] = target
                        action.replica = "\(target.rawValue)"
                    }
                }
                let groups = action.groups.map { named in
                    named.map { $0.compactMap { $0 == "primary" ? snapshot.primary : UInt32($0).map { ReplicaID($0) } } }
                }
                let members = snapshot.replicas.filter(\.member).map(\.id)
                let next = ledger.applying(action, to: target, groups: groups, replicas: snapshot.replicas.filter { $0.state != .retired }.map(\.id))
                let budget = Self.budget(experiment, f: snapshot.f)
                if next.faulty(among: members).count > budget, !experiment.beyondBudget {
                    events.record("budget_refused", ["step": scheduled[index].step.text, "faulty": next.faulty(among: members).sorted().map { Int($0.rawValue) }, "budget": budget, "t": now])
                    continue
                }
                let (accepted, reply) = await launcher.handle(action)
                if accepted { ledger = next }
                events.record("step", ["step": scheduled[index].step.text, "accepted": accepted, "reply": reply, "t": now, "trigger": "\(scheduled[index].step.trigger)"])
            }
            if clock.now - lastProgress >= .seconds(1) {
                lastProgress = clock.now
                let done = history.completedCount
                let inForce = ledger.faulty(among: snapshot.replicas.filter(\.member).map(\.id)).sorted().map { "r\($0.rawValue)" }
                options.progress(String(
                    format: "%5.1f s  %6d ops (%4.0f/s)  e%d n=%d  view %@  faults: %@", now, done, Double(done) / max(now, 0.001),
                    Int(snapshot.epoch), snapshot.replicas.filter(\.member).count,
                    lastView.map { "\($0) (r\(snapshot.primary.map { "\($0.rawValue)" } ?? "?"))" } ?? "?",
                    inForce.isEmpty ? "none" : inForce.joined(separator: ", ")))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await load.value
        for node in clients { await node.close() }
        events.record("load_end", ["operations": history.count, "completed": history.completedCount])
        let unfired = scheduled.filter { !$0.fired }
        for step in unfired { events.record("step_not_fired", ["step": step.step.text, "trigger": "\(step.step.trigger)"]) }
        try await settle(launcher, byzantine: Set(ledger.everByzantine.map { Int($0.rawValue) }), events: events)
        try writeCorrectReplicas(ledger: ledger, replicas: await launcher.snapshot().replicas.map(\.id))
        return Outcome(directory: options.directory, operations: history.count, completed: history.completedCount)
    }

    /// Waits, up to the experiment's `settle_s`, until the correct replicas have converged
    /// (`Convergence`: the rule `pbft check` judges them by), polling their status; then
    /// records where each replica stands (`final_status`, one per replica the launch started)
    /// and how long the wait took (`settle`).
    func settle(_ launcher: Launcher, byzantine: Set<Int>, events: EventLog) async throws {
        let start = clock.now
        let deadline = start.advanced(by: .milliseconds(Int64(experiment.settleSeconds * 1000)))
        var states = Self.finalStates(await launcher.snapshot())
        while !Convergence(states, byzantine: byzantine).converged, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            states = Self.finalStates(await launcher.snapshot())
        }
        for state in states {
            let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? [String: Any] ?? [:]
            events.record("final_status", object)
        }
        events.record("settle", [
            "converged": Convergence(states, byzantine: byzantine).converged, "waited_s": seconds(since: start), "settle_s": experiment.settleSeconds,
        ])
    }

    /// Each replica's process state and status report, as `pbft check` reads them back.
    static func finalStates(_ snapshot: ClusterSnapshot) -> [ReplicaFinalState] {
        snapshot.replicas.map { replica in
            var status: ReplicaFinalState.Status?
            if let epoch = replica.epoch, let members = replica.members, let view = replica.view, let executed = replica.lastExecuted,
               let stable = replica.stableCheckpoint {
                status = ReplicaFinalState.Status(
                    epoch: epoch, members: members.map { Int($0.rawValue) }, view: view, viewActive: replica.viewActive, lastExecuted: executed,
                    stableCheckpoint: stable, passive: replica.recovering, joining: replica.joining, retired: replica.retired, nextEpoch: replica.nextEpoch)
            }
            return ReplicaFinalState(replica: Int(replica.id.rawValue), process: replica.state.rawValue, status: status)
        }
    }

    func holds(_ trigger: Experiment.Trigger, snapshot: ClusterSnapshot, now: Double) -> Bool {
        switch trigger {
        case .time(let t): return now >= t
        case .view(let v): return snapshot.replicas.contains { $0.viewActive && ($0.view ?? 0) >= v }
        case .executed(let n): return snapshot.replicas.contains { ($0.lastExecuted ?? 0) >= n }
        case .checkpoint(let n): return snapshot.replicas.contains { ($0.stableCheckpoint ?? 0) >= n }
        case .primary(let r): return snapshot.primary == ReplicaID(r)
        case .epoch(let e): return (snapshot.newestEpoch ?? 0) >= e
        }
    }

    /// One closed-loop (or paced) client: operations drawn from the seed, values unique per
    /// client and operation, each recorded at invocation and completion.
    func runClient(_ j: Int, node: ClientNode, until end: ContinuousClock.Instant, events: EventLog) async {
        var epoch = await node.currentEpoch()
        var rng = SplitMix64(seed: experiment.seed &* 0x9E37_79B9 &+ UInt64(j))
        let mix = experiment.load.mix
        let total = mix.get + mix.put + mix.delete + mix.cas
        let interval: Duration? = experiment.load.rate.map { .nanoseconds(Int64(Double(experiment.load.clients) / $0 * 1e9)) }
        var seq = 0
        while clock.now < end {
            if let interval {
                let scheduled = loadStart.advanced(by: interval * seq)
                if scheduled >= end { break }
                if scheduled > clock.now { try? await Task.sleep(until: scheduled, clock: clock) }
            }
            seq += 1
            let key = "k\(Int.random(in: 0..<experiment.load.keys, using: &rng))"
            let value = "c\(j)-\(seq)"
            let pick = Int.random(in: 0..<total, using: &rng)
            let op: HistoryRecorder.Op
            if pick < mix.get {
                op = .get(key: key)
            } else if pick < mix.get + mix.put {
                op = .put(key: key, value: value)
            } else if pick < mix.get + mix.put + mix.delete {
                op = .delete(key: key)
            } else {
                // Expect the last value this client saw for the key, or absence.
                let expected: String? = rng.chance(0.3) ? nil : history.lastSeen(client: j, key: key)
                op = .cas(key: key, expected: expected, new: value)
            }
            let invoked = seconds(since: loadStart)
            let result: KeyValueResult?
            do {
                let bytes = try await node.submit(op.operation.encoded(), timeoutMilliseconds: Int(experiment.load.operationTimeoutSeconds * 1000))
                result = KeyValueResult.decode(bytes)
            } catch {
                result = nil
            }
            let completed = result == nil ? nil : seconds(since: loadStart)
            history.record(client: j, seq: seq, op: op, invoked: invoked, completed: completed, result: result)
            if let completed, case let now = await node.currentEpoch(), now != epoch {
                // The client followed the replicas into a new epoch: this is its first operation there.
                epoch = now
                events.record("client_epoch", ["client": j, "epoch": Int(now.rawValue), "t": completed])
            }
            // A client that got no answer stops: its request may still be in flight.
            if result == nil { break }
        }
    }

    func writeScenarioJSON(steps: [Experiment.Step], launcher: Launcher) throws {
        let object: [String: Any] = [
            "name": experiment.name, "description": experiment.description, "seed": experiment.seed, "version": options.version,
            "started": ISO8601DateFormatter().string(from: Date()),
            "cluster": [
                "replicas": experiment.cluster.replicas, "f": experiment.f, "tick_ms": experiment.cluster.tickMs,
                "view_change_timeout_ticks": experiment.cluster.viewChangeTimeoutTicks, "checkpoint_interval": experiment.cluster.checkpointInterval,
                "log_window": experiment.cluster.logWindow, "batch_size": experiment.cluster.batchSize, "allow_byzantine": experiment.cluster.allowByzantine,
                "sync": experiment.cluster.sync,
            ],
            "load": [
                "clients": experiment.load.clients, "rate": experiment.load.rate ?? 0, "duration_s": experiment.load.durationSeconds, "keys": experiment.load.keys,
                "mix": ["get": experiment.load.mix.get, "put": experiment.load.mix.put, "delete": experiment.load.mix.delete, "cas": experiment.load.mix.cas],
            ],
            "budget": ["faulty": experiment.faultBudget, "beyond": experiment.beyondBudget],
            "liveness_bound_s": experiment.livenessBoundSeconds,
            "settle_s": experiment.settleSeconds,
            "steps": steps.map { ["do": $0.text, "trigger": "\($0.trigger)", "after": $0.after] },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: options.directory + "/scenario.json"))
    }

    /// Which replicas the checkers judge: every one the launch started (`replica_ids`, the
    /// first ones and those added), as correct all but those ever Byzantine or twinned.
    func writeCorrectReplicas(ledger: FaultLedger, replicas: [ReplicaID]) throws {
        let url = URL(fileURLWithPath: options.directory + "/scenario.json")
        var object = (try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]) ?? [:]
        object["byzantine_replicas"] = ledger.everByzantine.sorted().map { Int($0.rawValue) }
        object["replica_ids"] = replicas.sorted().map { Int($0.rawValue) }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: url)
    }
}

/// `history.jsonl`: every client operation with its invocation and completion, one line
/// each, written when the operation ends (docs/experiments.md gives the format).
final class HistoryRecorder: @unchecked Sendable {
    enum Op {
        case get(key: String)
        case put(key: String, value: String)
        case delete(key: String)
        case cas(key: String, expected: String?, new: String)

        var operation: KeyValueOperation {
            switch self {
            case .get(let key): .get(key: Array(key.utf8))
            case .put(let key, let value): .put(key: Array(key.utf8), value: Array(value.utf8))
            case .delete(let key): .delete(key: Array(key.utf8))
            case .cas(let key, let expected, let new): .compareAndSet(key: Array(key.utf8), expected: expected.map { Array($0.utf8) }, new: Array(new.utf8))
            }
        }
    }

    let lock = NSLock()
    let handle: FileHandle
    var start = ContinuousClock.now
    private(set) var count = 0
    private(set) var completedCount = 0
    private var seen: [Int: [String: String]] = [:]

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw FaultError("\(path): cannot create the history") }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    func lastSeen(client: Int, key: String) -> String? { lock.withLock { seen[client]?[key] } }

    /// Writes the operation's line with the checker's own encoder (PBFTCheck's `History`),
    /// so the file is exactly the format `pbft check` reads.
    func record(client: Int, seq: Int, op: Op, invoked: Double, completed: Double?, result: KeyValueResult?) {
        let call: HistoryOperation.Call = switch op {
        case .get(let key): .get(key: key)
        case .put(let key, let value): .put(key: key, value: value)
        case .delete(let key): .delete(key: key)
        case .cas(let key, let expected, let new): .compareAndSet(key: key, expected: expected, new: new)
        }
        let outcome = result.flatMap { HistoryOperation.Outcome($0) }
        let completion = completed.flatMap { seconds in outcome.map { HistoryOperation.Completion(seconds: seconds, outcome: $0) } }
        let line = History.encode(HistoryOperation(client: ClientID(UInt32(client)), seq: UInt64(seq), call: call, invokeSeconds: invoked, completion: completion))
        // What this client now knows the key holds, for its next compare-and-set.
        var observed: String??
        switch (op, outcome) {
        case (.put(_, let value), .ok?): observed = .some(value)
        case (.cas(_, _, let new), .ok?): observed = .some(new)
        case (.delete, .ok?), (_, .notFound?): observed = .some(nil)
        case (_, .value(let v)?): observed = .some(v)
        case (_, .mismatch(let current)?): observed = .some(current)
        default: observed = nil
        }
        let key: String = switch op {
        case .get(let k), .put(let k, _), .delete(let k), .cas(let k, _, _): k
        }
        lock.withLock {
            count += 1
            if completion != nil { completedCount += 1 }
            if let observed { seen[client, default: [:]][key] = observed }
            handle.write(Data((line.hasSuffix("\n") ? line : line + "\n").utf8))
        }
    }
}
