import Foundation

/// Judges a results folder: runs every checker, and writes `metrics.csv`, `summary.json`
/// and `report.html` into it. `pbft run` calls it after the run; `pbft check` calls it on
/// any results folder, again and again: it reads only files.
public enum Judge {
    /// Fault intervals from the event log: each fault from its event to the event that ends
    /// it (or the end of the run), and the time the last one ended (0 when there was none;
    /// the end of the run when one never ended).
    public static func faultIntervals(_ events: [ResultsFolder.Event], end: Double) -> (intervals: [RunReport.FaultInterval], lastHeal: Double) {
        var open: [String: (label: String, start: Double)] = [:]
        var intervals: [RunReport.FaultInterval] = []
        func close(_ key: String, at time: Double) {
            if let fault = open.removeValue(forKey: key) { intervals.append(RunReport.FaultInterval(fault.label, start: fault.start, end: time)) }
        }
        for event in events where event.time >= 0 || ["kill", "pause", "stop", "partition", "fault", "byzantine", "twin"].contains(event.kind) {
            let t = max(0, event.time)
            let replica = event.fields["replica"].map { "r\($0)" } ?? "?"
            switch event.kind {
            case "kill", "stop":
                close("down \(replica)", at: t)
                open["down \(replica)"] = ("\(event.kind) \(replica)", t)
            case "pause": open["down \(replica)"] = ("pause \(replica)", t)
            case "resume": close("down \(replica)", at: t)
            case "start" where event.int("start").map({ $0 > 1 }) ?? false: close("down \(replica)", at: t)
            case "exited":
                if event.fields["twin"] == nil { open["down \(replica)"] = ("\(replica) exited", t) }
            case "partition":
                close("partition", at: t)
                open["partition"] = ("partition " + (event.fields["groups"] ?? "?"), t)
            case "fault":
                let key = "net \(event.fields["scope"] ?? "?") \(event.fields["fault"] ?? "?")"
                close(key, at: t)
                if event.fields["value"].flatMap(Double.init) != 0 {
                    open[key] = ("\(event.fields["fault"] ?? "?") \(event.fields["value"] ?? "") \(event.fields["scope"] ?? "")", t)
                }
            case "heal":
                for key in open.keys where key == "partition" || key.hasPrefix("net ") { close(key, at: t) }
            case "byzantine":
                close("byzantine \(replica)", at: t)
                if event.fields["mode"] != "off" { open["byzantine \(replica)"] = ("byzantine \(replica) \(event.fields["mode"] ?? "?")", t) }
            case "twin": open["twin \(replica)"] = ("twin of \(replica)", t)
            case "twin_stopped": close("twin \(replica)", at: t)
            default: break
            }
        }
        let lastClosed = intervals.compactMap(\.end).max() ?? 0
        for fault in open.values.sorted(by: { $0.start < $1.start }) { intervals.append(RunReport.FaultInterval(fault.label, start: fault.start, end: nil)) }
        // A fault still in force at the end: liveness is judged from the end (nothing after it).
        let lastHeal = open.isEmpty ? lastClosed : end
        return (intervals.sorted { $0.start < $1.start }, lastHeal)
    }

