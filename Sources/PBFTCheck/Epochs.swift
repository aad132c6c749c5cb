import Foundation

/// One reconfiguration of a run, from the event log, and how long the service took to follow
/// it. Times are load times (seconds since the load started).
public struct ReconfigurationTiming: Sendable, Equatable {
    /// What was asked, e.g. "add replica 4 at 127.0.0.1:23456".
    public let change: String
    public let submitted: Double
    /// The replicas' answer ("ok: e1 (n = 5, f = 1) starts after sequence 96", "error: ..."),
    /// nil when none came.
    public let answer: String?
    public let answered: Double?
    /// The epoch an "ok" answer decided.
    public let epoch: Int?
    /// When the launcher first saw a member of that epoch in it, and its first sequence number.
    public let began: Double?
    public let firstSequence: Int?
    /// The first client operation that completed in that epoch (a client's first completion
    /// after it followed the replicas into it).
    public let firstOperation: Double?
    /// The longest time without any completed operation from the submission to `firstOperation`.
    public let longestGap: Double?

    public init(change: String, submitted: Double, answer: String?, answered: Double?, epoch: Int?, began: Double?, firstSequence: Int?, firstOperation: Double?, longestGap: Double?) {
        self.change = change
        self.submitted = submitted
        self.answer = answer
        self.answered = answered
        self.epoch = epoch
        self.began = began
        self.firstSequence = firstSequence
        self.firstOperation = firstOperation
        self.longestGap = longestGap
    }

    /// From submitting to the new epoch serving: the first operation completed in it.
    public var toServing: Double? { firstOperation.map { $0 - submitted } }

    var summary: String {
        func s(_ x: Double?) -> String { x.map { String(format: "%.2f s", $0) } ?? "?" }
        guard let answer, let answered else { return "'\(change)' at \(s(submitted)): no answer" }
        var line = "'\(change)' at \(s(submitted)): answered in \(s(answered - submitted)) (\(answer))"
        if let epoch {
            line += began.map { "; e\(epoch) began \(s($0 - submitted)) after submitting" } ?? "; e\(epoch) never began"
            line += toServing.map { "; first operation in e\(epoch) \(s($0)) after submitting, longest gap in service \(s(longestGap))" } ?? "; no operation completed in e\(epoch)"
        }
        return line
    }
}

/// The epochs verdict: every replica that entered an epoch entered it at the same first
/// sequence number with the same members, and every epoch a reconfiguration decided began.
public enum EpochCheck {
    /// The run's reconfigurations, paired with their answers and what followed, from the
    /// launcher's events (`reconfiguration_submitted`, `reconfiguration_answered`, `epoch`),
    /// the runner's `client_epoch` events and the completion times of the history.
    public static func timings(_ folder: ResultsFolder, completions: [Double]) -> [ReconfigurationTiming] {
        let sorted = completions.sorted()
        var timings: [ReconfigurationTiming] = []
        var answers = folder.events("reconfiguration_answered")[...]
        for submitted in folder.events("reconfiguration_submitted") {
            let change = submitted.fields["change"] ?? "?"
            let reply = answers.first { $0.fields["change"] == change && $0.time >= submitted.time }
            if let reply, let index = answers.firstIndex(where: { $0.time == reply.time && $0.fields == reply.fields }) { answers.remove(at: index) }
            let answer = reply.flatMap { $0.fields["timed_out"] == nil ? $0.fields["answer"] : nil }
            let epoch = answer.flatMap { $0.firstMatch(of: /^ok: e(\d+)/).flatMap { Int($0.1) } }
            let began = epoch.flatMap { e in folder.events("epoch").first { $0.int("epoch") == e } }
            let first = epoch.flatMap { e in
                folder.events("client_epoch").filter { ($0.int("epoch") ?? -1) >= e }.compactMap { $0.fields["t"].flatMap(Double.init) }
                    .filter { $0 >= submitted.time }.min()
            }
            var gap: Double?
            if let first {
                let inside = [submitted.time] + sorted.filter { $0 > submitted.time && $0 < first } + [first]
                gap = zip(inside, inside.dropFirst()).map { $1 - $0 }.max()
            }
            timings.append(ReconfigurationTiming(
                change: change, submitted: submitted.time, answer: answer, answered: answer == nil ? nil : reply?.time, epoch: epoch,
                began: began?.time, firstSequence: began?.int("first_sequence"), firstOperation: first, longestGap: gap))
        }
        return timings
    }

    public static func verdict(_ logs: [Int: ExecutionRecord], timings: [ReconfigurationTiming]) -> RunReport.Verdict {
        var problems: [String] = []
        var lines: [String] = []
        var entered: [UInt64: [ExecutionRecord.EpochEntry: [Int]]] = [:]
        for (id, log) in logs.sorted(by: { $0.key < $1.key }) {
            for epoch in log.epochsDiffering { problems.append("r\(id) recorded entering e\(epoch) twice, differently") }
            for (epoch, entry) in log.epochs { entered[epoch, default: [:]][entry, default: []].append(id) }
        }
        for (epoch, byEntry) in entered.sorted(by: { $0.key < $1.key }) {
            let variants = byEntry.sorted { $0.value.first ?? 0 < $1.value.first ?? 0 }
            let described = variants.map { "\($0.key.description) by \($0.value.map { "r\($0)" }.joined(separator: ", "))" }
            if variants.count > 1 {
                problems.append("e\(epoch) was entered differently: " + described.joined(separator: "; vs "))
            } else {
                lines.append("e\(epoch) " + described[0].replacingOccurrences(of: ") by ", with: "): entered by "))
            }
        }
        for timing in timings {
            if let epoch = timing.epoch, entered[UInt64(epoch)] == nil {
                problems.append("'\(timing.change)' was answered '\(timing.answer ?? "")', but no replica's execution log shows e\(epoch) beginning")
            }
            lines.append(timing.summary)
        }
        if entered.isEmpty, timings.isEmpty { lines.append("no reconfiguration: every replica stayed in its first epoch") }
        return RunReport.Verdict("epochs", passed: problems.isEmpty, detail: (problems + lines).joined(separator: "\n"))
    }
}
