import Foundation

/// Where one replica stood when `pbft run` stopped waiting for the replicas after the load:
/// the launcher's state of its process and, if the replica answered, its own status report
/// (`ReplicaNode.statusJSON`). The runner writes one `final_status` line of events.jsonl per
/// replica the launch started, and `pbft check` reads them back with this type:
///
///     {"time":"…","elapsed":41.2,"event":"final_status","replica":2,"process":"running","epoch":1,
///      "members":[0,1,2,3,4],"view":2,"view_active":true,"last_executed":650,"stable_checkpoint":640,
///      "passive":false,"joining":false,"retired":false}
public struct ReplicaFinalState: Codable, Sendable, Equatable {
    public var replica: Int
    /// The launcher's word for its process: running, paused, stopped, killed, exited or retired.
    public var process: String
    /// Nil when the replica did not answer (its process is not running, or it was too slow).
    public var status: Status?

    /// The fields of a replica's status report the convergence rule reads.
    public struct Status: Codable, Sendable, Equatable {
        /// The epoch whose membership it holds (for a joiner, the one it joins).
        public var epoch: UInt64
        public var members: [Int]
        public var view: UInt64
        /// False while it changes views (`view` is then the view it changes to).
        public var viewActive: Bool
        public var lastExecuted: UInt64
        /// Its low water mark h.
        public var stableCheckpoint: UInt64
        /// Passive after amnesia: restarted without the state it signed (the report's `recovering`).
        public var passive: Bool
        /// Still fetching the state its epoch starts from.
        public var joining: Bool
        public var retired: Bool
        /// An epoch a reconfiguration decided that has not begun yet.
        public var nextEpoch: UInt64?

        public init(epoch: UInt64, members: [Int], view: UInt64, viewActive: Bool, lastExecuted: UInt64, stableCheckpoint: UInt64,
                    passive: Bool = false, joining: Bool = false, retired: Bool = false, nextEpoch: UInt64? = nil) {
            self.epoch = epoch
            self.members = members
            self.view = view
            self.viewActive = viewActive
            self.lastExecuted = lastExecuted
            self.stableCheckpoint = stableCheckpoint
            self.passive = passive
            self.joining = joining
            self.retired = retired
            self.nextEpoch = nextEpoch
        }

        enum CodingKeys: String, CodingKey {
            case epoch, members, view, viewActive = "view_active", lastExecuted = "last_executed", stableCheckpoint = "stable_checkpoint"
            case passive, joining, retired, nextEpoch = "next_epoch"
        }

        /// "e1 v3 changing h=640 executed=650 passive", as the simulator prints a replica's end.
        public var description: String {
            var words = ["e\(epoch)", "v\(view)\(viewActive ? "" : " changing")", "h=\(stableCheckpoint)", "executed=\(lastExecuted)"]
            if passive { words.append("passive") }
            if joining { words.append("joining") }
            if retired { words.append("retired") }
            if let nextEpoch { words.append("e\(nextEpoch) decided") }
            return words.joined(separator: " ")
        }
    }

    public init(replica: Int, process: String, status: Status?) {
        self.replica = replica
        self.process = process
        self.status = status
    }

    // One flat object: the status fields sit beside `replica` and `process`, as in the
    // replica's own report, and are absent when it did not answer.
    enum CodingKeys: String, CodingKey { case replica, process }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        replica = try container.decode(Int.self, forKey: .replica)
        process = try container.decode(String.self, forKey: .process)
        status = try decoder.container(keyedBy: Status.CodingKeys.self).contains(.epoch) ? Status(from: decoder) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(replica, forKey: .replica)
        try container.encode(process, forKey: .process)
        try status?.encode(to: encoder)
    }
}

