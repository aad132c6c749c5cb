import PBFTCheck
import PBFTWire
import Testing

/// A history written by hand: `op(0, 4, .get(key: "k1"), 2.0, 2.2, .notFound)`.
func op(
    _ client: UInt32, _ seq: UInt64, _ call: HistoryOperation.Call, _ invoke: Double, _ complete: Double?,
    _ outcome: HistoryOperation.Outcome = .ok
) -> HistoryOperation {
    HistoryOperation(
        client: ClientID(client), seq: seq, call: call, invokeSeconds: invoke,
        completion: complete.map { HistoryOperation.Completion(seconds: $0, outcome: outcome) }
    )
}

func expectLinearizable(_ operations: [HistoryOperation], sourceLocation: SourceLocation = #_sourceLocation) {
    let result = checkLinearizability(operations)
    #expect(result.verdict == .linearizable, "\(result)", sourceLocation: sourceLocation)
}

/// Expects exactly one violation, on `key`, at `stuck` (client, seq), whose explanation
/// contains `fragment` and whose listed operations include `listing`.
@discardableResult
func expectViolation(
    _ operations: [HistoryOperation], key: String = "k1", at stuck: (UInt32, UInt64), containing fragment: String,
    listing: [(UInt32, UInt64)] = [], sourceLocation: SourceLocation = #_sourceLocation
) -> LinearizabilityViolation? {
    let result = checkLinearizability(operations)
    #expect(result.verdict == .notLinearizable, "\(result)", sourceLocation: sourceLocation)
    guard let violation = result.violations.first else { return nil }
    #expect(result.violations.count == 1, "\(result)", sourceLocation: sourceLocation)
    #expect(violation.key == key, sourceLocation: sourceLocation)
    #expect(violation.operation.client == ClientID(stuck.0) && violation.operation.seq == stuck.1, "\(result)", sourceLocation: sourceLocation)
    #expect(violation.explanation.contains(fragment), "\(violation.explanation)", sourceLocation: sourceLocation)
    #expect(!violation.explanation.contains("\n"), sourceLocation: sourceLocation)
    #expect(violation.lines.contains { $0.hasPrefix("> \(violation.operation.name) ") }, "\(violation)", sourceLocation: sourceLocation)
    for (client, seq) in listing {
        #expect(violation.operations.contains { $0.client == ClientID(client) && $0.seq == seq }, "c\(client)#\(seq) not listed:\n\(violation)", sourceLocation: sourceLocation)
    }
    #expect(result.summary.hasPrefix("not linearizable: key \(key): "), "\(result.summary)", sourceLocation: sourceLocation)
    #expect(!result.summary.contains("\n"), sourceLocation: sourceLocation)
    return violation
}

@Suite struct LinearizabilityTests {
    @Test func emptyAndSequentialHistoriesAreLinearizable() {
        expectLinearizable([])
        expectLinearizable([
            op(0, 1, .get(key: "k1"), 0.0, 0.1, .notFound),
            op(0, 2, .put(key: "k1", value: "a"), 0.2, 0.3),
            op(0, 3, .get(key: "k1"), 0.4, 0.5, .value("a")),
            op(0, 4, .compareAndSet(key: "k1", expected: "a", new: "b"), 0.6, 0.7),
            op(0, 5, .compareAndSet(key: "k1", expected: "a", new: "c"), 0.8, 0.9, .mismatch(current: "b")),
            op(0, 6, .delete(key: "k1"), 1.0, 1.1),
            op(0, 7, .delete(key: "k1"), 1.2, 1.3),
            op(0, 8, .compareAndSet(key: "k1", expected: "b", new: "d"), 1.4, 1.5, .mismatch(current: nil)),
            op(0, 9, .compareAndSet(key: "k1", expected: nil, new: "e"), 1.6, 1.7),
            op(0, 10, .get(key: "k1"), 1.8, 1.9, .value("e")),
        ])
    }

