import PBFTCheck
import PBFTKeyValue
import PBFTTestSupport
import PBFTWire
import Testing

/// A client history of a simulated store, linearizable by construction: `clients` clients
/// each run one operation at a time on a few keys; each operation takes effect on a real
/// `KeyValueStore` at a random instant between its invocation and its completion, and returns
/// what the store answered. Some operations are abandoned (the client gives up after a
/// timeout and goes on): those take effect later, or never.
struct SimulatedHistory {
    struct Parameters: CustomStringConvertible {
        var clients = 8
        var keys = 4
        var operations = 10_000
        /// Probability that a client gives up on an operation.
        var abandonRate = 0.01
        var seed: UInt64 = 1

        var description: String { "\(clients) clients, \(keys) keys, seed \(seed)" }
    }

    var operations: [HistoryOperation] = []
    /// For each operation that took effect, the key's value just before (nil: absent).
    var before: [Int: String?] = [:]
    /// What each operation that took effect returned, even if its client never heard.
    var effectResults: [Int: KeyValueResult] = [:]

    init(_ parameters: Parameters) {
        var random = SplitMix64(seed: parameters.seed)
        func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        let timeoutSeconds = 0.5

        enum Kind: Int { case effect = 0, completion = 1, invocation = 2 }
        struct Event {
            var seconds: Double
            var kind: Kind
            /// An operation's index, or for an invocation the client.
            var subject: Int
        }
        var store = KeyValueStore()
        var events = (0..<parameters.clients).map { Event(seconds: uniform() * 0.01, kind: .invocation, subject: $0) }
        var completions: [Int: Double] = [:]
        var seqs = [UInt64](repeating: 0, count: parameters.clients)
        var lastSeen = [[String: String?]](repeating: [:], count: parameters.clients)
        var recent: [String: [String]] = [:]

        while let next = events.indices.min(by: { (events[$0].seconds, events[$0].kind.rawValue) < (events[$1].seconds, events[$1].kind.rawValue) }) {
            let event = events.remove(at: next)
            switch event.kind {
            case .effect:
                let call = operations[event.subject].call
                before[event.subject] = store[Array(call.key.utf8)].map { String(decoding: $0, as: UTF8.self) }
                effectResults[event.subject] = store.apply(call.keyValueOperation)
            case .completion:
                let index = event.subject
                guard let result = effectResults[index], let outcome = HistoryOperation.Outcome(result) else { continue }
                operations[index].completion = .init(seconds: event.seconds, outcome: outcome)
                let client = Int(operations[index].client.rawValue)
                let key = operations[index].key
                switch (operations[index].call, outcome) {
                case (_, .value(let value)): lastSeen[client][key] = .some(value)
                case (_, .notFound), (.delete, _): lastSeen[client][key] = .some(nil)
                case (.put(_, let value), _): lastSeen[client][key] = .some(value)
                case (.compareAndSet(_, _, let new), .ok): lastSeen[client][key] = .some(new)
                case (_, .mismatch(let current)): lastSeen[client][key] = .some(current)
                default: break
                }
                let think = random.chance(0.5) ? 0 : uniform() * 0.005
                events.append(Event(seconds: event.seconds + think, kind: .invocation, subject: client))
            case .invocation:
                guard operations.count < parameters.operations else { continue }
                let client = event.subject
                seqs[client] += 1
                let key = "k\(random.next() % UInt64(parameters.keys))"
                let value = "c\(client)-\(seqs[client])"
                let call: HistoryOperation.Call
                switch random.next() % 20 {
                case 0..<8: call = .get(key: key)
                case 8..<14: call = .put(key: key, value: value); recent[key, default: []].append(value)
                case 14..<16: call = .delete(key: key)
                default:
                    let expected: String? = switch random.next() % 20 {
                    case 0..<12: lastSeen[client][key] ?? nil
                    case 12..<17: recent[key]?.suffix(4).randomElement(using: &random)
                    default: nil
                    }
                    call = .compareAndSet(key: key, expected: expected, new: value)
                    recent[key, default: []].append(value)
                }
                let index = operations.count
                operations.append(HistoryOperation(client: ClientID(UInt32(client)), seq: seqs[client], call: call, invokeSeconds: event.seconds, completion: nil))
                // Mostly quick; some slow; a few stall as if through a view change.
                let latency = random.chance(0.01) ? 0.2 + uniform() * 0.8 : random.chance(0.1) ? 0.01 + uniform() * 0.09 : 0.001 + uniform() * 0.009
                if random.chance(parameters.abandonRate) {
                    if random.chance(0.5) {
                        events.append(Event(seconds: event.seconds + uniform() * 2 * timeoutSeconds, kind: .effect, subject: index))
                    }
                    events.append(Event(seconds: event.seconds + timeoutSeconds, kind: .invocation, subject: client))
                } else {
                    events.append(Event(seconds: event.seconds + uniform() * latency, kind: .effect, subject: index))
                    events.append(Event(seconds: event.seconds + latency, kind: .completion, subject: index))
                    completions[index] = event.seconds + latency
                }
            }
        }
    }
}