/// Whether the correct replicas have converged once the load has ended: the rule the runner
/// waits for and `pbft check` judges by (docs/experiments.md, *convergence*).
///
/// Judged are the correct replicas (never Byzantine or twinned) whose process runs; one the
/// experiment killed, stopped or paused and did not bring back, and one that retired after a
/// reconfiguration removed it, are not. A replica that ended on its own, or that runs but did
/// not answer, has not converged. Every judged replica must be a member of the newest epoch a
/// serving (not joining) judged replica is in, be in that epoch, past joining and amnesia,
/// active in the same view as the others, at the same stable checkpoint and with the same
/// last executed sequence number, with no decided epoch still to begin. The last executed
/// sequence number is part of the rule because the stable checkpoint moves only every K: one
/// replica K − 1 requests behind the others would share their checkpoint. Once the load has
/// ended nothing new is ordered, so a correct replica can catch up with the last sequence
/// number the others executed (the runner waits for it, up to `settle_s`).
public struct Convergence: Sendable, Equatable {
    /// One line per judged replica that has not converged, naming it, what is wrong and its
    /// state: "r2 stuck in a view change to v3 (the others in v2, e1): e1 v3 changing h=640 executed=650".
    public var problems: [String]
    /// The replicas judged, by id.
    public var judged: [Int]
    /// The replicas not judged, each with the reason: "r1 killed", "r4 retired", "r0 Byzantine".
    public var excluded: [String]
    /// Where the converged replicas stand: "e1 v2, stable checkpoint 640, executed 650".
    public var reached: String

    public var converged: Bool { problems.isEmpty }

    public init(_ states: [ReplicaFinalState], byzantine: Set<Int>) {
        let (judged, excluded, ended) = Self.whoIsJudged(states, byzantine: byzantine)
        self.excluded = excluded
        self.judged = judged.map(\.id)
        problems = ended
        let serving = judged.filter { !$0.status.joining }
        guard let epoch = (serving.isEmpty ? judged : serving).map(\.status.epoch).max() else {
            reached = "no correct replica running"
            return
        }
        let members = Set((serving.first { $0.status.epoch == epoch } ?? judged.first { $0.status.epoch == epoch })?.status.members ?? [])
        // What the others reached: the replicas of the newest epoch past joining and amnesia.
        let settled = judged.filter { members.contains($0.id) && $0.status.epoch == epoch && !$0.status.joining && !$0.status.passive }.map(\.status)
        let view = settled.filter(\.viewActive).map(\.view).max()
        let stable = settled.map(\.stableCheckpoint).max() ?? 0
        let executed = settled.map(\.lastExecuted).max() ?? 0
        let others = "the others in " + (view.map { "v\($0), e\(epoch)" } ?? "no active view of e\(epoch)")
        for (id, status) in judged {
            let problem: String
            if status.epoch > epoch {
                problem = "still joining e\(status.epoch), which no serving replica has entered (the others in e\(epoch))"
            } else if !members.contains(id) {
                problem = "left out of e\(epoch) but not retired"
            } else if status.epoch != epoch {
                problem = "still in e\(status.epoch), the others in e\(epoch)"
            } else if status.joining {
                problem = "still joining e\(epoch)"
            } else if status.passive {
                problem = "still passive after amnesia"
            } else if !status.viewActive {
                problem = "stuck in a view change to v\(status.view) (\(others))"
            } else if let view, status.view != view {
                problem = "in v\(status.view), \(others)"
            } else if status.stableCheckpoint != stable {
                problem = "at stable checkpoint \(status.stableCheckpoint), the others at \(stable)"
            } else if status.lastExecuted != executed {
                problem = "executed up to \(status.lastExecuted), the others up to \(executed)"
            } else if let next = status.nextEpoch {
                problem = "waiting for e\(next), decided but not begun"
            } else {
                continue
            }
            problems.append("r\(id) \(problem): \(status.description)")
        }
        reached = "e\(epoch) " + (view.map { "v\($0)" } ?? "no active view") + ", stable checkpoint \(stable), executed \(executed)"
    }

