/// The linearizability verdict of a results folder's history, for `Judge`.
public enum LinearizabilityVerdict {
    /// Checks the history within `budget`. A budget that ran out is a failed verdict that
    /// says so: unchecked is not passed.
    public static func of(_ operations: [HistoryOperation], budget: LinearizabilityBudget = .standard) -> RunReport.Verdict {
        let result = checkLinearizability(operations, budget: budget)
        var lines = result.lines
        if lines.count > 30 { lines = Array(lines.prefix(30)) + ["(\(lines.count - 30) more lines left out)"] }
        return RunReport.Verdict("linearizability", passed: result.verdict == .linearizable, detail: lines.joined(separator: "\n"))
    }
}
