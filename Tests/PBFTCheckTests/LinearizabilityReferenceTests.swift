import PBFTCheck
import PBFTKeyValue
import PBFTTestSupport
import PBFTWire
import Testing

/// The definition, by brute force: some order of all completed operations and some of the
/// never-completed ones, respecting real time (an operation that completed before another
/// was invoked comes first), in which the real `KeyValueStore` returns what each completed
/// operation returned. No keys, no reductions: an oracle for small histories.
enum ReferenceChecker {
    static func isLinearizable(_ operations: [HistoryOperation]) -> Bool {
        precondition(operations.count <= 64, "the reference checker is for small histories")
        let all = UInt64.max >> (64 - operations.count)
        let completed = operations.indices.reduce(UInt64(0)) { operations[$1].completion != nil ? $0 | 1 << UInt64($1) : $0 }
        // Each operation's predecessors in real time, as a mask.
        let before = operations.map { o in
            operations.indices.reduce(UInt64(0)) { mask, p in
                (operations[p].completion?.seconds).map { $0 < o.invokeSeconds } ?? false ? mask | 1 << UInt64(p) : mask
            }
        }
        struct Configuration: Hashable {
            var placed: UInt64
            var store: KeyValueStore
        }
        var seen: Set<Configuration> = []
        func search(_ placed: UInt64, _ store: KeyValueStore) -> Bool {
            if placed & completed == completed { return true }
            guard seen.insert(Configuration(placed: placed, store: store)).inserted else { return false }
            for i in operations.indices where placed & 1 << UInt64(i) == 0 && before[i] & ~placed == 0 {
                var next = store
                let result = next.apply(operations[i].call.keyValueOperation)
                if let completion = operations[i].completion, HistoryOperation.Outcome(result) != completion.outcome { continue }
                if search(placed | 1 << UInt64(i), next) { return true }
            }
            return false
        }
        _ = all
        return search(0, KeyValueStore())
    }

    /// What must be linearized by time `cut`, and what may help: the completed operations
    /// completed by then; writes that completed later as never completed (linearized, they do
    /// what they did); operations that never completed.
    static func prefix(_ operations: [HistoryOperation], through cut: Double) -> [HistoryOperation] {
        operations.compactMap { operation in
            guard operation.invokeSeconds <= cut else { return nil }
            guard let completion = operation.completion, completion.seconds > cut else { return operation }
            switch (operation.call, completion.outcome) {
            case (.put, .ok), (.delete, .ok), (.compareAndSet, .ok):
                var pending = operation
                pending.completion = nil
                return pending
            default:
                return nil
            }
        }
    }
}

@Suite struct LinearizabilityReferenceTests {
    /// Small simulated histories, half of them with one result changed, some with many
    /// abandoned operations: the checker and the oracle agree on every one.
    @Test func agreesWithBruteForceOnSmallHistories() {
        var random = SplitMix64(seed: 20)
        var verdicts = (linearizable: 0, not: 0)
        for round in 0..<3000 {
            let parameters = SimulatedHistory.Parameters(
                clients: 2 + Int(random.next() % 3), keys: 1 + Int(random.next() % 2),
                operations: 4 + Int(random.next() % 9), abandonRate: [0, 0.1, 0.3][Int(random.next() % 3)], seed: UInt64(round)
            )
            var operations = SimulatedHistory(parameters).operations
            if random.chance(0.5) { Self.corrupt(&operations, &random) }
            let expected = ReferenceChecker.isLinearizable(operations)
            let result = checkLinearizability(operations)
            #expect(result.verdict == (expected ? .linearizable : .notLinearizable), "round \(round) (\(parameters)):\n\(History.encode(operations))\(result)")
            if expected { verdicts.linearizable += 1 } else { verdicts.not += 1 }
            // The operation named is where every order fails: its key's operations that
            // completed by then cannot all be linearized (given the later results too), and
            // those that completed before it can.
            if let violation = result.violations.first, let done = violation.operation.completion?.seconds {
                let mine = operations.filter { $0.key == violation.key }
                let before = mine.compactMap { $0.completion?.seconds }.filter { $0 < done }.max()
                #expect(!ReferenceChecker.isLinearizable(ReferenceChecker.prefix(mine, through: done)), "round \(round): \(violation)")
                if let before {
                    #expect(ReferenceChecker.isLinearizable(ReferenceChecker.prefix(mine, through: before)), "round \(round): \(violation)")
                }
            }
        }
        print("reference: \(verdicts.linearizable) linearizable and \(verdicts.not) not, all agreed")
        #expect(verdicts.linearizable > 500 && verdicts.not > 500)
    }

    /// One completed operation's result replaced by another plausible one: a value from the
    /// history, absent, or the other outcome of a compare-and-set.
    static func corrupt(_ operations: inout [HistoryOperation], _ random: inout SplitMix64) {
        let completed = operations.indices.filter { operations[$0].completion != nil }
        guard let victim = completed.randomElement(using: &random) else { return }
        var values: [String?] = [nil]
        for operation in operations {
            switch operation.call {
            case .put(_, let value): values.append(value)
            case .compareAndSet(_, _, let new): values.append(new)
            default: break
            }
        }
        let value = values.randomElement(using: &random) ?? nil
        let outcome: HistoryOperation.Outcome
        switch operations[victim].call {
        case .get: outcome = value.map(HistoryOperation.Outcome.value) ?? .notFound
        case .compareAndSet: outcome = random.chance(0.5) ? .ok : .mismatch(current: value)
        case .put, .delete:
            // A write's result is always ok; move it in time instead.
            let shift = (Double(random.next() % 100) / 1000) * (random.chance(0.5) ? 1 : -1)
            let invoke = max(0, operations[victim].invokeSeconds + shift)
            let length = (operations[victim].completion?.seconds ?? invoke) - operations[victim].invokeSeconds
            operations[victim].invokeSeconds = invoke
            operations[victim].completion?.seconds = invoke + length
            return
        }
        operations[victim].completion?.outcome = outcome
    }
}
