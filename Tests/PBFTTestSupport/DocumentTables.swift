import Foundation

/// A page of docs/, read so that tests can hold its tables and figures to the code: a page
/// that drifts from the code (or code that drifts from its page) fails a test.
public struct Document: Sendable {
    /// The package's root directory: this file is `Tests/PBFTTestSupport/DocumentTables.swift`.
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    public let path: String
    public let text: String
    public var lines: [Substring] { text.split(separator: "\n", omittingEmptySubsequences: false) }

    /// Reads `relativePath` (such as `docs/wire-format.md`) under the package root.
    public init(_ relativePath: String) throws {
        path = Self.packageRoot + "/" + relativePath
        text = try String(contentsOfFile: path, encoding: .utf8)
    }

    /// The lines under the heading whose text (without the `#`s) is `heading`, up to the next
    /// heading of the same or a higher level; nil when there is no such heading.
    public func section(_ heading: String) -> [Substring]? {
        let lines = lines
        guard let start = lines.firstIndex(where: { Self.heading($0)?.text == heading }),
              let level = Self.heading(lines[start])?.level
        else { return nil }
        var end = start + 1
        var fenced = false
        while end < lines.count {
            if lines[end].hasPrefix("```") { fenced.toggle() }
            if !fenced, let next = Self.heading(lines[end]), next.level <= level { break }
            end += 1
        }
        return Array(lines[(start + 1)..<end])
    }

    /// The `index`-th table in the section under `heading`, or nil.
    public func table(under heading: String, index: Int = 0) -> DocumentTable? {
        guard let section = section(heading) else { return nil }
        var tables: [DocumentTable] = []
        var current: [Substring] = []
        for line in section + [""] {
            if line.hasPrefix("|") {
                current.append(line)
            } else if !current.isEmpty {
                if let table = DocumentTable(current) { tables.append(table) }
                current = []
            }
        }
        return tables.indices.contains(index) ? tables[index] : nil
    }

    /// The text between the lines `<!-- BEGIN name… -->` and `<!-- END name -->`, or nil.
    public func generatedBlock(_ name: String) -> (range: Range<String.Index>, content: String)? {
        guard let begin = text.range(of: "<!-- BEGIN \(name)"),
              let beginLineEnd = text[begin.upperBound...].firstIndex(of: "\n"),
              let end = text.range(of: "<!-- END \(name) -->", range: beginLineEnd..<text.endIndex)
        else { return nil }
        let range = text.index(after: beginLineEnd)..<end.lowerBound
        return (range, String(text[range]))
    }

    /// Replaces a generated block's content and writes the page back (to update a page after
    /// a deliberate change of what it shows).
    public func replacingGeneratedBlock(_ name: String, with content: String) throws {
        guard let block = generatedBlock(name) else { throw DocumentError("\(path): no block \(name)") }
        var text = text
        text.replaceSubrange(block.range, with: content)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func heading(_ line: Substring) -> (level: Int, text: String)? {
        let level = line.prefix(while: { $0 == "#" }).count
        guard level > 0, line.dropFirst(level).first == " " else { return nil }
        return (level, line.dropFirst(level + 1).trimmingCharacters(in: .whitespaces))
    }
}

public struct DocumentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A Markdown table: its header cells and its rows (the separator line dropped).
public struct DocumentTable: Sendable, CustomStringConvertible {
    public let header: [String]
    public let rows: [[String]]

    init?(_ lines: [Substring]) {
        let cells = lines.map(Self.cells)
        guard cells.count >= 2, cells[1].allSatisfy({ $0.allSatisfy { "-:".contains($0) } && !$0.isEmpty }) else { return nil }
        header = cells[0]
        rows = Array(cells.dropFirst(2))
    }

    init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    /// The table with each `offset` and `size` cell that gives alternatives (`4 or 16`, one
    /// per variant of a layout) reduced to its `index`-th: one variant's plain layout table.
    public func choosing(alternative index: Int) -> DocumentTable {
        let columns = ["offset", "size"].compactMap(column)
        return DocumentTable(header: header, rows: rows.map { row in
            var row = row
            for c in columns where c < row.count {
                let alternatives = row[c].components(separatedBy: " or ")
                if alternatives.count > 1, alternatives.indices.contains(index) { row[c] = alternatives[index] }
            }
            return row
        })
    }