    /// Concurrent operations may take effect in either order, each at any instant of its
    /// interval; operations that merely touch at an instant count as concurrent.
    @Test func concurrentOperationsMayTakeEffectInEitherOrder() {
        let put = op(1, 1, .put(key: "k1", value: "a"), 1.0, 3.0)
        expectLinearizable([put, op(0, 1, .get(key: "k1"), 2.0, 2.5, .notFound)])
        expectLinearizable([put, op(0, 1, .get(key: "k1"), 2.0, 2.5, .value("a"))])
        expectLinearizable([
            put, op(2, 1, .put(key: "k1", value: "b"), 1.5, 2.0),
            op(0, 1, .get(key: "k1"), 2.1, 2.2, .value("a")), op(0, 2, .get(key: "k1"), 2.3, 2.4, .value("a")),
        ])
        expectLinearizable([op(1, 1, .put(key: "k1", value: "a"), 1.0, 2.0), op(0, 1, .get(key: "k1"), 2.0, 3.0, .notFound)])
    }

    @Test func staleReadIsNamed() {
        expectViolation(
            [
                op(1, 5, .put(key: "k1", value: "c1-5"), 1.0, 1.1),
                op(2, 9, .put(key: "k1", value: "c2-9"), 1.5, 1.6),
                op(0, 4, .get(key: "k1"), 2.0, 2.1, .value("c1-5")),
            ],
            at: (0, 4), containing: "get by c0#4 returned c1-5 but c2#9 put c2-9 completed before it was invoked and nothing wrote c1-5 in between",
            listing: [(1, 5), (2, 9)]
        )
        expectViolation(
            [op(2, 9, .put(key: "k1", value: "c2-9"), 1.5, 1.6), op(0, 4, .get(key: "k1"), 2.0, 2.1, .notFound)],
            at: (0, 4), containing: "get by c0#4 returned not_found but c2#9 put c2-9 completed before it was invoked and nothing deleted k1 in between"
        )
    }

    @Test func aValueNobodyWroteOrWroteOnlyLaterIsNamed() {
        expectViolation([op(0, 1, .get(key: "k1"), 1.0, 1.1, .value("ghost"))], at: (0, 1), containing: "no operation on k1 wrote ghost")
        expectViolation(
            [op(0, 1, .get(key: "k1"), 1.0, 1.1, .value("c1-1")), op(1, 1, .put(key: "k1", value: "c1-1"), 2.0, 2.1)],
            at: (0, 1), containing: "before c1#1 began to write c1-1 at 2.0", listing: [(1, 1)]
        )
    }

    @Test func aValueSeenThenUnseenIsNamed() {
        expectViolation(
            [
                op(1, 1, .put(key: "k1", value: "old"), 0.0, 0.1),
                op(2, 1, .put(key: "k1", value: "new"), 1.0, 5.0),
                op(0, 1, .get(key: "k1"), 2.0, 2.1, .value("new")),
                op(0, 2, .get(key: "k1"), 2.2, 2.3, .value("old")),
            ],
            at: (0, 2), containing: "get by c0#2 returned old but get by c0#1 returned new, which completed before it was invoked, and nothing wrote old after c0#1 began",
            listing: [(0, 1), (2, 1)]
        )
    }

    @Test func compareAndSetAgainstAStaleValueIsNamed() {
        expectViolation(
            [
                op(1, 1, .put(key: "k1", value: "e"), 0.0, 0.1),
                op(2, 1, .put(key: "k1", value: "w"), 0.2, 0.3),
                op(0, 1, .compareAndSet(key: "k1", expected: "e", new: "n"), 0.4, 0.5),
            ],
            at: (0, 1), containing: "cas by c0#1 expected e and succeeded but c2#1 put w completed before it was invoked"
        )
        // A mismatch must report the value that was current.
        expectViolation(
            [
                op(1, 1, .put(key: "k1", value: "e"), 0.0, 0.1),
                op(0, 1, .compareAndSet(key: "k1", expected: "x", new: "n"), 0.4, 0.5, .mismatch(current: nil)),
            ],
            at: (0, 1), containing: "cas by c0#1 failed reporting k1 absent but c1#1 put e completed before it was invoked"
        )
        expectViolation(
            [op(0, 1, .compareAndSet(key: "k1", expected: "x", new: "n"), 0.4, 0.5, .mismatch(current: "x"))],
            at: (0, 1), containing: "which is the value it expected"
        )
    }

    @Test func resultsACallNeverReturnsAreViolations() {
        expectViolation([op(0, 1, .put(key: "k1", value: "v"), 0, 1, .notFound)], at: (0, 1), containing: "put by c0#1 returned not_found, which a put never returns")
        expectViolation([op(0, 1, .get(key: "k1"), 0, 1, .ok)], at: (0, 1), containing: "which a get never returns")
        expectViolation([op(0, 1, .delete(key: "k1"), 0, 1, .malformed)], at: (0, 1), containing: "returned malformed")
    }

