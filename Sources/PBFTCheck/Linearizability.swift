// Is the client history of a run linearizable? Every operation touches one key, and
// linearizability is compositional (Herlihy & Wing 1990, "locality"; Horn & Kroening call its
// use in checking P-compositionality): the history is linearizable if and only if each key's
// sub-history is. So each key is searched on its own (LinearizabilitySearch.swift), smallest
// first, sharing one time and memory budget, and a violation on one key does not stop the
// others from being checked.

/// What the linearizability check may spend.
public struct LinearizabilityBudget: Hashable, Sendable {
    /// Wall-clock time for the whole check, all keys together.
    public var time: Duration
    /// Bytes the searches' caches of configurations may hold at once, all keys together. A
    /// key whose search would need more is left unfinished (verdict unknown).
    public var memoryBytes: Int

    public init(time: Duration = .seconds(10), memoryBytes: Int = 512 << 20) {
        self.time = time
        self.memoryBytes = memoryBytes
    }

    /// 10 s and 512 MiB.
    public static let standard = LinearizabilityBudget()
}

/// One key whose history fits no sequential order.
public struct LinearizabilityViolation: Hashable, Sendable, CustomStringConvertible {
    public var key: String
    /// The operation at which every order fails: the first, by completion, that no order can
    /// linearize together with all that completed before it.
    public var operation: HistoryOperation
    /// The operations that cannot be ordered together, by invocation: `operation`, the ones
    /// the explanation names, and the ones concurrent with or immediately before it.
    public var operations: [HistoryOperation]
    /// Concurrent or preceding operations left out of `operations` to keep it short.
    public var unlistedCount: Int
    /// One line, e.g. "get by c0#4 returned c1-5 but c2#9 put c2-9 completed before it was
    /// invoked and nothing wrote c1-5 in between".
    public var explanation: String

    public init(key: String, operation: HistoryOperation, operations: [HistoryOperation], unlistedCount: Int, explanation: String) {
        self.key = key
        self.operation = operation
        self.operations = operations
        self.unlistedCount = unlistedCount
        self.explanation = explanation
    }

    /// The explanation, then one line per operation; the one where every order fails is
    /// marked with `>`.
    public var lines: [String] {
        var lines = ["key \(HistoryOperation.display(key)): \(explanation)"]
        for listed in operations {
            let isStuck = listed.client == operation.client && listed.seq == operation.seq
            lines.append((isStuck ? "> " : "  ") + listed.description)
        }
        if unlistedCount > 0 { lines.append("  (\(unlistedCount) more concurrent operations not listed)") }
        return lines
    }

    public var description: String { lines.joined(separator: "\n") }
}

/// The verdict on a history, with the evidence.
public struct LinearizabilityResult: Hashable, Sendable, CustomStringConvertible {
    public enum Verdict: String, Hashable, Sendable {
        case linearizable
        case notLinearizable = "not linearizable"
        /// Some key was not finished within the budget, and no key has a violation.
        case unknown
    }

    /// A key the budget did not allow to finish.
    public struct UnfinishedKey: Hashable, Sendable {
        public enum Reason: String, Hashable, Sendable {
            case time = "out of time"
            case memory = "out of memory"
        }

        public var key: String
        public var operationCount: Int
        public var reason: Reason
    }

    /// By key, in the order the keys were checked (fewest operations first); the first is
    /// the one the summary names.
    public var violations: [LinearizabilityViolation]
    public var unfinished: [UnfinishedKey]
    public var keyCount: Int
    public var operationCount: Int
    public var elapsed: Duration
    public var budget: LinearizabilityBudget

    /// A violation is certain whatever the unfinished keys hold.
    public var verdict: Verdict {
        if !violations.isEmpty { return .notLinearizable }
        return unfinished.isEmpty ? .linearizable : .unknown
    }

    /// One line: the verdict, and the first violation or the unfinished keys.
    public var summary: String {
        let checked = "\(operationCount) operations on \(keyCount) keys in \(Self.seconds(elapsed)) s"
        switch verdict {
        case .linearizable:
            return "linearizable: \(checked)"
        case .notLinearizable:
            let first = violations[0]
            var text = "not linearizable: key \(HistoryOperation.display(first.key)): \(first.explanation)"
            if violations.count > 1 { text += " (and \(violations.count - 1) more keys with violations)" }
            if !unfinished.isEmpty { text += " (\(unfinished.count) keys not finished)" }
            return text
        case .unknown:
            let shown = unfinished.prefix(5).map { "\(HistoryOperation.display($0.key)) (\($0.operationCount) operations, \($0.reason.rawValue))" }
            let more = unfinished.count > shown.count ? " and \(unfinished.count - shown.count) more" : ""
            return "unknown: \(unfinished.count) of \(keyCount) keys not finished within \(Self.seconds(budget.time)) s and \(budget.memoryBytes >> 20) MiB: "
                + shown.joined(separator: ", ") + more + "; the other keys are linearizable"
        }
    }

    /// The summary, each violation's lines, then each unfinished key.
    public var lines: [String] {
        var lines = [summary]
        for violation in violations { lines += violation.lines }
        for key in unfinished {
            lines.append("key \(HistoryOperation.display(key.key)): not finished (\(key.reason.rawValue)), \(key.operationCount) operations")
        }
        return lines
    }

    public var description: String { lines.joined(separator: "\n") }

