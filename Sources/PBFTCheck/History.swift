#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PBFTKeyValue
public import PBFTWire

/// One client operation of a run, as recorded in `history.jsonl`: what the client asked the
/// replicated key-value store, when it asked, and — if an answer came — when and what.
///
/// Times are seconds since the run started. An operation that never completed may have taken
/// effect at any moment after its invocation, or never.
public struct HistoryOperation: Hashable, Sendable, CustomStringConvertible {
    /// What the client asked; every call touches exactly one key.
    public enum Call: Hashable, Sendable {
        case get(key: String)
        case put(key: String, value: String)
        /// Succeeds whether or not the key existed.
        case delete(key: String)
        /// Sets `key` to `new` if its current value is `expected` (nil: the key is absent).
        case compareAndSet(key: String, expected: String?, new: String)

        public var key: String {
            switch self {
            case .get(let key), .put(let key, _), .delete(let key), .compareAndSet(let key, _, _): key
            }
        }

        /// The word used in `history.jsonl`: get, put, delete, cas.
        public var name: String {
            switch self {
            case .get: "get"
            case .put: "put"
            case .delete: "delete"
            case .compareAndSet: "cas"
            }
        }
    }

    /// What the store answered.
    public enum Outcome: Hashable, Sendable {
        /// put, delete, a compare-and-set that applied.
        case ok
        case value(String)
        case notFound
        /// A compare-and-set that found another value (nil: the key was absent).
        case mismatch(current: String?)
        /// The store could not decode the request: for a request a correct client built, a
        /// wrong answer, which the checker reports.
        case malformed
    }

    /// The answer and when it arrived.
    public struct Completion: Hashable, Sendable {
        /// Seconds since the run started.
        public var seconds: Double
        public var outcome: Outcome

        public init(seconds: Double, outcome: Outcome) {
            self.seconds = seconds
            self.outcome = outcome
        }
    }

    public var client: ClientID
    /// The client's own numbering of its operations; (client, seq) names an operation.
    public var seq: UInt64
    public var call: Call
    /// Seconds since the run started.
    public var invokeSeconds: Double
    /// Nil: the client never received an answer.
    public var completion: Completion?
    /// The line of `history.jsonl` the operation was read from; nil if it was not read.
    public var line: Int?

    public init(client: ClientID, seq: UInt64, call: Call, invokeSeconds: Double, completion: Completion?, line: Int? = nil) {
        self.client = client
        self.seq = seq
        self.call = call
        self.invokeSeconds = invokeSeconds
        self.completion = completion
        self.line = line
    }

    public var key: String { call.key }

    /// "c2#17", how reports refer to the operation.
    public var name: String { "c\(client.rawValue)#\(seq)" }

    /// One line for reports: `c1#10 cas k1 c1-5→c1-10, invoked 3.2, completed 3.25: ok (line 14)`.
    public var description: String {
        var text = "\(name) \(Self.describe(call)), invoked \(invokeSeconds), "
        if let completion {
            text += "completed \(completion.seconds): \(Self.describe(completion.outcome))"
        } else {
            text += "never completed"
        }
        if let line { text += " (line \(line))" }
        return text
    }

    static func describe(_ call: Call) -> String {
        switch call {
        case .get(let key): "get \(display(key))"
        case .put(let key, let value): "put \(display(key))=\(display(value))"
        case .delete(let key): "delete \(display(key))"
        case .compareAndSet(let key, let expected, let new): "cas \(display(key)) \(display(expected))→\(display(new))"
        }
    }

    static func describe(_ outcome: Outcome) -> String {
        switch outcome {
        case .ok: "ok"
        case .value(let value): "value \(display(value))"
        case .notFound: "not_found"
        case .mismatch(let current): "mismatch (current \(display(current)))"
        case .malformed: "malformed"
        }
    }

    /// A key or value as reports show it: bare when it is plain, JSON-quoted otherwise;
    /// `absent` for no value.
    static func display(_ text: String?) -> String {
        guard let text else { return "absent" }
        let plain = !text.isEmpty && text != "absent" && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"):
                true
            default:
                false
            }
        }
        return plain ? text : HistoryJSONWriter.quoted(text)
    }
}

// MARK: - The store's own types

extension HistoryOperation.Call {
    /// The call as the store executes it: keys and values as their UTF-8 bytes.
    public var keyValueOperation: KeyValueOperation {
        switch self {
        case .get(let key): .get(key: Array(key.utf8))
        case .put(let key, let value): .put(key: Array(key.utf8), value: Array(value.utf8))
        case .delete(let key): .delete(key: Array(key.utf8))
        case .compareAndSet(let key, let expected, let new):
            .compareAndSet(key: Array(key.utf8), expected: expected.map { Array($0.utf8) }, new: Array(new.utf8))
        }
    }

