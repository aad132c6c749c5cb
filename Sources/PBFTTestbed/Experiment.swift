import Foundation
import PBFTCluster
import PBFTRuntime
import PBFTWire

/// An experiment file (docs/experiments.md): the cluster, the load, the fault budget and a
/// timeline of faults triggered by time or by protocol events. Every problem in the file is
/// reported with its line and field.
public struct Experiment: Sendable {
    public struct Cluster: Sendable {
        public var replicas = 4
        public var tickMs = 10
        public var viewChangeTimeoutTicks = ReplicaOptions.defaultViewChangeTimeoutTicks
        public var checkpointInterval = 64
        public var logWindow = 128
        public var batchSize = 64
        public var allowByzantine = false
        public var sync = true
    }

    public struct Load: Sendable {
        public var clients = 4
        /// Operations per second in total (open loop); nil: closed loop.
        public var rate: Double?
        public var durationSeconds = 20.0
        public var keys = 16
        /// Relative weights of get, put, delete and compare-and-set.
        public var mix: (get: Int, put: Int, delete: Int, cas: Int) = (30, 50, 5, 15)
        /// Seconds a client waits for one operation before it gives up (the operation stays
        /// in the history as never completed).
        public var operationTimeoutSeconds = 30.0
    }

    /// What makes a step fire.
    public enum Trigger: Hashable, Sendable, CustomStringConvertible {
        /// Seconds after the load starts.
        case time(Double)
        /// A replica reports a view of at least v (in an active view).
        case view(atLeast: UInt64)
        /// A replica reports having executed at least n.
        case executed(atLeast: UInt64)
        /// A replica reports a stable checkpoint of at least n.
        case checkpoint(atLeast: UInt64)
        /// The replicas agree that r is primary.
        case primary(is: UInt32)
        /// A replica reports being in epoch e or a later one (not while joining).
        case epoch(atLeast: UInt64)

        public var description: String {
            switch self {
            case .time(let t): "at \(t) s"
            case .view(let v): "view >= \(v)"
            case .executed(let n): "executed >= \(n)"
            case .checkpoint(let n): "checkpoint >= \(n)"
            case .primary(let r): "primary == \(r)"
            case .epoch(let e): "epoch >= \(e)"
            }
        }
    }

    /// One fault of the timeline: `action` `after` seconds once `trigger` holds.
    public struct Step: Sendable {
        public var trigger: Trigger
        public var after: Double
        public var action: LaunchRequest
        /// The words as written (`kill primary`), for events and reports.
        public var text: String
        public var line: Int?
    }

    /// A random schedule drawn from the seed: `count` faults of the given kinds, each
    /// healed before the next, between `start` and `end` seconds.
    public struct RandomFaults: Sendable {
        public var count: Int
        public var kinds: [String]
        public var start: Double
        public var end: Double
    }

    public var name: String
    public var description: String
    public var seed: UInt64 = 1
    public var cluster = Cluster()
    public var load = Load()
    /// Replicas that may be faulty at once (crashed, paused, isolated, Byzantine, twinned); default f.
    public var faultBudget: Int
    /// No `[budget] faulty` was given: the budget is f of the epoch in force, which
    /// `set-f` and the replicas added or removed change.
    public var budgetFollowsF = true
    /// The timeline exceeds the budget on purpose (the checkers are expected to catch what breaks).
    public var beyondBudget = false
    /// After the last fault is healed, operations must complete within this many seconds.
    public var livenessBoundSeconds = 10.0
    /// After the load, the runner waits up to this many seconds for the correct replicas to
    /// converge (`Convergence`) before it records where each stands. It stops as soon as they
    /// have, so a healthy run spends a fraction of a second here. 15 s covers what a replica
    /// may still have to do: a view change (a few timeouts of 0.8 s at the default ticks), a
    /// state transfer, and a replica with nothing ahead of it hears of newer work only at its
    /// slow status heartbeat (ten status intervals, 1 s at the default ticks).
    public var settleSeconds = 15.0
    public var timeline: [Step] = []
    public var random: RandomFaults?
    /// The file's text, kept in the results.
    public var source: String

    public var f: Int { (cluster.replicas - 1) / 3 }

    public static let randomKinds = ["kill", "pause", "restart", "partition", "drop", "delay", "byzantine"]

