// The small piece of JSON that `history.jsonl` needs: one flat object per line, read strictly
// (RFC 8259) so that a damaged line is reported with its field instead of half-understood, and
// written byte for byte the same way every time.

/// A field's value in a history line. Nested arrays and objects (in fields a newer runner may
/// add) are checked for well-formedness and otherwise ignored.
enum HistoryJSONValue: Equatable {
    case string(String)
    /// `integer` is set when the literal is a non-negative integer that fits in UInt64.
    case number(Double, integer: UInt64?)
    case bool(Bool)
    case null
    case nested

    var kindName: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        case .nested: "an array or object"
        }
    }
}

/// A problem in one line's JSON; `field` names the field whose value it was in, if any.
struct HistoryJSONError: Error {
    var field: String?
    var reason: String
}

/// Reads one line, `bytes[start..<end]`, as a flat JSON object.
struct HistoryJSONReader {
    /// Arrays and objects nested deeper than this in an ignored field are refused, so a
    /// hostile line cannot exhaust the stack.
    static let nestingDepthMax = 32

    private let bytes: [UInt8]
    private var position: Int
    private let end: Int
    private var field: String?

    init(_ bytes: [UInt8], start: Int, end: Int) {
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    /// The object's fields in order; a field named twice is an error.
    static func object(_ bytes: [UInt8], start: Int, end: Int) throws(HistoryJSONError) -> [String: HistoryJSONValue] {
        var reader = HistoryJSONReader(bytes, start: start, end: end)
        return try reader.readObject()
    }

    private mutating func readObject() throws(HistoryJSONError) -> [String: HistoryJSONValue] {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { throw failure("a line must be one JSON object, starting with '{'") }
        position += 1
        var fields: [String: HistoryJSONValue] = [:]
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw failure("expected a field name in double quotes") }
                let name = try readString()
                guard fields[name] == nil else { throw HistoryJSONError(field: name, reason: "appears twice in the line") }
                field = name
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw failure("expected ':' after the field name") }
                position += 1
                fields[name] = try readValue(depth: 0)
                skipWhitespace()
                guard peek() == UInt8(ascii: ",") || peek() == UInt8(ascii: "}") else { throw failure("expected ',' or '}' after the value") }
                field = nil
                position += 1
                if bytes[position - 1] == UInt8(ascii: "}") { break }
            }
        }
        skipWhitespace()
        guard position == end else { throw failure("text after the end of the object") }
        return fields
    }

    private mutating func readValue(depth: Int) throws(HistoryJSONError) -> HistoryJSONValue {
        skipWhitespace()
        guard let byte = peek() else { throw failure("the line ends where a value should be") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        case UInt8(ascii: "t"): try readLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try readLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try readLiteral("null"); return .null
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            try skipComposite(depth: depth + 1)
            return .nested
        default: throw failure("not a JSON value")
        }
    }

    private mutating func readLiteral(_ word: StaticString) throws(HistoryJSONError) {
        let count = word.utf8CodeUnitCount
        guard end - position >= count else { throw failure("not a JSON value") }
        for i in 0..<count where bytes[position + i] != word.utf8Start[i] { throw failure("not a JSON value") }
        position += count
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func readNumber() throws(HistoryJSONError) -> HistoryJSONValue {
        let start = position
        var integral = true
        if peek() == UInt8(ascii: "-") { position += 1; integral = false }
        guard let first = peek(), isDigit(first) else { throw failure("malformed number") }
        position += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            position += 1
            integral = false
            guard let d = peek(), isDigit(d) else { throw failure("malformed number: a digit must follow '.'") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            integral = false
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard let d = peek(), isDigit(d) else { throw failure("malformed number: a digit must follow the exponent") }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard let value = Double(text) else { throw failure("malformed number") }
        return .number(value, integer: integral ? UInt64(text) : nil)
    }

    private mutating func readString() throws(HistoryJSONError) -> String {
        position += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard let byte = peek() else { throw failure("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw failure("a string is not valid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                try readEscape(into: &out)
            case 0..<0x20:
                throw failure("a control character must be escaped inside a string")
            default:
                out.append(byte)
            }
        }
    }

    private mutating func readEscape(into out: inout [UInt8]) throws(HistoryJSONError) {
        guard let byte = peek() else { throw failure("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(byte)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try readHex4()
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low surrogate (§7).
                guard end - position >= 2, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                    throw failure("a lone surrogate in a \\u escape")
                }
                position += 2
                let low = try readHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw failure("a lone surrogate in a \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("a lone surrogate in a \\u escape") }
            out.append(contentsOf: Array(String(Character(unicode)).utf8))
        default:
            throw failure("unknown escape '\\\(Character(Unicode.Scalar(byte)))'")
        }
    }

    private mutating func readHex4() throws(HistoryJSONError) -> UInt32 {
        guard end - position >= 4 else { throw failure("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func skipComposite(depth: Int) throws(HistoryJSONError) {
        guard depth <= Self.nestingDepthMax else { throw failure("nested deeper than \(Self.nestingDepthMax) levels") }
        let isObject = peek() == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        position += 1
        skipWhitespace()
        if peek() == close { position += 1; return }
        while true {
            skipWhitespace()
            if isObject {
                guard peek() == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
                _ = try readString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw failure("expected ':' after a member name") }
                position += 1
            }
            _ = try readValue(depth: depth)
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { position += 1; continue }
            guard peek() == close else { throw failure("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
            position += 1
            return
        }
    }

    private func peek() -> UInt8? { position < end ? bytes[position] : nil }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { position += 1 }
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A { position += 1 }
    }

    private func failure(_ reason: String) -> HistoryJSONError {
        HistoryJSONError(field: field, reason: "not valid JSON: \(reason)")
    }
}

/// Writing: the same bytes for the same operation, so files can be compared and diffed.
enum HistoryJSONWriter {
    /// A JSON string literal: quotes, backslashes and control characters escaped, everything
    /// else (including non-ASCII) as UTF-8.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func quotedOrNull(_ text: String?) -> String { text.map(quoted) ?? "null" }

    /// Swift's shortest representation that reads back as the same Double ("1.234567", "2.0",
    /// "1e-05"); each is a valid JSON number.
    static func number(_ value: Double) -> String {
        precondition(value.isFinite, "history times must be finite, got \(value)")
        return value.description
    }
}
