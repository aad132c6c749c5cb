internal import TOMLKit
import Foundation
import PBFTWire

/// Typed access to a parsed TOML table whose errors name the field, and a check that no
/// unknown field (a typo, usually) slipped in. Package-wide: the experiment files use it too.
package struct TOMLFields {
    let table: TOMLTable
    /// The field path so far, `replicas[2]` say; empty at the top.
    let path: String

    package static func parse(_ text: String, file: String) throws(FileError) -> TOMLFields {
        do {
            return TOMLFields(table: try TOMLTable(string: text), path: "")
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw FileError(file, "line \(at.line), column \(at.column): not valid TOML: \(error.description)")
        } catch {
            throw FileError(file, "not valid TOML: \(error)")
        }
    }

    package func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    package func reject(_ key: String, _ reason: String) -> String { "field '\(name(key))': \(reason)" }

    /// Fails on any key not in `known`.
    package func onlyKeys(_ known: [String]) throws(FieldError) {
        for key in table.keys.sorted() where !known.contains(key) {
            throw FieldError("unknown field '\(name(key))' (expected one of: \(known.joined(separator: ", ")))")
        }
    }

    private func value(_ key: String) throws(FieldError) -> any TOMLValueConvertible {
        guard let value = table[key] else { throw FieldError("missing field '\(name(key))'") }
        return value
    }

    package func string(_ key: String) throws(FieldError) -> String {
        guard let s = try value(key).string else { throw FieldError(reject(key, "expected a string")) }
        return s
    }

    package func integer(_ key: String, in range: ClosedRange<Int>) throws(FieldError) -> Int {
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
    package func tables(_ key: String) throws(FieldError) -> [TOMLFields] {
        guard let array = try value(key).array else { throw FieldError(reject(key, "expected an array of tables ([[\(key)]])")) }
        var result: [TOMLFields] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else { throw FieldError(reject("\(key)[\(index)]", "expected a table")) }
            result.append(TOMLFields(table: table, path: "\(name(key))[\(index)]"))
        }
        return result
    }

    package func has(_ key: String) -> Bool { table[key] != nil }

    /// A number: an integer or a float, within `range`.
    package func number(_ key: String, in range: ClosedRange<Double>) throws(FieldError) -> Double {
        let raw = try value(key)
        guard let x = raw.double ?? raw.int.map(Double.init) else { throw FieldError(reject(key, "expected a number")) }
        guard x.isFinite, range.contains(x) else { throw FieldError(reject(key, "\(x) is out of range (\(range.lowerBound)...\(range.upperBound))")) }
        return x
    }

    package func bool(_ key: String) throws(FieldError) -> Bool {
        guard let b = try value(key).bool else { throw FieldError(reject(key, "expected true or false")) }
        return b
    }

    /// A sub-table (`[key]` or an inline table).
    package func subtable(_ key: String) throws(FieldError) -> TOMLFields {
        guard let t = try value(key).table else { throw FieldError(reject(key, "expected a table ([\(name(key))])")) }
        return TOMLFields(table: t, path: name(key))
    }

    /// The keys present, sorted.
    package var keys: [String] { table.keys.sorted() }
}

/// A field-level problem; the loader adds the file name (and the line, via `TOMLLines`).
package struct FieldError: Error {
    package let message: String
    package init(_ message: String) { self.message = message }
}

/// Finds the line of a field named by its path (`load.rate`, `timeline[2].do`) in TOML text
/// written the usual way (`[table]` and `[[array]]` headers, `key = value` lines), for error
/// messages that name the line as well as the field. Returns nil when it cannot tell.
package enum TOMLLines {
    package static func line(of path: String, in text: String) -> Int? {
        // Split `a.b[2].c` into table parts and the final key.
        var parts: [(name: String, index: Int?)] = []
        for piece in path.split(separator: ".") {
            if let open = piece.firstIndex(of: "["), piece.hasSuffix("]"), let index = Int(piece[piece.index(after: open)..<piece.index(before: piece.endIndex)]) {
                parts.append((String(piece[..<open]), index))
            } else {
                parts.append((String(piece), nil))
            }
        }
        guard let last = parts.popLast() else { return nil }
        let header = parts.map(\.name).joined(separator: ".")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var start = 0
        var end = lines.count
        if !header.isEmpty {
            let wanted = parts.last?.index ?? 0
            var seen = -1
            guard let found = lines.indices.first(where: { i in
                let l = lines[i]
                guard l == "[\(header)]" || l == "[[\(header)]]" || l.hasPrefix("[[\(header)]] ") || l.hasPrefix("[\(header)] ") else { return false }
                seen += 1
                return seen == wanted
            }) else { return nil }
            start = found + 1
            end = lines[start...].firstIndex(where: { $0.hasPrefix("[") }) ?? lines.count
        } else {
            end = lines.firstIndex(where: { $0.hasPrefix("[") }) ?? lines.count
        }
        let key = last.name
        guard let i = lines[start..<end].firstIndex(where: { $0.hasPrefix(key + " ") || $0.hasPrefix(key + "=") }) else {
            return header.isEmpty ? nil : start
        }
        return i + 1
    }
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