    @Test func impossibleTimesAreViolationsNotCrashes() {
        expectViolation([op(0, 1, .get(key: "k1"), 2, 1, .notFound)], at: (0, 1), containing: "completed at 1.0, before its invocation at 2.0")
        expectViolation([op(0, 1, .get(key: "k1"), .nan, 1, .notFound)], at: (0, 1), containing: "not a time")
        expectViolation([op(0, 1, .get(key: "k1"), 0, .infinity, .notFound)], at: (0, 1), containing: "not a time")
    }

    // MARK: Operations that never completed

    @Test func aNeverCompletedPutMayHaveTakenEffectOrNot() {
        let put = op(3, 2, .put(key: "k1", value: "x"), 5.0, nil)
        // Read afterwards, even long afterwards: it took effect.
        expectLinearizable([put, op(0, 1, .get(key: "k1"), 9.0, 9.1, .value("x"))])
        // Never read: it may not have.
        expectLinearizable([put, op(0, 1, .get(key: "k1"), 9.0, 9.1, .notFound)])
        // Read, then gone: it took effect and a later write replaced it.
        expectLinearizable([
            put, op(0, 1, .get(key: "k1"), 6.0, 6.1, .value("x")), op(1, 1, .put(key: "k1", value: "y"), 7.0, 7.1),
            op(0, 2, .get(key: "k1"), 8.0, 8.1, .value("y")),
        ])
        // It cannot take effect before it was invoked.
        expectViolation(
            [put, op(0, 1, .get(key: "k1"), 1.0, 1.1, .value("x"))],
            at: (0, 1), containing: "get by c0#1 returned x at 1.1, before c3#2 began to write x at 5.0"
        )
        // Nor twice: once replaced, it cannot reappear.
        expectViolation(
            [
                put, op(0, 1, .get(key: "k1"), 6.0, 6.1, .value("x")), op(1, 1, .put(key: "k1", value: "y"), 7.0, 7.1),
                op(0, 2, .get(key: "k1"), 8.0, 8.1, .value("x")),
            ],
            at: (0, 2), containing: "c1#1 put y completed before it was invoked"
        )
    }

    @Test func neverCompletedDeletesAndCompareAndSetsMayTakeEffectOrNot() {
        let setup = op(1, 1, .put(key: "k1", value: "a"), 0, 0.1)
        let delete = op(2, 1, .delete(key: "k1"), 1.0, nil)
        expectLinearizable([setup, delete, op(0, 1, .get(key: "k1"), 2, 2.1, .notFound)])
        expectLinearizable([setup, delete, op(0, 1, .get(key: "k1"), 2, 2.1, .value("a"))])
        let cas = op(2, 1, .compareAndSet(key: "k1", expected: "a", new: "b"), 1.0, nil)
        expectLinearizable([setup, cas, op(0, 1, .get(key: "k1"), 2, 2.1, .value("b"))])
        expectLinearizable([setup, cas, op(0, 1, .get(key: "k1"), 2, 2.1, .value("a"))])
        // It could only have applied if its expected value was current.
        let failing = op(2, 1, .compareAndSet(key: "k1", expected: "z", new: "b"), 1.0, nil)
        expectViolation([setup, failing, op(0, 1, .get(key: "k1"), 2, 2.1, .value("b"))], at: (0, 1), containing: "returned b")
        // A chain of them: each may apply to the previous one's value.
        expectLinearizable([
            setup, cas, op(3, 1, .compareAndSet(key: "k1", expected: "b", new: "c"), 1.5, nil),
            op(0, 1, .get(key: "k1"), 3, 3.1, .value("c")),
        ])
        // A never-completed get constrains nothing.
        expectLinearizable([setup, op(2, 1, .get(key: "k1"), 0.5, nil)])
    }

    /// A client that gives up on an operation goes on with the next; the abandoned one may
    /// still take effect later, concurrently with the client's next operations.
    @Test func anAbandonedOperationMayTakeEffectWhileItsClientGoesOn() {
        expectLinearizable([
            op(0, 1, .put(key: "k1", value: "c0-1"), 1.0, nil),
            op(0, 2, .put(key: "k1", value: "c0-2"), 31.0, 31.1),
            op(1, 1, .get(key: "k1"), 31.2, 31.3, .value("c0-2")),
            op(1, 2, .get(key: "k1"), 31.4, 31.5, .value("c0-1")),
        ])
    }

