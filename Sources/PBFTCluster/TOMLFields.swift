internal import TOMLKit
import PBFTWire

/// Typed access to a parsed TOML table whose errors name the field, and a check that no
/// unknown field (a typo, usually) slipped in.
struct TOMLFields {
    let table: TOMLTable
    /// The field path so far, `replicas[2]` say; empty at the top.
    let path: String

    static func parse(_ text: String, file: String) throws(FileError) -> TOMLFields {
        do {
            return TOMLFields(table: try TOMLTable(string: text), path: "")
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw FileError(file, "line \(at.line), column \(at.column): not valid TOML: \(error.description)")
        } catch {
            throw FileError(file, "not valid TOML: \(error)")
        }
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func reject(_ key: String, _ reason: String) -> String { "field '\(name(key))': \(reason)" }

    /// Fails on any key not in `known`.
    func onlyKeys(_ known: [String]) throws(FieldError) {
        for key in table.keys.sorted() where !known.contains(key) {
            throw FieldError("unknown field '\(name(key))' (expected one of: \(known.joined(separator: ", ")))")
        }
    }

    private func value(_ key: String) throws(FieldError) -> any TOMLValueConvertible {
        guard let value = table[key] else { throw FieldError("missing field '\(name(key))'") }
        return value
    }

    func string(_ key: String) throws(FieldError) -> String {
        guard let s = try value(key).string else { throw FieldError(reject(key, "expected a string")) }
        return s
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws(FieldError) -> Int {
        guard let i = try value(key).int else { throw FieldError(reject(key, "expected an integer")) }
        guard range.contains(i) else {
            throw FieldError(reject(key, "\(i) is out of range (\(range.lowerBound)...\(range.upperBound))"))
        }
        return i
    }

    func hexBytes(_ key: String, count: Int) throws(FieldError) -> [UInt8] {
        let text = try string(key)
        guard let bytes = Hex.decode(text), bytes.count == count else {
            throw FieldError(reject(key, "expected \(2 * count) hex digits (\(count) bytes), got \(text.utf8.count) characters"))
        }
        return bytes
    }

    /// An array of tables, each returned with its indexed path.
    func tables(_ key: String) throws(FieldError) -> [TOMLFields] {
        guard let array = try value(key).array else { throw FieldError(reject(key, "expected an array of tables ([[\(key)]])")) }
        var result: [TOMLFields] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else { throw FieldError(reject("\(key)[\(index)]", "expected a table")) }
            result.append(TOMLFields(table: table, path: "\(name(key))[\(index)]"))
        }
        return result
    }

    func has(_ key: String) -> Bool { table[key] != nil }
}

/// A field-level problem; the loader adds the file name.
struct FieldError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A TOML basic string with the characters TOML requires escaped.
func tomlString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