    /// Nil when the key or a value is not UTF-8 text, which the history cannot hold.
    public init?(_ operation: KeyValueOperation) {
        func text(_ bytes: [UInt8]) -> String? { String(validating: bytes, as: UTF8.self) }
        switch operation {
        case .get(let key):
            guard let key = text(key) else { return nil }
            self = .get(key: key)
        case .put(let key, let value):
            guard let key = text(key), let value = text(value) else { return nil }
            self = .put(key: key, value: value)
        case .delete(let key):
            guard let key = text(key) else { return nil }
            self = .delete(key: key)
        case .compareAndSet(let key, let expected, let new):
            guard let key = text(key), let new = text(new) else { return nil }
            var expectedText: String?
            if let expected {
                guard let decoded = text(expected) else { return nil }
                expectedText = decoded
            }
            self = .compareAndSet(key: key, expected: expectedText, new: new)
        }
    }
}

extension HistoryOperation.Outcome {
    /// Nil for values that are not UTF-8 text.
    public init?(_ result: KeyValueResult) {
        switch result {
        case .ok: self = .ok
        case .notFound: self = .notFound
        case .value(let bytes):
            guard let value = String(validating: bytes, as: UTF8.self) else { return nil }
            self = .value(value)
        case .mismatch(nil): self = .mismatch(current: nil)
        case .mismatch(let bytes?):
            guard let current = String(validating: bytes, as: UTF8.self) else { return nil }
            self = .mismatch(current: current)
        case .malformed: self = .malformed
        }
    }
}

// MARK: - history.jsonl

/// A problem with a history: one line naming the file, the line and the field.
public struct HistoryError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String?
    /// 1-based; nil for a problem with the whole file.
    public var line: Int?
    public var field: String?
    public var reason: String

    public init(path: String? = nil, line: Int?, field: String?, reason: String) {
        self.path = path
        self.line = line
        self.field = field
        self.reason = reason
    }

    public var description: String {
        var text = ""
        if let path { text += "\(path): " }
        if let line { text += "line \(line): " }
        if let field { text += "field \"\(field)\": " }
        return text + reason
    }
}

/// Reading and writing `history.jsonl`: one JSON object per line, one line per operation.
///
///     {"client":2,"seq":17,"op":"put","key":"k3","value":"c2-17","invoke":1.234567,"complete":1.240123,"result":"ok"}
///     {"client":0,"seq":3,"op":"get","key":"k1","invoke":2.0,"complete":2.01,"result":"value","value":"c1-5"}
///     {"client":0,"seq":4,"op":"get","key":"k1","invoke":2.1,"complete":2.2,"result":"not_found"}
///     {"client":1,"seq":9,"op":"delete","key":"k1","invoke":3.0,"complete":3.1,"result":"ok"}
///     {"client":1,"seq":10,"op":"cas","key":"k1","expected":"c1-5","new":"c1-10","invoke":3.2,"complete":3.25,"result":"ok"}
///     {"client":1,"seq":11,"op":"cas","key":"k1","expected":null,"new":"c1-11","invoke":3.3,"complete":3.4,"result":"mismatch","current":"c0-3"}
///     {"client":3,"seq":2,"op":"put","key":"k2","value":"x","invoke":5.0,"complete":null,"result":null}
///
/// `expected` and `current` are null for an absent key; `complete` and `result` are null for
/// an operation that never completed. A `malformed` result (the store could not decode the
/// request) is read too, so that the checker can report it.
///
/// Reading is strict about the fields it knows (each problem names its line and field),
/// ignores fields it does not, accepts them in any order, and checks the file as a whole:
/// (client, seq) is unique, and a client's completed operations do not overlap in time, since
/// each client runs one operation at a time (one it gave up on may overlap what follows).
public enum History {
    /// Longer lines are refused rather than buffered.
    public static let lineBytesMax = 1 << 20

    /// Parses the text of a `history.jsonl`. Blank lines are skipped.
    public static func parse(text: String) throws(HistoryError) -> [HistoryOperation] {
        try parse(bytes: Array(text.utf8))
    }

    /// Reads and parses a `history.jsonl`; errors name the file.
    public static func read(path: String) throws(HistoryError) -> [HistoryOperation] {
        let bytes: [UInt8]
        do {
            bytes = try HistoryFile.readBytes(path)
        } catch {
            throw HistoryError(path: path, line: nil, field: nil, reason: error.reason)
        }
        do {
            return try parse(bytes: bytes)
        } catch {
            var named = error
            named.path = path
            throw named
        }
    }