    /// Loads and checks an experiment file.
    public static func load(_ path: String) throws -> Experiment {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw FileError(path, "cannot read: \(error.localizedDescription)")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Experiment {
        let fields = try TOMLFields.parse(text, file: file)
        do {
            return try parse(fields, text: text)
        } catch let error as FieldError {
            // Name the line of the field the message names.
            let named = error.message.firstMatch(of: /field '([^']+)'/).map { String($0.1) }
            if let named, let line = TOMLLines.line(of: named, in: text) { throw FileError(file, "line \(line): \(error.message)") }
            throw FileError(file, error.message)
        }
    }

    static func parse(_ fields: TOMLFields, text: String) throws -> Experiment {
        try fields.onlyKeys(["name", "description", "seed", "cluster", "load", "budget", "liveness_bound_s", "settle_s", "timeline", "random"])
        let name = try fields.string("name")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), name.unicodeScalars.allSatisfy(\.isASCII) else {
            throw FieldError(fields.reject("name", "use ASCII letters, digits, - and _ (it names the results folder)"))
        }
        var experiment = Experiment(name: name, description: try fields.string("description"), faultBudget: 0, source: text)
        if fields.has("seed") { experiment.seed = UInt64(try fields.integer("seed", in: 0...Int.max)) }
        if fields.has("cluster") {
            let c = try fields.subtable("cluster")
            try c.onlyKeys(["replicas", "tick_ms", "view_change_timeout_ticks", "checkpoint_interval", "log_window", "batch_size", "allow_byzantine", "sync"])
            if c.has("replicas") { experiment.cluster.replicas = try c.integer("replicas", in: 4...64) }
            if c.has("tick_ms") { experiment.cluster.tickMs = try c.integer("tick_ms", in: 1...1000) }
            if c.has("view_change_timeout_ticks") { experiment.cluster.viewChangeTimeoutTicks = try c.integer("view_change_timeout_ticks", in: 2...1_000_000) }
            if c.has("checkpoint_interval") { experiment.cluster.checkpointInterval = try c.integer("checkpoint_interval", in: 1...1_000_000) }
            if c.has("log_window") { experiment.cluster.logWindow = try c.integer("log_window", in: 2...2_000_000) }
            if c.has("batch_size") { experiment.cluster.batchSize = try c.integer("batch_size", in: 1...4096) }
            if c.has("allow_byzantine") { experiment.cluster.allowByzantine = try c.bool("allow_byzantine") }
            if c.has("sync") { experiment.cluster.sync = try c.bool("sync") }
            guard experiment.cluster.logWindow % experiment.cluster.checkpointInterval == 0, experiment.cluster.logWindow >= 2 * experiment.cluster.checkpointInterval else {
                throw FieldError(c.reject("log_window", "must be a multiple of checkpoint_interval and at least twice it"))
            }
        }
        experiment.faultBudget = experiment.f
        if fields.has("load") {
            let l = try fields.subtable("load")
            try l.onlyKeys(["clients", "rate", "duration_s", "keys", "mix", "operation_timeout_s"])
            if l.has("clients") { experiment.load.clients = try l.integer("clients", in: 1...256) }
            if l.has("rate") { experiment.load.rate = try l.number("rate", in: 0.1...1_000_000) }
            if l.has("duration_s") { experiment.load.durationSeconds = try l.number("duration_s", in: 1...86_400) }
            if l.has("keys") { experiment.load.keys = try l.integer("keys", in: 1...1_000_000) }
            if l.has("operation_timeout_s") { experiment.load.operationTimeoutSeconds = try l.number("operation_timeout_s", in: 1...3_600) }
            if l.has("mix") {
                let m = try l.subtable("mix")
                try m.onlyKeys(["get", "put", "delete", "cas"])
                func weight(_ key: String, _ fallback: Int) throws -> Int { m.has(key) ? try m.integer(key, in: 0...1_000_000) : fallback }
                experiment.load.mix = (try weight("get", 0), try weight("put", 0), try weight("delete", 0), try weight("cas", 0))
                let mix = experiment.load.mix
                guard mix.get + mix.put + mix.delete + mix.cas > 0 else { throw FieldError(l.reject("mix", "at least one weight must be positive")) }
            }
        }
        if fields.has("budget") {
            let b = try fields.subtable("budget")
            try b.onlyKeys(["faulty", "beyond"])
            if b.has("faulty") {
                experiment.faultBudget = try b.integer("faulty", in: 0...64)
                experiment.budgetFollowsF = false
            }
            if b.has("beyond") { experiment.beyondBudget = try b.bool("beyond") }
        }
        if fields.has("liveness_bound_s") { experiment.livenessBoundSeconds = try fields.number("liveness_bound_s", in: 0.1...3_600) }
        if fields.has("settle_s") { experiment.settleSeconds = try fields.number("settle_s", in: 0...3_600) }
        // The replicas a step may name: the first ones and those the timeline adds (in file order).
        var ids = (0..<experiment.cluster.replicas).map { ReplicaID(UInt32($0)) }
        if fields.has("timeline") {
            for step in try fields.tables("timeline") {
                try step.onlyKeys(["at", "when", "after", "do"])
                let trigger: Trigger
                switch (step.has("at"), step.has("when")) {
                case (true, false):
                    trigger = .time(try step.number("at", in: 0...86_400))
                case (false, true):
                    trigger = try parseTrigger(try step.string("when"), replicas: ids, field: step)
                default:
                    throw FieldError(step.reject(step.has("at") ? "when" : "at", "give either 'at' (seconds) or 'when' (view >= V, executed >= N, checkpoint >= N, primary == R, epoch >= E)"))
                }
                let words = try step.string("do")
                let action: LaunchRequest
                do { action = try LaunchRequest(words: words, replicas: ids) } catch {
                    throw FieldError(step.reject("do", error.description))
                }
                if action.verb == .status { throw FieldError(step.reject("do", "status is not a fault")) }
                if [.addReplica, .replaceReplica].contains(action.verb) {
                    ids.append(action.newReplica.flatMap(UInt32.init).map { ReplicaID($0) } ?? ReplicaID((ids.map(\.rawValue).max() ?? 0) + 1))
                }
                if action.verb == .byzantine, !experiment.cluster.allowByzantine {
                    throw FieldError(step.reject("do", "byzantine needs allow_byzantine = true in [cluster]"))
                }
                let after = step.has("after") ? try step.number("after", in: 0...86_400) : 0
                experiment.timeline.append(Step(trigger: trigger, after: after, action: action, text: words, line: TOMLLines.line(of: step.name("do"), in: text)))
            }
        }
        if fields.has("random") {
            let r = try fields.subtable("random")
            try r.onlyKeys(["count", "kinds", "start_s", "end_s"])
            let count = try r.integer("count", in: 1...1000)
            let kinds = r.has("kinds") ? try r.string("kinds").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : randomKinds
            for kind in kinds where !randomKinds.contains(kind) {
                throw FieldError(r.reject("kinds", "unknown kind '\(kind)'; kinds: \(randomKinds.joined(separator: ", "))"))
            }
            if kinds.contains("byzantine"), !experiment.cluster.allowByzantine {
                throw FieldError(r.reject("kinds", "byzantine needs allow_byzantine = true in [cluster]"))
            }
            let start = r.has("start_s") ? try r.number("start_s", in: 0...86_400) : 2
            let end = r.has("end_s") ? try r.number("end_s", in: 0...86_400) : max(start + 1, experiment.load.durationSeconds - 5)
            guard end > start else { throw FieldError(r.reject("end_s", "must be after start_s")) }
            experiment.random = RandomFaults(count: count, kinds: kinds, start: start, end: end)
        }
        return experiment
    }

    static func parseTrigger(_ text: String, replicas: [ReplicaID], field: TOMLFields) throws(FieldError) -> Trigger {
        let words = text.split(separator: " ").map(String.init)
        let usage = "write view >= V, executed >= N, checkpoint >= N, primary == R or epoch >= E"
        guard words.count == 3, let value = UInt64(words[2]) else {
            throw FieldError(field.reject("when", "'\(text)': \(usage)"))
        }
        switch (words[0], words[1]) {
        case ("view", ">="): return .view(atLeast: value)
        case ("executed", ">="): return .executed(atLeast: value)
        case ("checkpoint", ">="): return .checkpoint(atLeast: value)
        case ("epoch", ">="): return .epoch(atLeast: value)
        case ("primary", "=="):
            guard value <= UInt64(UInt32.max), replicas.contains(ReplicaID(UInt32(value))) else {
                throw FieldError(field.reject("when", "replica \(value) is not in the cluster"))
            }
            return .primary(is: UInt32(value))
        default:
            throw FieldError(field.reject("when", "'\(text)': \(usage)"))
        }
    }
}