    /// "1.234": seconds with milliseconds.
    static func seconds(_ duration: Duration) -> String {
        let (whole, atto) = duration.components
        let milliseconds = whole.multipliedReportingOverflow(by: 1000)
        guard !milliseconds.overflow else { return "\(whole)" }
        let total = milliseconds.partialValue + (atto + 500_000_000_000_000) / 1_000_000_000_000_000
        let fraction = String(abs(total % 1000))
        return "\(total / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}

/// Checks that `operations` — a run's client history — is linearizable with respect to the
/// key-value store's semantics (`KeyValueStore.apply`): there is one sequential order of the
/// completed operations, and of any subset of the never-completed ones, that respects real
/// time (an operation that completed before another was invoked comes first) and in which
/// every operation returns what it returned. A never-completed operation may take effect at
/// any time after its invocation, or never.
///
/// Each key is checked on its own (P-compositionality), smallest first; in a first pass each
/// gets an equal share of the time left, then unfinished keys continue in turn with all the
/// time left. A key that runs out of time or memory is reported unfinished; keys with
/// violations are all reported. Operations with impossible times (not finite, or completed
/// before invoked) are reported as violations of their key without a search.
public func checkLinearizability(_ operations: [HistoryOperation], budget: LinearizabilityBudget = .standard) -> LinearizabilityResult {
    let clock = ContinuousClock()
    let start = clock.now
    // A budget beyond a century is a century; a negative one is none.
    let time = min(max(budget.time, .zero), .seconds(3_155_760_000))
    let deadline = start + time

    var byKey: [String: [HistoryOperation]] = [:]
    for operation in operations { byKey[operation.key, default: []].append(operation) }
    let keys = byKey.map { (key: $0.key, operations: $0.value) }.sorted { ($0.operations.count, $0.key) < ($1.operations.count, $1.key) }

    var violations: [(order: Int, violation: LinearizabilityViolation)] = []
    var unfinished: [(order: Int, key: LinearizabilityResult.UnfinishedKey)] = []
    var paused: [(order: Int, search: LinearizabilitySearch)] = []
    var pausedBytes = 0

    func record(_ outcome: LinearizabilitySearch.Outcome, order: Int, search: LinearizabilitySearch, final: Bool) {
        let key = keys[order]
        switch outcome {
        case .linearizable:
            break
        case .violation(let reached, let bound):
            let stuck = LinearizabilitySearch.firstFailingOperation(
                key.operations, reached: reached, bound: bound, deadline: deadline,
                memoryBytesMax: budget.memoryBytes - pausedBytes - search.memoryBytes
            )
            violations.append((order, LinearizabilityViolation(key: key.key, operations: key.operations, stuck: stuck)))
        case .outOfMemory:
            unfinished.append((order, .init(key: key.key, operationCount: key.operations.count, reason: .memory)))
        case .outOfTime where final:
            unfinished.append((order, .init(key: key.key, operationCount: key.operations.count, reason: .time)))
        case .outOfTime:
            paused.append((order, search))
            pausedBytes += search.memoryBytes
        }
    }

    for (order, key) in keys.enumerated() {
        if let (stuck, reason) = impossibleTimes(key.operations) {
            violations.append((order, LinearizabilityViolation(key: key.key, operations: key.operations, stuck: stuck, explanation: reason)))
            continue
        }
        let now = clock.now
        let share = now < deadline ? (deadline - now) / (keys.count - order) : .zero
        var search = LinearizabilitySearch(key.operations)
        let outcome = search.run(until: now + share, memoryBytesMax: budget.memoryBytes - pausedBytes)
        record(outcome, order: order, search: search, final: false)
    }
    let second = paused
    paused = []
    for (order, search) in second {
        var search = search
        pausedBytes -= search.memoryBytes
        let outcome = search.run(until: deadline, memoryBytesMax: budget.memoryBytes - pausedBytes)
        record(outcome, order: order, search: search, final: true)
    }

    return LinearizabilityResult(
        violations: violations.sorted { $0.order < $1.order }.map(\.violation),
        unfinished: unfinished.sorted { $0.order < $1.order }.map(\.key),
        keyCount: keys.count,
        operationCount: operations.count,
        elapsed: clock.now - start,
        budget: budget
    )
}

/// The first operation whose times cannot be real, with the reason.
private func impossibleTimes(_ operations: [HistoryOperation]) -> (Int, String)? {
    for (index, operation) in operations.enumerated() {
        guard operation.invokeSeconds.isFinite else {
            return (index, "\(operation.name) was invoked at \(operation.invokeSeconds), which is not a time")
        }
        guard let completion = operation.completion else { continue }
        guard completion.seconds.isFinite else {
            return (index, "\(operation.name) completed at \(completion.seconds), which is not a time")
        }
        guard completion.seconds >= operation.invokeSeconds else {
            return (index, "\(operation.name) completed at \(completion.seconds), before its invocation at \(operation.invokeSeconds)")
        }
    }
    return nil
}

extension LinearizabilityViolation {
    /// The violation found at `stuck` (an index into the key's operations), explained.
    init(key: String, operations: [HistoryOperation], stuck: Int, explanation: String? = nil) {
        let found = ViolationExplanation(operations: operations, stuck: stuck)
        self.init(
            key: key, operation: operations[stuck], operations: found.listed.map { operations[$0] },
            unlistedCount: found.unlisted, explanation: explanation ?? found.explanation
        )
    }
}