    /// The file's text: one line per operation, each ending in a newline.
    public static func encode(_ operations: [HistoryOperation]) -> String {
        var text = ""
        for operation in operations {
            text += encode(operation)
            text += "\n"
        }
        return text
    }

    /// One operation's line, without the newline, in the field order shown above. Times
    /// must be finite. A result the call cannot carry unambiguously (a put that returned a
    /// value) is written as it is, and reading refuses it.
    public static func encode(_ operation: HistoryOperation) -> String {
        var text = "{\"client\":\(operation.client.rawValue),\"seq\":\(operation.seq),\"op\":\"\(operation.call.name)\""
        text += ",\"key\":" + HistoryJSONWriter.quoted(operation.key)
        switch operation.call {
        case .get, .delete: break
        case .put(_, let value): text += ",\"value\":" + HistoryJSONWriter.quoted(value)
        case .compareAndSet(_, let expected, let new):
            text += ",\"expected\":" + HistoryJSONWriter.quotedOrNull(expected) + ",\"new\":" + HistoryJSONWriter.quoted(new)
        }
        text += ",\"invoke\":" + HistoryJSONWriter.number(operation.invokeSeconds)
        guard let completion = operation.completion else {
            return text + ",\"complete\":null,\"result\":null}"
        }
        text += ",\"complete\":" + HistoryJSONWriter.number(completion.seconds)
        switch completion.outcome {
        case .ok: text += ",\"result\":\"ok\""
        case .notFound: text += ",\"result\":\"not_found\""
        case .value(let value): text += ",\"result\":\"value\",\"value\":" + HistoryJSONWriter.quoted(value)
        case .mismatch(let current): text += ",\"result\":\"mismatch\",\"current\":" + HistoryJSONWriter.quotedOrNull(current)
        case .malformed: text += ",\"result\":\"malformed\""
        }
        return text + "}"
    }

    static func parse(bytes: [UInt8]) throws(HistoryError) -> [HistoryOperation] {
        var operations: [HistoryOperation] = []
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            let next = end + 1
            if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            defer { start = next }
            guard end - start <= lineBytesMax else {
                throw HistoryError(line: lineNumber, field: nil, reason: "\(end - start) bytes; a line may have at most \(lineBytesMax)")
            }
            if bytes[start..<end].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            do {
                let fields = try HistoryJSONReader.object(bytes, start: start, end: end)
                operations.append(try HistoryLine(fields: fields).operation(line: lineNumber))
            } catch {
                throw HistoryError(line: lineNumber, field: error.field, reason: error.reason)
            }
        }
        try checkClients(operations)
        return operations
    }

    /// (client, seq) names one operation, and a client's completed operations do not overlap.
    static func checkClients(_ operations: [HistoryOperation]) throws(HistoryError) {
        var byClient: [ClientID: [HistoryOperation]] = [:]
        for operation in operations { byClient[operation.client, default: []].append(operation) }
        for client in byClient.keys.sorted() {
            let mine = byClient[client] ?? []
            var lineOfSeq: [UInt64: Int?] = [:]
            for operation in mine {
                if let earlier = lineOfSeq[operation.seq] {
                    let at = earlier.map { " (line \($0))" } ?? ""
                    throw HistoryError(line: operation.line, field: "seq", reason: "client \(client.rawValue) already has an operation with seq \(operation.seq)\(at)")
                }
                lineOfSeq[operation.seq] = operation.line
            }
            var latest: HistoryOperation?
            for operation in mine.sorted(by: { ($0.invokeSeconds, $0.line ?? 0) < ($1.invokeSeconds, $1.line ?? 0) }) {
                guard let completion = operation.completion else { continue }
                if let latest, let previous = latest.completion, operation.invokeSeconds < previous.seconds {
                    let at = latest.line.map { " (line \($0))" } ?? ""
                    throw HistoryError(
                        line: operation.line, field: "invoke",
                        reason: "client \(client.rawValue) invoked \(operation.name) at \(operation.invokeSeconds) while \(latest.name)\(at) was still running until \(previous.seconds); a client runs one operation at a time"
                    )
                }
                if latest?.completion.map({ $0.seconds < completion.seconds }) ?? true { latest = operation }
            }
        }
    }
}

/// One parsed line's fields, turned into an operation with errors that name the field.
struct HistoryLine {
    let fields: [String: HistoryJSONValue]

    init(fields: [String: HistoryJSONValue]) { self.fields = fields }

