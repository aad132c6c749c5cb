// Why one key's history fits no order, in words: the search says at which operation every
// order fails; this looks at the operations around it for the simplest reason that holds
// (a value nobody wrote, a value written only later, a stale read, a value seen then unseen)
// and lists the operations a reader needs to see it.

/// The explanation of a violation on one key.
struct ViolationExplanation {
    /// Operations listed with a violation, at most.
    static let listedOperationsMax = 24

    var explanation: String
    /// Indices into the key's operations, in order of invocation, the stuck one included.
    var listed: [Int]
    /// Operations concurrent with or just before the stuck one that did not fit in the list.
    var unlisted: Int

    /// `operations` are one key's; `stuck` is the operation at which every order failed.
    init(operations: [HistoryOperation], stuck: Int) {
        let reason = Reason(operations: operations, stuck: stuck)
        explanation = reason.text
        var chosen: [Int] = []
        var seen = Set<Int>()
        func add(_ index: Int) {
            if seen.insert(index).inserted { chosen.append(index) }
        }
        add(stuck)
        reason.witnesses.forEach(add)
        let predecessors = Self.predecessors(of: stuck, in: operations)
        predecessors.forEach(add)
        let windowStart = predecessors.map { operations[$0].invokeSeconds }.min() ?? operations[stuck].invokeSeconds
        Self.concurrent(with: stuck, in: operations, since: windowStart).forEach(add)
        listed = Array(chosen.prefix(Self.listedOperationsMax)).sorted {
            (operations[$0].invokeSeconds, $0) < (operations[$1].invokeSeconds, $1)
        }
        unlisted = chosen.count - listed.count
    }

    /// The completed operations immediately before `stuck` in real time: each finished before
    /// it began, and no other operation fits between them and it.
    static func predecessors(of stuck: Int, in operations: [HistoryOperation]) -> [Int] {
        let invoke = operations[stuck].invokeSeconds
        let before = operations.indices.filter { operations[$0].completion.map { $0.seconds < invoke } ?? false }
        guard let latestStart = before.map({ operations[$0].invokeSeconds }).max() else { return [] }
        return before.filter { (operations[$0].completion?.seconds ?? 0) >= latestStart }
    }

    /// Operations whose interval overlaps the stuck one's: completed ones first, then the
    /// writes that never completed and were invoked since `windowStart` (older ones overlap
    /// everything after them; a get that never completed constrains nothing).
    static func concurrent(with stuck: Int, in operations: [HistoryOperation], since windowStart: Double) -> [Int] {
        let x = operations[stuck]
        let end = x.completion?.seconds ?? .infinity
        let overlapping = operations.indices.filter { i in
            i != stuck && operations[i].invokeSeconds <= end && (operations[i].completion?.seconds ?? .infinity) >= x.invokeSeconds
        }
        let completed = overlapping.filter { operations[$0].completion != nil }
        let incomplete = overlapping.filter { i in
            if operations[i].completion != nil || operations[i].invokeSeconds < windowStart { return false }
            if case .get = operations[i].call { return false }
            return true
        }
        return completed + incomplete
    }
}

/// The reason found, with the operations it names.
private struct Reason {
    var text: String
    var witnesses: [Int] = []

    init(operations: [HistoryOperation], stuck: Int) {
        let x = operations[stuck]
        let key = HistoryOperation.display(x.key)
        let phrase = x.phrase
        guard let completion = x.completion else {
            text = "\(phrase) never completed, yet no order fits it"
            return
        }
        let generic = "\(phrase), but no order of it and the operations on \(key) concurrent with or just before it agrees with all their results"
        if let impossible = x.impossibility {
            text = "\(phrase), \(impossible)"
            return
        }
        guard let required = x.required else {
            text = generic
            return
        }
        let allWriters = operations.indices.filter { $0 != stuck && operations[$0].written == .some(required) }
        let writers = allWriters.filter { operations[$0].invokeSeconds <= completion.seconds }
        if let value = required {
            let shown = HistoryOperation.display(value)
            guard let earliest = allWriters.min(by: { operations[$0].invokeSeconds < operations[$1].invokeSeconds }) else {
                text = "\(phrase), but no operation on \(key) wrote \(shown)"
                return
            }
            guard !writers.isEmpty else {
                let writer = operations[earliest]
                text = "\(phrase) at \(completion.seconds), before \(writer.name) began to write \(shown) at \(writer.invokeSeconds)"
                witnesses = [earliest]
                return
            }
        }
        // When one operation alone writes the value, it took effect before any other operation
        // that saw the value returned, even if it never completed itself.
        func effectiveCompletion(_ writer: Int) -> Double {
            var done = operations[writer].completion?.seconds ?? .infinity
            guard required != nil, allWriters.count == 1 else { return done }
            for j in operations.indices where j != stuck && operations[j].required == .some(required) {
                done = min(done, operations[j].completion?.seconds ?? .infinity)
            }
            return done
        }
        let nothingWrote = required.map { "nothing wrote \(HistoryOperation.display($0))" } ?? "nothing deleted \(key)"

        // Every write of the required value had completed before some operation that left or
        // saw another value began, and that operation completed before the stuck one began:
        // the value had been replaced for good.
        let lastWrite = writers.map(effectiveCompletion).max() ?? -.infinity
        let candidates = operations.indices.filter { j in
            guard j != stuck, let done = operations[j].completion, done.seconds < x.invokeSeconds else { return false }
            guard let pinned = operations[j].pinned, pinned != required else { return false }
            return lastWrite < operations[j].invokeSeconds
        }
        let latestWriter = writers.max { effectiveCompletion($0) < effectiveCompletion($1) }
        func latest(_ indices: [Int]) -> Int? {
            indices.max { (operations[$0].completion?.seconds ?? 0, $0) < (operations[$1].completion?.seconds ?? 0, $1) }
        }
        if let w = latest(candidates.filter { operations[$0].isWrite }) {
            text = "\(phrase) but \(operations[w].writePhrase) completed before it was invoked and \(nothingWrote) in between"
            witnesses = [w] + (latestWriter.map { [$0] } ?? [])
            return
        }
        if let o = latest(candidates) {
            text = "\(phrase) but \(operations[o].phrase), which completed before it was invoked, and \(nothingWrote) after \(operations[o].name) began"
            witnesses = [o] + (latestWriter.map { [$0] } ?? [])
            return
        }
        text = generic
        witnesses = latestWriter.map { [$0] } ?? []
    }
}

