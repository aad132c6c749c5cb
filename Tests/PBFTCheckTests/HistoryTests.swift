import Foundation
import PBFTCheck
import PBFTKeyValue
import PBFTTestSupport
import PBFTWire
import Testing

/// Expects `text` to be refused with an error naming `line` and `field` (nil: no field) and
/// containing `fragment`, all on one line.
func expectHistoryError(
    _ text: String, line: Int?, field: String?, containing fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let operations = try History.parse(text: text)
        Issue.record("expected an error at line \(line.map(String.init) ?? "-"), parsed \(operations.count) operations", sourceLocation: sourceLocation)
    } catch {
        let message = error.description
        #expect(error.line == line, "\(message)", sourceLocation: sourceLocation)
        #expect(error.field == field, "\(message)", sourceLocation: sourceLocation)
        if let line { #expect(message.contains("line \(line): "), "\(message)", sourceLocation: sourceLocation) }
        if let field { #expect(message.contains("field \"\(field)\""), "\(message)", sourceLocation: sourceLocation) }
        #expect(message.contains(fragment), "\(message)", sourceLocation: sourceLocation)
        #expect(!message.contains("\n"), "one line: \(message)", sourceLocation: sourceLocation)
    }
}

@Suite struct HistoryTests {
    /// The lines of docs/experiments.md and of the format's description, with times filled in.
    static let documented = [
        #"{"client":2,"seq":17,"op":"put","key":"k3","value":"c2-17","invoke":1.234567,"complete":1.240123,"result":"ok"}"#,
        #"{"client":0,"seq":3,"op":"get","key":"k1","invoke":2.0,"complete":2.01,"result":"value","value":"c1-5"}"#,
        #"{"client":0,"seq":4,"op":"get","key":"k1","invoke":2.1,"complete":2.2,"result":"not_found"}"#,
        #"{"client":1,"seq":9,"op":"delete","key":"k1","invoke":3.0,"complete":3.1,"result":"ok"}"#,
        #"{"client":1,"seq":10,"op":"cas","key":"k1","expected":"c1-5","new":"c1-10","invoke":3.2,"complete":3.25,"result":"ok"}"#,
        #"{"client":1,"seq":11,"op":"cas","key":"k1","expected":null,"new":"c1-11","invoke":3.3,"complete":3.4,"result":"mismatch","current":"c0-3"}"#,
        #"{"client":1,"seq":12,"op":"cas","key":"k1","expected":"c1-10","new":"c1-12","invoke":3.5,"complete":3.6,"result":"mismatch","current":null}"#,
        #"{"client":3,"seq":2,"op":"put","key":"k2","value":"x","invoke":5.0,"complete":null,"result":null}"#,
    ]

    @Test func documentedLinesParseAndEncodeByteForByte() throws {
        let operations = try History.parse(text: Self.documented.joined(separator: "\n") + "\n")
        #expect(operations.count == Self.documented.count)
        #expect(operations.map(\.line) == Array(1...Self.documented.count))
        for (operation, line) in zip(operations, Self.documented) {
            #expect(History.encode(operation) == line)
        }
        #expect(History.encode(operations) == Self.documented.joined(separator: "\n") + "\n")

        let put = operations[0]
        #expect(put.client == ClientID(2) && put.seq == 17 && put.call == .put(key: "k3", value: "c2-17"))
        #expect(put.invokeSeconds == 1.234567 && put.completion == .init(seconds: 1.240123, outcome: .ok))
        #expect(operations[5].call == .compareAndSet(key: "k1", expected: nil, new: "c1-11"))
        #expect(operations[5].completion?.outcome == .mismatch(current: "c0-3"))
        #expect(operations[6].completion?.outcome == .mismatch(current: nil))
        #expect(operations[7].completion == nil)
    }

    /// Whatever the strings and times, encoding then parsing gives the operations back.
    @Test func encodeThenParseRoundTrips() throws {
        var random = SplitMix64(seed: 11)
        let awkward = ["", "plain", "with \"quotes\"", "back\\slash", "new\nline\ttab\r", "\u{1}\u{1F}\u{7F}", "ünïcødé ✓", "emoji 🦀", "/slash/", "null", "{\"json\":1}"]
        func text() -> String { awkward[Int(random.next() % UInt64(awkward.count))] }
        func time() -> Double {
            switch random.next() % 4 {
            case 0: Double(random.next() % 1000)
            case 1: Double(random.next() >> 11) / Double(1 << 53) * 1e-6
            case 2: Double(random.next() >> 11) / Double(1 << 20)
            default: Double(random.next() % 100_000) / 1000
            }
        }
        var operations: [HistoryOperation] = []
        for index in 0..<500 {
            let key = text()
            let call: HistoryOperation.Call = switch random.next() % 4 {
            case 0: .get(key: key)
            case 1: .put(key: key, value: text())
            case 2: .delete(key: key)
            default: .compareAndSet(key: key, expected: random.chance(0.3) ? nil : text(), new: text())
            }
            let outcome: HistoryOperation.Outcome = switch random.next() % 6 {
            case 0: .ok
            case 1: .notFound
            case 2: .mismatch(current: random.chance(0.3) ? nil : text())
            case 3: .malformed
            default: if case .put = call { .ok } else { .value(text()) }
            }
            let invoke = time()
            let completion = random.chance(0.2) ? nil : HistoryOperation.Completion(seconds: invoke + time(), outcome: outcome)
            operations.append(HistoryOperation(
                client: ClientID(UInt32(index)), seq: random.next(), call: call, invokeSeconds: invoke,
                completion: completion, line: index + 1
            ))
        }
        let text = History.encode(operations)
        #expect(try History.parse(text: text) == operations)
        #expect(History.encode(try History.parse(text: text)) == text)
    }

    /// Another writer's field order, integers for times, whitespace, CRLF, blank lines and
    /// fields this version does not know are all accepted.
    @Test func readsAnyFieldOrderAndIgnoresUnknownFields() throws {
        let text = """
            { "complete" : 2, "result":"value", "client":0, "extra":{"a":[1,2,{"b":null}]}, "invoke":1, "key":"k", "op":"get", "seq":3, "value":"v" }\r

            {"client":1,"seq":1,"op":"put","key":"k","value":"v","invoke":0.5,"complete":0.75,"result":"ok","replica":true}
            """
        let operations = try History.parse(text: text)
        #expect(operations.count == 2)
        #expect(operations[0].completion == .init(seconds: 2, outcome: .value("v")))
        #expect(operations[0].line == 1 && operations[1].line == 3)
        #expect(operations[1].call == .put(key: "k", value: "v"))
    }

    /// What Foundation's JSONSerialization writes (sorted keys, NSNull, integers for whole
    /// times, escaped strings) reads as the same operations.
    @Test func readsWhatJSONSerializationWrites() throws {
        let objects: [[String: Any]] = [
            ["client": 2, "seq": 17, "op": "cas", "key": "k/1", "expected": NSNull(), "new": "c2 \"17\"\n",
             "invoke": 1.234567, "complete": 2, "result": "mismatch", "current": NSNull()],
            ["client": 0, "seq": 3, "op": "get", "key": "k1", "invoke": 2.5, "complete": 2.75, "result": "malformed"],
            ["client": 3, "seq": 2, "op": "put", "key": "k2", "value": "é", "invoke": 5.0, "complete": NSNull(), "result": NSNull()],
        ]
        let lines = try objects.map {
            String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        }
        let operations = try History.parse(text: lines.joined(separator: "\n") + "\n")
        #expect(operations == [
            HistoryOperation(
                client: ClientID(2), seq: 17, call: .compareAndSet(key: "k/1", expected: nil, new: "c2 \"17\"\n"), invokeSeconds: 1.234567,
                completion: .init(seconds: 2, outcome: .mismatch(current: nil)), line: 1
            ),
            HistoryOperation(client: ClientID(0), seq: 3, call: .get(key: "k1"), invokeSeconds: 2.5, completion: .init(seconds: 2.75, outcome: .malformed), line: 2),
            HistoryOperation(client: ClientID(3), seq: 2, call: .put(key: "k2", value: "é"), invokeSeconds: 5, completion: nil, line: 3),
        ])
    }

    @Test func malformedLinesNameTheLineAndTheField() {
        let good = #"{"client":0,"seq":1,"op":"put","key":"k","value":"v","invoke":1.0,"complete":1.1,"result":"ok"}"#
        func third(_ line: String) -> String { good + "\n\n" + line + "\n" + good.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":9") }
        let cases: [(line: String, field: String?, fragment: String)] = [
            ("not json", nil, "not valid JSON"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"} trailing"#, nil, "text after the end"),
            (#"{"client":0,"seq":2,"op":"get","key":"k""#, "key", "expected ',' or '}'"),
            (#"{"client":0,"seq":2,"op":"get","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "key", "missing"),
            (#"{"client":0,"seq":2,"op":"get","key":7,"invoke":1.2,"complete":1.3,"result":"not_found"}"#, "key", "expected a string, found a number"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":"1.2","complete":1.3,"result":"not_found"}"#, "invoke", "expected a number, found a string"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":-1.2,"complete":1.3,"result":"not_found"}"#, "invoke", "negative"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1e999,"complete":1.3,"result":"not_found"}"#, "invoke", "out of range"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":01.2,"complete":1.3,"result":"not_found"}"#, "invoke", "not valid JSON"),
            (#"{"client":-1,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "client", "non-negative integer"),
            (#"{"client":1.5,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "client", "non-negative integer"),
            (#"{"client":4294967296,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "client", "larger than"),
            (#"{"client":0,"seq":true,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "seq", "found a boolean"),
            (#"{"client":0,"seq":2,"op":"incr","key":"k","invoke":1.2,"complete":1.3,"result":"ok"}"#, "op", "not one of get, put, delete, cas"),
            (#"{"client":0,"seq":2,"op":"put","key":"k","invoke":1.2,"complete":1.3,"result":"ok"}"#, "value", "missing"),
            (#"{"client":0,"seq":2,"op":"cas","key":"k","new":"n","invoke":1.2,"complete":1.3,"result":"ok"}"#, "expected", "missing"),
            (#"{"client":0,"seq":2,"op":"cas","key":"k","expected":null,"new":null,"invoke":1.2,"complete":1.3,"result":"ok"}"#, "new", "found null"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.1,"result":"not_found"}"#, "complete", "before the invocation"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"result":"not_found"}"#, "complete", "missing"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":null,"result":"not_found"}"#, "result", "never completed"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":null}"#, "result", "completed at 1.3"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"value"}"#, "value", "missing"),
            (#"{"client":0,"seq":2,"op":"cas","key":"k","expected":"a","new":"b","invoke":1.2,"complete":1.3,"result":"mismatch"}"#, "current", "missing"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"maybe"}"#, "result", "not one of"),
            (#"{"client":0,"seq":2,"op":"put","key":"k","value":"v","invoke":1.2,"complete":1.3,"result":"value"}"#, "result", "a put's \"value\""),
            (#"{"client":0,"seq":2,"op":"get","key":"k","key":"k","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "key", "appears twice"),
            (#"{"client":0,"seq":2,"op":"get","key":"k\q","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "key", "unknown escape"),
            (#"{"client":0,"seq":2,"op":"get","key":"\ud800","invoke":1.2,"complete":1.3,"result":"not_found"}"#, "key", "lone surrogate"),
            ("{\"client\":0,\"seq\":2,\"op\":\"get\",\"key\":\"a\tb\",\"invoke\":1.2,\"complete\":1.3,\"result\":\"not_found\"}", "key", "control character"),
            (#"{"client":0,"seq":2,"op":"get","key":"k","invoke":1.2,"complete":1.3,"result":"not_found","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#, "x", "nested deeper"),
        ]
        for (line, field, fragment) in cases {
            expectHistoryError(third(line), line: 3, field: field, containing: fragment)
        }
    }

    @Test func invalidUTF8IsRefused() {
        var bytes = Array(#"{"client":0,"seq":2,"op":"get","key":"k"#.utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array(#"","invoke":1.2,"complete":1.3,"result":"not_found"}"#.utf8)
        let dir = TemporaryDirectory()
        let path = dir.file("history.jsonl")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        do {
            _ = try History.read(path: path)
            Issue.record("invalid UTF-8 accepted")
        } catch {
            #expect(error.line == 1 && error.field == "key" && error.description.contains("UTF-8"), "\(error)")
        }
    }

    @Test func aClientRunsOneOperationAtATime() {
        let first = #"{"client":4,"seq":1,"op":"put","key":"k","value":"a","invoke":1.0,"complete":2.0,"result":"ok"}"#
        // Overlapping a completed operation of the same client: refused at the later one.
        expectHistoryError(
            first + "\n" + #"{"client":4,"seq":2,"op":"get","key":"j","invoke":1.5,"complete":2.5,"result":"not_found"}"#,
            line: 2, field: "invoke", containing: "one operation at a time"
        )
        // The same seq twice.
        expectHistoryError(
            first + "\n" + #"{"client":4,"seq":1,"op":"get","key":"j","invoke":3.0,"complete":3.5,"result":"not_found"}"#,
            line: 2, field: "seq", containing: "already has an operation with seq 1 (line 1)"
        )
        // Touching intervals, other clients, and an abandoned operation the client moved on from are fine.
        let fine = [
            first,
            #"{"client":4,"seq":2,"op":"get","key":"k","invoke":2.0,"complete":null,"result":null}"#,
            #"{"client":4,"seq":3,"op":"get","key":"k","invoke":2.5,"complete":2.6,"result":"value","value":"a"}"#,
            #"{"client":5,"seq":1,"op":"get","key":"k","invoke":1.5,"complete":1.6,"result":"not_found"}"#,
        ]
        #expect((try? History.parse(text: fine.joined(separator: "\n")))?.count == 4)
    }

    @Test func readNamesTheFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("history.jsonl", Self.documented.joined(separator: "\n") + "\n{\"client\":0}\n")
        do {
            _ = try History.read(path: path)
            Issue.record("a bad line was accepted")
        } catch {
            #expect(error.description.hasPrefix(path + ": line 9: field \"seq\": missing"), "\(error)")
        }
        let good = dir.write("good.jsonl", Self.documented.joined(separator: "\n"))
        #expect(try History.read(path: good).count == Self.documented.count)
        do {
            _ = try History.read(path: dir.file("absent.jsonl"))
            Issue.record("a missing file was read")
        } catch {
            #expect(error.description.hasPrefix(dir.file("absent.jsonl") + ": cannot read"), "\(error)")
            #expect(error.line == nil)
        }
    }

    @Test func convertsTheStoresOwnTypes() {
        let calls: [HistoryOperation.Call] = [
            .get(key: "k"), .put(key: "k", value: "v"), .delete(key: "k"),
            .compareAndSet(key: "k", expected: nil, new: "n"), .compareAndSet(key: "k", expected: "e", new: "n"),
        ]
        for call in calls { #expect(HistoryOperation.Call(call.keyValueOperation) == call) }
        #expect(HistoryOperation.Call(.put(key: Array("k".utf8), value: [0xFF])) == nil)
        #expect(HistoryOperation.Outcome(KeyValueResult.value(Array("v".utf8))) == .value("v"))
        #expect(HistoryOperation.Outcome(KeyValueResult.mismatch(current: nil)) == .mismatch(current: nil))
        #expect(HistoryOperation.Outcome(KeyValueResult.malformed) == .malformed)
        #expect(HistoryOperation.Outcome(KeyValueResult.value([0xC3])) == nil)
    }

    @Test func describesAnOperationOnOneLine() throws {
        let operations = try History.parse(text: Self.documented.joined(separator: "\n"))
        #expect(operations[0].description == "c2#17 put k3=c2-17, invoked 1.234567, completed 1.240123: ok (line 1)")
        #expect(operations[5].description == "c1#11 cas k1 absent→c1-11, invoked 3.3, completed 3.4: mismatch (current c0-3) (line 6)")
        #expect(operations[7].description == "c3#2 put k2=x, invoked 5.0, never completed (line 8)")
        let odd = HistoryOperation(client: ClientID(1), seq: 2, call: .get(key: "a b"), invokeSeconds: 1, completion: .init(seconds: 2, outcome: .value("")))
        #expect(odd.description == #"c1#2 get "a b", invoked 1.0, completed 2.0: value """#)
    }
}