    // MARK: Keys, budgets, reports

    /// Each bad key is reported, and good keys beside them do not hide them.
    @Test func everyKeyIsCheckedAndEveryViolationReported() {
        var operations: [HistoryOperation] = []
        for (i, key) in ["a", "b", "c", "d"].enumerated() {
            operations.append(op(UInt32(i), 1, .put(key: key, value: "v\(key)"), 0, 0.1))
            operations.append(op(UInt32(i), 2, .get(key: key), 0.2, 0.3, .value(key == "b" || key == "d" ? "stale" : "v\(key)")))
        }
        let result = checkLinearizability(operations)
        #expect(result.verdict == .notLinearizable)
        #expect(result.violations.map(\.key) == ["b", "d"])
        #expect(result.summary.contains("(and 1 more keys with violations)"), "\(result.summary)")
        #expect(result.keyCount == 4 && result.operationCount == 8)
        #expect(result.lines.filter { $0.hasPrefix("key ") }.count == 2)
    }

    @Test func anExhaustedBudgetGivesUnknownAndNamesTheKeys() {
        let operations = (0..<40).map { i in op(UInt32(i % 4), UInt64(i), .put(key: "k\(i % 3)", value: "v\(i)"), Double(i), Double(i) + 0.5) }
        let timeless = checkLinearizability(operations, budget: .init(time: .zero))
        #expect(timeless.verdict == .unknown)
        #expect(timeless.unfinished.map(\.key).sorted() == ["k0", "k1", "k2"])
        #expect(timeless.unfinished.allSatisfy { $0.reason == .time })
        #expect(timeless.summary.hasPrefix("unknown: 3 of 3 keys not finished"), "\(timeless.summary)")

        let memoryless = checkLinearizability(operations, budget: .init(memoryBytes: 1024))
        #expect(memoryless.verdict == .unknown)
        #expect(memoryless.unfinished.count == 3 && memoryless.unfinished.allSatisfy { $0.reason == .memory })
        #expect(memoryless.summary.contains("out of memory"), "\(memoryless.summary)")

        #expect(checkLinearizability(operations).verdict == .linearizable)
    }

    /// A violation on a key is certain even when other keys did not finish.
    @Test func aViolationIsReportedEvenWhenOtherKeysDidNotFinish() {
        var operations = [op(9, 1, .get(key: "bad"), 0, 1, .value("ghost"))]
        // Two hundred concurrent puts, each read by a concurrent get: the pairs can come in any
        // order, far more configurations than 64 KiB holds, before a read that fits none.
        for i in 0..<200 {
            operations.append(op(UInt32(i), 1, .put(key: "big", value: "v\(i)"), 0, 100))
            operations.append(op(UInt32(200 + i), 1, .get(key: "big"), 0, 100, .value("v\(i)")))
        }
        operations.append(op(9, 2, .get(key: "big"), 101, 102, .value("ghost")))
        let result = checkLinearizability(operations, budget: .init(memoryBytes: 64 << 10))
        #expect(result.verdict == .notLinearizable)
        #expect(result.violations.map(\.key) == ["bad"])
        #expect(result.unfinished.map(\.key) == ["big"])
    }

    @Test func theReportListsOneOperationPerLine() throws {
        let operations = try History.parse(text: """
            {"client":1,"seq":5,"op":"put","key":"k1","value":"c1-5","invoke":1.0,"complete":1.1,"result":"ok"}
            {"client":2,"seq":9,"op":"put","key":"k1","value":"c2-9","invoke":1.5,"complete":1.6,"result":"ok"}
            {"client":0,"seq":4,"op":"get","key":"k1","invoke":2.0,"complete":2.1,"result":"value","value":"c1-5"}
            """)
        let result = checkLinearizability(operations)
        #expect(result.lines == [
            result.summary,
            "key k1: get by c0#4 returned c1-5 but c2#9 put c2-9 completed before it was invoked and nothing wrote c1-5 in between",
            "  c1#5 put k1=c1-5, invoked 1.0, completed 1.1: ok (line 1)",
            "  c2#9 put k1=c2-9, invoked 1.5, completed 1.6: ok (line 2)",
            "> c0#4 get k1, invoked 2.0, completed 2.1: value c1-5 (line 3)",
        ])
    }
}