    func operation(line: Int) throws(HistoryJSONError) -> HistoryOperation {
        let client = try integer("client", max: UInt64(UInt32.max))
        let seq = try integer("seq", max: UInt64.max)
        let op = try string("op")
        let key = try string("key")
        let call: HistoryOperation.Call
        switch op {
        case "get": call = .get(key: key)
        case "put": call = .put(key: key, value: try string("value"))
        case "delete": call = .delete(key: key)
        case "cas": call = .compareAndSet(key: key, expected: try stringOrNull("expected"), new: try string("new"))
        default: throw HistoryJSONError(field: "op", reason: "\(HistoryJSONWriter.quoted(op)) is not one of get, put, delete, cas")
        }
        let invoke = try number("invoke")
        guard invoke >= 0 else { throw HistoryJSONError(field: "invoke", reason: "\(invoke) is negative; times are seconds since the run started") }
        let complete = try numberOrNull("complete")
        let result = try stringOrNull("result")
        var completion: HistoryOperation.Completion?
        switch (complete, result) {
        case (nil, nil):
            completion = nil
        case (nil, let result?):
            throw HistoryJSONError(field: "result", reason: "is \(HistoryJSONWriter.quoted(result)) but \"complete\" is null; an operation that never completed has no result")
        case (let complete?, nil):
            throw HistoryJSONError(field: "result", reason: "is null but the operation completed at \(complete)")
        case (let complete?, let result?):
            guard complete >= invoke else {
                throw HistoryJSONError(field: "complete", reason: "\(complete) is before the invocation at \(invoke)")
            }
            completion = HistoryOperation.Completion(seconds: complete, outcome: try outcome(result, op: op))
        }
        return HistoryOperation(client: ClientID(UInt32(client)), seq: seq, call: call, invokeSeconds: invoke, completion: completion, line: line)
    }

    /// Any result the format can carry is accepted for any call: a get that answered "ok" is
    /// a wrong answer for the checker to report, not a damaged line.
    private func outcome(_ result: String, op: String) throws(HistoryJSONError) -> HistoryOperation.Outcome {
        switch result {
        case "ok": return .ok
        case "not_found": return .notFound
        case "value":
            guard op != "put" else { throw HistoryJSONError(field: "result", reason: "a put's \"value\" field is its argument, so it cannot also carry a returned value") }
            return .value(try string("value"))
        case "mismatch": return .mismatch(current: try stringOrNull("current"))
        case "malformed": return .malformed
        default: throw HistoryJSONError(field: "result", reason: "\(HistoryJSONWriter.quoted(result)) is not one of ok, value, not_found, mismatch, malformed")
        }
    }

    private func value(_ name: String) throws(HistoryJSONError) -> HistoryJSONValue {
        guard let value = fields[name] else { throw HistoryJSONError(field: name, reason: "missing") }
        return value
    }

    private func string(_ name: String) throws(HistoryJSONError) -> String {
        let value = try value(name)
        guard case .string(let text) = value else { throw HistoryJSONError(field: name, reason: "expected a string, found \(value.kindName)") }
        return text
    }

    private func stringOrNull(_ name: String) throws(HistoryJSONError) -> String? {
        let value = try value(name)
        switch value {
        case .null: return nil
        case .string(let text): return text
        default: throw HistoryJSONError(field: name, reason: "expected a string or null, found \(value.kindName)")
        }
    }

    private func number(_ name: String) throws(HistoryJSONError) -> Double {
        let value = try value(name)
        guard case .number(let number, _) = value else { throw HistoryJSONError(field: name, reason: "expected a number, found \(value.kindName)") }
        guard number.isFinite else { throw HistoryJSONError(field: name, reason: "out of range") }
        return number
    }

    private func numberOrNull(_ name: String) throws(HistoryJSONError) -> Double? {
        if case .null = try value(name) { return nil }
        return try number(name)
    }

    private func integer(_ name: String, max: UInt64) throws(HistoryJSONError) -> UInt64 {
        let value = try value(name)
        guard case .number(_, let integer) = value else { throw HistoryJSONError(field: name, reason: "expected a non-negative integer, found \(value.kindName)") }
        guard let integer else { throw HistoryJSONError(field: name, reason: "expected a non-negative integer") }
        guard integer <= max else { throw HistoryJSONError(field: name, reason: "\(integer) is larger than \(max)") }
        return integer
    }
}

/// The bytes of a history file, with a one-line reason when they cannot be read.
enum HistoryFile {
    struct Failure: Error {
        var reason: String
    }

    static func readBytes(_ path: String) throws(Failure) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Failure(reason: "cannot read: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Failure(reason: "not a regular file") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(reason: "cannot open: \(errnoText())") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(reason: "read failed: \(errnoText())")
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: buffer[0..<n])
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