private extension HistoryOperation {
    /// "get by c0#4 returned c1-5".
    var phrase: String {
        let key = HistoryOperation.display(call.key)
        guard let outcome = completion?.outcome else { return "\(call.name) by \(name)" }
        switch (call, outcome) {
        case (.get, .value(let value)): return "get by \(name) returned \(HistoryOperation.display(value))"
        case (.get, .notFound): return "get by \(name) returned not_found"
        case (.put(_, let value), .ok): return "put by \(name) of \(HistoryOperation.display(value))"
        case (.delete, .ok): return "delete by \(name)"
        case (.compareAndSet(_, let expected, _), .ok):
            return "cas by \(name) expected \(expected.map { HistoryOperation.display($0) } ?? "\(key) absent") and succeeded"
        case (.compareAndSet, .mismatch(let current)):
            return "cas by \(name) failed reporting \(current.map { "current \(HistoryOperation.display($0))" } ?? "\(key) absent")"
        default:
            return "\(call.name) by \(name) returned \(HistoryOperation.describe(outcome))"
        }
    }

    /// "c2#9 put c2-9", as the subject of "completed before it was invoked".
    var writePhrase: String {
        switch call {
        case .put(_, let value): "\(name) put \(HistoryOperation.display(value))"
        case .delete: "\(name) delete"
        case .compareAndSet(_, _, let new): "\(name) cas to \(HistoryOperation.display(new))"
        case .get: "\(name) get"
        }
    }

    /// Why the result alone is impossible, if it is.
    var impossibility: String? {
        guard let outcome = completion?.outcome else { return nil }
        switch (call, outcome) {
        case (.get, .value), (.get, .notFound), (.put, .ok), (.delete, .ok), (.compareAndSet, .ok): return nil
        case (.compareAndSet(_, let expected, _), .mismatch(let current)):
            return current == expected ? "which is the value it expected, so it should have succeeded" : nil
        default: return "which a \(call.name) never returns"
        }
    }

    /// The value (nil: absent) the key must hold just before a completed operation.
    var required: String?? {
        guard let outcome = completion?.outcome else { return nil }
        switch (call, outcome) {
        case (.get, .value(let value)): return .some(value)
        case (.get, .notFound): return .some(nil)
        case (.compareAndSet(_, let expected, _), .ok): return .some(expected)
        case (.compareAndSet(_, let expected, _), .mismatch(let current)) where current != expected: return .some(current)
        default: return nil
        }
    }

    /// The value (nil: absent) an operation may have written; nil if it writes nothing.
    var written: String?? {
        let applied = completion.map { $0.outcome == .ok } ?? true
        switch call {
        case .put(_, let value): return .some(value)
        case .delete: return .some(nil)
        case .compareAndSet(_, _, let new): return applied ? .some(new) : nil
        case .get: return nil
        }
    }

    /// The value (nil: absent) the key held just after a completed operation.
    var pinned: String?? {
        guard impossibility == nil, let outcome = completion?.outcome else { return nil }
        switch (call, outcome) {
        case (.put(_, let value), _): return .some(value)
        case (.delete, _): return .some(nil)
        case (.compareAndSet(_, _, let new), .ok): return .some(new)
        default: return required
        }
    }

    var isWrite: Bool {
        guard let outcome = completion?.outcome else { return false }
        switch call {
        case .put, .delete: return true
        case .compareAndSet: return outcome == .ok
        case .get: return false
        }
    }
}