    /// The correct replicas whose process runs and that answered, with their status; the
    /// replicas not judged, with the reason; and a problem for each correct replica whose
    /// process ended on its own or that did not answer.
    static func whoIsJudged(_ states: [ReplicaFinalState], byzantine: Set<Int>)
        -> (judged: [(id: Int, status: ReplicaFinalState.Status)], excluded: [String], problems: [String]) {
        var judged: [(id: Int, status: ReplicaFinalState.Status)] = []
        var excluded: [String] = []
        var problems: [String] = []
        for state in states.sorted(by: { $0.replica < $1.replica }) {
            let name = "r\(state.replica)"
            if byzantine.contains(state.replica) {
                excluded.append("\(name) Byzantine")
                continue
            }
            switch (state.process, state.status) {
            case ("killed", _), ("stopped", _), ("paused", _), ("retired", _):
                // The experiment took it down, or a reconfiguration removed it.
                excluded.append("\(name) \(state.process)")
            case ("running", let status?):
                if status.retired { excluded.append("\(name) retired") } else { judged.append((state.replica, status)) }
            case ("running", nil):
                problems.append("\(name) runs but did not answer its status")
            case ("exited", _):
                problems.append("\(name) exited on its own and was not restarted (see its log)")
            default:
                problems.append("\(name) is \(state.process), not running")
            }
        }
        return (judged, excluded, problems)
    }
}

/// The convergence verdict of a results folder: the runner's `final_status` records judged by
/// `Convergence`, and every reconfiguration submitted answered, the epoch of each `ok` reached.
public enum ConvergenceCheck {
    public static func verdict(_ folder: ResultsFolder, timings: [ReconfigurationTiming]) -> RunReport.Verdict {
        guard !folder.finalStates.isEmpty else {
            return .skipped("convergence", because: "not judged: events.jsonl has no final_status records (a run written before pbft run recorded where each replica ended); run the experiment again to judge it")
        }
        let inForce = networkFaultsAtEnd(folder.events)
        guard inForce.isEmpty else {
            return .skipped("convergence", because: "not judged: \(inForce.joined(separator: ", ")) still in force when the run ended; convergence is judged once every network fault has been healed")
        }
        let convergence = Convergence(folder.finalStates, byzantine: folder.byzantineReplicas)
        var problems = convergence.problems
        let newest = folder.finalStates.compactMap { state in
            state.status.flatMap { !$0.joining && !folder.byzantineReplicas.contains(state.replica) ? $0.epoch : nil }
        }.max() ?? 0
        for timing in timings {
            func at(_ t: Double) -> String { String(format: "%.2f s", t) }
            if timing.answer == nil {
                problems.append("'\(timing.change)' submitted at \(at(timing.submitted)) was never answered")
            } else if let epoch = timing.epoch, UInt64(epoch) > newest {
                problems.append("'\(timing.change)' was answered '\(timing.answer ?? "")', but the correct replicas ended in e\(newest)")
            }
        }
        var lines: [String] = []
        if problems.isEmpty {
            lines.append("\(convergence.judged.map { "r\($0)" }.joined(separator: ", ")) all in \(convergence.reached)")
        } else {
            lines.append(contentsOf: problems)
            if !convergence.judged.isEmpty { lines.append("newest: \(convergence.reached)") }
        }
        if !convergence.excluded.isEmpty { lines.append("not judged: " + convergence.excluded.joined(separator: ", ")) }
        if !timings.isEmpty { lines.append("\(timings.filter { $0.answer != nil }.count) of \(timings.count) reconfigurations answered") }
        if let settle = folder.events("settle").last, let waited = settle.fields["waited_s"].flatMap(Double.init) {
            lines.append(String(format: "the runner waited %.1f s after the load (settle_s %@)", waited, settle.fields["settle_s"] ?? "?"))
        }
        return RunReport.Verdict("convergence", passed: problems.isEmpty, detail: lines.joined(separator: "\n"))
    }

    /// Partitions and network faults still in force when the run ended: the network never
    /// became stable, so the replicas need not have converged.
    static func networkFaultsAtEnd(_ events: [ResultsFolder.Event]) -> [String] {
        var partition: String?
        var faults: [String: String] = [:]
        for event in events {
            switch event.kind {
            case "partition": partition = "partition " + (event.fields["groups"] ?? "?")
            case "fault":
                let key = "\(event.fields["scope"] ?? "?") \(event.fields["fault"] ?? "?")"
                if event.fields["value"].flatMap(Double.init) == 0 { faults[key] = nil } else {
                    faults[key] = "\(event.fields["fault"] ?? "?") \(event.fields["value"] ?? "") \(event.fields["scope"] ?? "")"
                }
            case "heal":
                partition = nil
                faults = [:]
            default: break
            }
        }
        return (partition.map { [$0] } ?? []) + faults.keys.sorted().map { faults[$0]! }
    }
}