    /// The cells of one row, trimmed; a `|` inside backticks or escaped as `\|` does not split.
    static func cells(_ line: Substring) -> [String] {
        var cells: [String] = []
        var cell = ""
        var code = false
        var escaped = false
        for character in line.dropFirst() {
            if escaped {
                cell.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "`" {
                code.toggle()
                cell.append(character)
            } else if character == "|", !code {
                cells.append(cell.trimmingCharacters(in: .whitespaces))
                cell = ""
            } else {
                cell.append(character)
            }
        }
        return cells
    }

    /// The index of the column whose header is `name`.
    public func column(_ name: String) -> Int? { header.firstIndex(of: name) }

    /// The cells of the column named `name`, one per row.
    public func cells(_ name: String) -> [String] {
        guard let column = column(name) else { return [] }
        return rows.map { column < $0.count ? $0[column] : "" }
    }

    public var description: String { ([header] + rows).map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") }
}

/// Reading the figures a page writes for people: `1,024`, `32 MiB (33,554,432)`, `0x50`, `4 + \`k\``.
public enum DocumentNumber {
    /// The integers in `text`, in order: decimal with `,` between groups of three digits, or
    /// hexadecimal after `0x`. Digits inside a word (`L₁`, `u32`) do not count.
    public static func integers(in text: String) -> [Int] {
        let characters = Array(text)
        var numbers: [Int] = []
        var i = 0
        func isDigit(_ k: Int) -> Bool { k < characters.count && characters[k].isASCII && characters[k].isNumber }
        func isLetter(_ k: Int) -> Bool { k >= 0 && k < characters.count && (characters[k].isLetter || characters[k] == "_") }
        while i < characters.count {
            guard isDigit(i) else {
                i += 1
                continue
            }
            if isLetter(i - 1) {
                while isDigit(i) { i += 1 }
                continue
            }
            if characters[i] == "0", i + 1 < characters.count, characters[i + 1] == "x" {
                var j = i + 2
                var value = 0
                while j < characters.count, let digit = characters[j].hexDigitValue {
                    value = value * 16 + digit
                    j += 1
                }
                numbers.append(value)
                i = j
                continue
            }
            var j = i
            var value = 0
            while true {
                while isDigit(j) {
                    value = value * 10 + characters[j].wholeNumberValue!
                    j += 1
                }
                // A thousands separator: a comma followed by exactly three digits.
                if j < characters.count, characters[j] == ",", isDigit(j + 1), isDigit(j + 2), isDigit(j + 3), !isDigit(j + 4) {
                    j += 1
                    continue
                }
                break
            }
            if !isLetter(j) { numbers.append(value) }
            i = j
        }
        return numbers
    }

    /// The exact value a cell states: the number in parentheses when there is one (`32 MiB
    /// (33,554,432)`), else its only number; nil otherwise.
    public static func exact(_ text: String) -> Int? {
        if let open = text.lastIndex(of: "("), let close = text[open...].firstIndex(of: ")") {
            let inside = integers(in: String(text[text.index(after: open)..<close]))
            if inside.count == 1 { return inside[0] }
        }
        let all = integers(in: text)
        return all.count == 1 ? all[0] : nil
    }

    /// A size or offset cell of a layout table: `n` is `n` fixed bytes; `n + x` is `n` fixed
    /// bytes followed by a variable part; anything else (`…`, `` `L` ``, `` `r` × 36 ``) is
    /// variable with no fixed bytes.
    public static func layout(_ cell: String) -> (fixed: Int, variable: Bool) {
        let plain = cell.replacingOccurrences(of: "`", with: "").trimmingCharacters(in: .whitespaces)
        if let n = Int(plain) { return (n, false) }
        let parts = plain.split(separator: "+", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count == 2, let n = Int(parts[0]) { return (n, true) }
        return (0, true)
    }
}