    /// Per-second throughput and latency by completion time, and the view in force.
    public static func metrics(_ operations: [(invoked: Double, completed: Double?)], views: [RunReport.ViewMark], duration: Double) -> [RunReport.SecondMetrics] {
        let seconds = max(1, Int(duration.rounded(.up)))
        var latencies = [[Double]](repeating: [], count: seconds)
        for op in operations {
            guard let completed = op.completed else { continue }
            latencies[min(seconds - 1, max(0, Int(completed)))].append((completed - op.invoked) * 1000)
        }
        return (0..<seconds).map { s in
            let sorted = latencies[s].sorted()
            func percentile(_ p: Double) -> Double? { sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            let view = views.last { $0.time <= Double(s + 1) }?.view ?? 0
            return RunReport.SecondMetrics(second: s, completed: sorted.count, latencyP50Ms: percentile(0.5), latencyP99Ms: percentile(0.99), latencyMaxMs: sorted.last, view: view)
        }
    }

    /// Runs the checkers and writes metrics.csv, summary.json and report.html. Returns the report.
    @discardableResult
    public static func judge(_ path: String) throws -> RunReport {
        let folder = try ResultsFolder.open(path)
        // Read once: the linearizability checker and the timing checks share it.
        let history: [HistoryOperation]
        do { history = try History.read(path: path + "/history.jsonl") } catch { throw CheckError(error.description) }
        let operations = history.map { Timed(client: Int($0.client.rawValue), invoked: $0.invokeSeconds, completed: $0.completion?.seconds) }
        let end = max(folder.durationSeconds, operations.compactMap(\.completed).max() ?? 0)
        let (intervals, lastHeal) = faultIntervals(folder.events, end: end)
        // Views restart at 0 in each epoch: a new epoch is marked as its view 0, led by its first member.
        let views = folder.events.compactMap { event -> RunReport.ViewMark? in
            switch event.kind {
            case "view_change":
                return RunReport.ViewMark(time: event.time, view: event.int("view") ?? 0, primary: event.int("primary").flatMap { $0 >= 0 ? $0 : nil },
                                          epoch: event.int("epoch").flatMap { $0 > 0 ? $0 : nil })
            case "epoch":
                let first = event.fields["members"]?.split(separator: ",").compactMap { Int($0) }.min()
                return RunReport.ViewMark(time: event.time, view: 0, primary: first, epoch: event.int("epoch"))
            default:
                return nil
            }
        }
        let timeline = folder.events.filter { ["step", "budget_refused", "exited", "step_not_fired", "epoch", "replica_added", "replica_retired", "replica_abandoned"].contains($0.kind) }.map {
            RunReport.TimelineEvent(time: max(0, $0.time), timelineLabel($0))
        }
        var logs: [Int: ExecutionRecord] = [:]
        for replica in folder.correctReplicas { logs[replica] = try ExecutionRecord.read(folder.executionLogPath(replica)) }
        var invoked: [Int: Int] = [:]
        for op in operations { invoked[op.client, default: 0] += 1 }
        let reconfigurations = EpochCheck.timings(folder, completions: operations.compactMap(\.completed))
        let verdicts = [
            ResultsCheck.agreement(logs),
            ResultsCheck.integrity(logs, invokedPerClient: invoked, operatorSubmitted: folder.events("reconfiguration_submitted").count),
            ResultsCheck.checkpoints(logs),
            EpochCheck.verdict(logs, timings: reconfigurations),
            LinearizabilityVerdict.of(history),
            ResultsCheck.liveness(operations.map { ($0.invoked, $0.completed) }, lastHeal: lastHeal, duration: folder.durationSeconds, bound: folder.livenessBoundSeconds),
            ConvergenceCheck.verdict(folder, timings: reconfigurations),
            EvidenceCheck.verdict(folder),
        ]
        let seconds = metrics(operations.map { ($0.invoked, $0.completed) }, views: views, duration: end)
        let report = RunReport(
            name: folder.name, purpose: folder.purpose, seed: folder.seed, version: folder.version, started: folder.started,
            durationSeconds: end, cluster: folder.settings, seconds: seconds, faults: intervals, viewChanges: views,
            events: timeline, verdicts: verdicts)
        try writeMetrics(seconds, to: path + "/metrics.csv")
        try writeSummary(report, operations: operations, reconfigurations: reconfigurations, to: path + "/summary.json")
        try ReportRenderer.html(report).write(toFile: path + "/report.html", atomically: true, encoding: .utf8)
        return report
    }

    struct Timed {
        let client: Int
        let invoked: Double
        let completed: Double?
    }

    static func writeMetrics(_ seconds: [RunReport.SecondMetrics], to path: String) throws {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "" }
        var csv = "second,completed,latency_p50_ms,latency_p99_ms,latency_max_ms,view\n"
        for s in seconds { csv += "\(s.second),\(s.completed),\(f(s.latencyP50Ms)),\(f(s.latencyP99Ms)),\(f(s.latencyMaxMs)),\(s.view.map { "\($0)" } ?? "")\n" }
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A line of the report's event list for one event.
    static func timelineLabel(_ event: ResultsFolder.Event) -> String {
        let replica = event.fields["replica"].map { "r\($0)" } ?? ""
        switch event.kind {
        case "step":
            return (event.fields["step"] ?? "?") + ((event.fields["accepted"] == "0" || event.fields["accepted"] == "false") ? " (refused)" : "")
        case "epoch":
            return "epoch e\(event.fields["epoch"] ?? "?") (n = \(event.fields["n"] ?? "?"), f = \(event.fields["f"] ?? "?")) from sequence \(event.fields["first_sequence"] ?? "?")"
        case "replica_added": return "\(replica) started to join e\(event.fields["epoch"] ?? "?")"
        case "replica_retired": return "\(replica) retired"
        case "replica_abandoned": return "\(replica) abandoned"
        default: return "\(event.kind) \(event.fields["step"] ?? replica)"
        }
    }

    static func writeSummary(_ report: RunReport, operations: [Timed], reconfigurations: [ReconfigurationTiming], to path: String) throws {
        func optional(_ x: Double?) -> Any { x.map { $0 as Any } ?? NSNull() }
        let object: [String: Any] = [
            "name": report.name, "seed": report.seed, "version": report.version, "passed": report.passed,
            "operations": operations.count, "completed": operations.filter { $0.completed != nil }.count,
            "duration_s": report.durationSeconds,
            "longest_gap_s": ResultsCheck.longestGap(operations.map { ($0.invoked, $0.completed) }).map { $0.length as Any } ?? NSNull(),
            "verdicts": report.verdicts.map { ["name": $0.name, "passed": $0.passed, "skipped": $0.skipped, "detail": $0.detail] },
            "faults": report.faults.map { ["label": $0.label, "start": $0.start, "end": $0.end.map { $0 as Any } ?? NSNull()] },
            "view_changes": report.viewChanges.map { ["time": $0.time, "view": $0.view, "primary": $0.primary.map { $0 as Any } ?? NSNull(), "epoch": $0.epoch.map { $0 as Any } ?? NSNull()] },
            "reconfigurations": reconfigurations.map { r -> [String: Any] in
                [
                    "change": r.change, "submitted": r.submitted, "answer": r.answer.map { $0 as Any } ?? NSNull(), "answered": optional(r.answered),
                    "epoch": r.epoch.map { $0 as Any } ?? NSNull(), "began": optional(r.began), "first_sequence": r.firstSequence.map { $0 as Any } ?? NSNull(),
                    "first_operation": optional(r.firstOperation), "to_serving_s": optional(r.toServing), "longest_gap_s": optional(r.longestGap),
                ]
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