/// Checks `operations`, prints the time as the brief asks, and expects the bound.
func timedCheck(_ operations: [HistoryOperation], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> LinearizabilityResult {
    let clock = ContinuousClock()
    let start = clock.now
    let result = checkLinearizability(operations, budget: .init(time: .seconds(60)))
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let count = operations.count.withThousandsSeparators
    print("linearizability: \(count) operations checked in \((seconds * 1000).rounded() / 1000) s (\(what))")
    #expect(elapsed < .seconds(30), "\(what): \(seconds) s", sourceLocation: sourceLocation)
    return result
}

extension Int {
    /// "10,000".
    var withThousandsSeparators: String {
        let digits = Array(String(self))
        var out = ""
        for (i, digit) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return out
    }
}

@Suite(.serialized) struct LinearizabilityGeneratedTests {
    static let good: [SimulatedHistory.Parameters] = [
        .init(clients: 8, keys: 4, abandonRate: 0.01, seed: 1),
        .init(clients: 16, keys: 2, abandonRate: 0.02, seed: 2),
        .init(clients: 6, keys: 1, abandonRate: 0.01, seed: 3),
    ]

    /// The generator exercises everything the checker must handle.
    @Test func theGeneratorMakesAContendedMixedHistory() {
        let history = SimulatedHistory(Self.good[0])
        let operations = history.operations
        #expect(operations.count == 10_000)
        func count(_ predicate: (HistoryOperation) -> Bool) -> Int { operations.filter(predicate).count }
        let casOk = count { if case .compareAndSet = $0.call { $0.completion?.outcome == .ok } else { false } }
        let casMismatch = count { if case .mismatch = $0.completion?.outcome { true } else { false } }
        let notFound = count { $0.completion?.outcome == .notFound }
        let values = count { if case .value = $0.completion?.outcome { true } else { false } }
        let deletes = count { if case .delete = $0.call { true } else { false } }
        let incomplete = count { $0.completion == nil }
        let tookEffectUnheard = operations.indices.filter { operations[$0].completion == nil && history.effectResults[$0] != nil }.count
        print("generated: \(values) values read, \(notFound) not_found, \(casOk) cas ok, \(casMismatch) cas mismatch, \(deletes) deletes, \(incomplete) never completed (\(tookEffectUnheard) took effect)")
        #expect(casOk > 100 && casMismatch > 100 && notFound > 100 && values > 1000 && deletes > 100)
        #expect(incomplete > 20 && tookEffectUnheard > 5)
        // Real contention: most operations overlap another on the same key.
        let byKey = Dictionary(grouping: operations.indices, by: { operations[$0].key })
        var overlapping = 0
        for indices in byKey.values {
            let sorted = indices.sorted { operations[$0].invokeSeconds < operations[$1].invokeSeconds }
            var latestEnd = -Double.infinity
            for i in sorted {
                if operations[i].invokeSeconds < latestEnd { overlapping += 1 }
                latestEnd = max(latestEnd, operations[i].completion?.seconds ?? operations[i].invokeSeconds + 0.5)
            }
        }
        print("generated: \(overlapping) of \(operations.count) operations overlap an earlier one on their key")
        #expect(overlapping > operations.count / 4)
    }

    @Test(arguments: LinearizabilityGeneratedTests.good) func generatedHistoriesAreLinearizable(_ parameters: SimulatedHistory.Parameters) throws {
        let operations = SimulatedHistory(parameters).operations
        let result = timedCheck(operations, "linearizable, \(parameters)")
        #expect(result.verdict == .linearizable, "\(result)")
        #expect(result.keyCount == parameters.keys && result.operationCount == 10_000)
        // Through the file format and back, the verdict is the same.
        let parsed = try History.parse(text: History.encode(operations))
        #expect(parsed.map { var o = $0; o.line = nil; return o } == operations)
        #expect(checkLinearizability(parsed).verdict == .linearizable)
    }

    @Test func aStaleReadIsFound() throws {
        var history = SimulatedHistory(Self.good[0])
        let injected = try #require(BadHistories.staleRead(&history))
        let result = timedCheck(history.operations, "stale read")
        let violation = try #require(result.violations.first, "\(result)")
        #expect(result.violations.count == 1)
        #expect(violation.key == injected.key)
        #expect(violation.operation.name == injected.stuck, "\(violation)")
        #expect(violation.explanation.contains("but \(injected.witness) "), "\(violation.explanation)")
        #expect(violation.operations.contains { $0.name == injected.witness }, "\(violation)")
        print(violation)
    }

    @Test func aLostWriteIsFound() throws {
        var history = SimulatedHistory(Self.good[1])
        let injected = try #require(BadHistories.lostWrite(&history))
        let result = timedCheck(history.operations, "lost write")
        let violation = try #require(result.violations.first, "\(result)")
        #expect(result.violations.count == 1)
        #expect(violation.key == injected.key)
        #expect(violation.operation.name == injected.stuck, "\(violation)")
        #expect(violation.explanation.contains("\(injected.witness) put"), "\(violation.explanation)")
        #expect(violation.operations.contains { $0.name == injected.witness }, "\(violation)")
        print(violation)
    }

    @Test func aValueSeenThenUnseenIsFound() throws {
        var history = SimulatedHistory(Self.good[0])
        let injected = try #require(BadHistories.seenThenUnseen(&history))
        let result = timedCheck(history.operations, "value seen then unseen")
        let violation = try #require(result.violations.first, "\(result)")
        #expect(result.violations.count == 1)
        #expect(violation.key == injected.key)
        #expect(violation.operation.name == injected.stuck, "\(violation)")
        #expect(violation.operations.contains { $0.name == injected.witness }, "the first get is listed:\n\(violation)")
        #expect(!violation.explanation.contains("no order of it"), "a specific reason: \(violation.explanation)")
        print(violation)
    }

    @Test func aCompareAndSetAgainstAStaleValueIsFound() throws {
        var history = SimulatedHistory(Self.good[2])
        let injected = try #require(BadHistories.staleCompareAndSet(&history))
        let result = timedCheck(history.operations, "cas against a value that was not current")
        let violation = try #require(result.violations.first, "\(result)")
        #expect(result.violations.count == 1)
        #expect(violation.key == injected.key)
        #expect(violation.operation.name == injected.stuck, "\(violation)")
        #expect(violation.explanation.hasPrefix("cas by \(injected.stuck) expected"), "\(violation.explanation)")
        #expect(violation.explanation.contains("succeeded but \(injected.witness) "), "\(violation.explanation)")
        print(violation)
    }
}

/// Violations planted in a generated history, each where the history is busy; each names the
/// operation where every order must fail and one it must be listed with.
enum BadHistories {
    struct Injected {
        var key: String
        var stuck: String
        var witness: String
    }

    /// A get returns the value a completed write had overwritten before the get began.
    static func staleRead(_ history: inout SimulatedHistory) -> Injected? {
        guard let (g, w, u) = staleCandidate(history) else { return nil }
        history.operations[g].completion?.outcome = u.map(HistoryOperation.Outcome.value) ?? .notFound
        return Injected(key: history.operations[g].key, stuck: history.operations[g].name, witness: history.operations[w].name)
    }

    /// A compare-and-set succeeds against the value a completed write had overwritten.
    static func staleCompareAndSet(_ history: inout SimulatedHistory) -> Injected? {
        guard let (g, w, u) = staleCandidate(history) else { return nil }
        let key = history.operations[g].key
        history.operations[g].call = .compareAndSet(key: key, expected: u, new: "planted")
        history.operations[g].completion?.outcome = .ok
        return Injected(key: key, stuck: history.operations[g].name, witness: history.operations[w].name)
    }

    /// A completed put is never seen: the gets after it that saw it see the value before.
    static func lostWrite(_ history: inout SimulatedHistory) -> Injected? {
        let operations = history.operations
        for p in busyMiddle(operations) {
            guard case .put(let key, let value) = operations[p].call, let done = operations[p].completion?.seconds,
                  let u = history.before[p], u != value, writersOf(u, key: key, in: operations).allSatisfy({ finished($0, operations) < operations[p].invokeSeconds })
            else { continue }
            let readers = operations.indices.filter { i in
                operations[i].key == key && operations[i].invokeSeconds > done && operations[i].completion?.outcome == .value(value)
                    && { if case .get = operations[i].call { true } else { false } }()
            }
            guard let first = readers.min(by: { finished($0, operations) < finished($1, operations) }),
                  latestWrite(key, before: operations[first].invokeSeconds, in: operations) == p
            else { continue }
            for reader in readers { history.operations[reader].completion?.outcome = u.map(HistoryOperation.Outcome.value) ?? .notFound }
            return Injected(key: key, stuck: operations[first].name, witness: operations[p].name)
        }
        return nil
    }

    /// Two gets of one client, one after the other: the second returns a value older than
    /// the one the first returned.
    static func seenThenUnseen(_ history: inout SimulatedHistory) -> Injected? {
        let operations = history.operations
        let byClient = Dictionary(grouping: operations.indices, by: { operations[$0].client })
        for g2 in busyMiddle(operations) {
            guard case .get(let key) = operations[g2].call, operations[g2].completion != nil,
                  let mine = byClient[operations[g2].client], let position = mine.firstIndex(of: g2), position > 0
            else { continue }
            let g1 = mine[position - 1]
            guard case .get(key) = operations[g1].call, case .value(let seen)? = operations[g1].completion?.outcome,
                  finished(g1, operations) < operations[g2].invokeSeconds,
                  let writer = writersOf(seen, key: key, in: operations).first, let u = history.before[writer], u != seen,
                  operations[g2].completion?.outcome != u.map(HistoryOperation.Outcome.value) ?? .notFound,
                  writersOf(u, key: key, in: operations).allSatisfy({ finished($0, operations) < operations[g1].invokeSeconds })
            else { continue }
            // Nothing on the key fits between them, so the first is the second's predecessor.
            let between = operations.indices.contains { o in
                operations[o].key == key && operations[o].invokeSeconds > finished(g1, operations) && finished(o, operations) < operations[g2].invokeSeconds
            }
            guard !between else { continue }
            history.operations[g2].completion?.outcome = u.map(HistoryOperation.Outcome.value) ?? .notFound
            return Injected(key: key, stuck: operations[g2].name, witness: operations[g1].name)
        }
        return nil
    }

    /// A completed get g, the latest completed write w before it, and the value u that w
    /// overwrote, which nobody wrote again after w began.
    private static func staleCandidate(_ history: SimulatedHistory) -> (Int, Int, String?)? {
        let operations = history.operations
        for g in busyMiddle(operations) {
            guard case .get(let key) = operations[g].call, let outcome = operations[g].completion?.outcome,
                  let w = latestWrite(key, before: operations[g].invokeSeconds, in: operations), let u = history.before[w],
                  u != nil, outcome != u.map(HistoryOperation.Outcome.value) ?? .notFound,
                  written(operations[w]) != .some(u),
                  writersOf(u, key: key, in: operations).allSatisfy({ finished($0, operations) < operations[w].invokeSeconds })
            else { continue }
            return (g, w, u)
        }
        return nil
    }

    /// Indices from the middle of the history on, so the search has thousands of operations
    /// to get through first.
    private static func busyMiddle(_ operations: [HistoryOperation]) -> [Int] {
        Array(operations.indices.dropFirst(operations.count / 2))
    }

    private static func finished(_ index: Int, _ operations: [HistoryOperation]) -> Double {
        operations[index].completion?.seconds ?? .infinity
    }

    /// What an operation may have written (nil inside: deleted); nil if nothing.
    private static func written(_ operation: HistoryOperation) -> String?? {
        switch (operation.call, operation.completion?.outcome) {
        case (.put(_, let value), _): .some(value)
        case (.delete, _): .some(nil)
        case (.compareAndSet(_, _, let new), .ok?), (.compareAndSet(_, _, let new), nil): .some(new)
        default: nil
        }
    }

    private static func writersOf(_ value: String?, key: String, in operations: [HistoryOperation]) -> [Int] {
        operations.indices.filter { operations[$0].key == key && written(operations[$0]) == .some(value) }
    }

    /// The completed write on `key` that completed last before `time`.
    private static func latestWrite(_ key: String, before time: Double, in operations: [HistoryOperation]) -> Int? {
        operations.indices.filter { i in
            guard operations[i].key == key, let done = operations[i].completion, done.seconds < time else { return false }
            switch (operations[i].call, done.outcome) {
            case (.put, _), (.delete, _), (.compareAndSet, .ok): return true
            default: return false
            }
        }.max { finished($0, operations) < finished($1, operations) }
    }
}
