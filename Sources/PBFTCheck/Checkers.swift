/// The linearizability verdict of a results folder's history, for `Judge`.
public enum LinearizabilityVerdict {
    /// Reads the history at `path` and checks it within `budget`. An unreadable history or a
    /// budget that ran out is a failed verdict that says so: unchecked is not passed.
    public static func of(_ path: String, budget: LinearizabilityBudget = .standard) -> RunReport.Verdict {
        let operations: [HistoryOperation]
        do { operations = try History.read(path: path) } catch {
            return RunReport.Verdict("linearizability", passed: false, detail: "\(error)")
        }
        let result = checkLinearizability(operations, budget: budget)
        var lines = result.lines
        if lines.count > 30 { lines = Array(lines.prefix(30)) + ["(\(lines.count - 30) more lines in summary.json)"] }
        return RunReport.Verdict("linearizability", passed: result.verdict == .linearizable, detail: lines.joined(separator: "\n"))
    }
}
