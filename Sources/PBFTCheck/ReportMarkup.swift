// The report is XHTML: every element closed, every attribute quoted and escaped, so a browser
// renders it and an XML parser reads it. All text and attribute values pass through `escape`;
// only the renderer's own constants (the style sheet) go in raw.

/// Builds well-formed markup. Elements opened are closed in order (checked), attribute values
/// and text are always escaped.
struct Markup {
    private(set) var text = ""
    private var open: [String] = []

    typealias Attributes = KeyValuePairs<String, String>

    /// Opens `<tag ...>`; a matching `close(tag)` must follow.
    mutating func open(_ tag: String, _ attributes: Attributes = [:]) {
        text += "<" + tag
        append(attributes)
        text += ">"
        open.append(tag)
    }

    /// Opens `<tag ...>` with attributes assembled at run time.
    mutating func open(_ tag: String, pairs: [(String, String)]) {
        text += "<" + tag
        for (name, value) in pairs {
            append(name, value)
        }
        text += ">"
        open.append(tag)
    }

    mutating func close(_ tag: String) {
        precondition(open.last == tag, "closing <\(tag)> while <\(open.last ?? "nothing")> is open")
        open.removeLast()
        text += "</" + tag + ">"
        if Markup.lineAfter.contains(tag) { text += "\n" }
    }

    /// Block elements whose end starts a new line, so the source reads by eye; never an element
    /// whose text the page shows as is (`td` with `white-space: pre-wrap`).
    private static let lineAfter: Set<String> = ["head", "style", "header", "section", "div", "table", "thead", "tbody", "tr", "svg", "g", "details", "footer", "body", "html"]

    /// `<tag ...>content</tag>`, content escaped.
    mutating func element(_ tag: String, _ content: String) {
        element(tag, [:], content)
    }

    mutating func element(_ tag: String, _ attributes: Attributes, _ content: String) {
        open(tag, attributes)
        self.content(content)
        close(tag)
    }

    /// `<tag .../>`.
    mutating func empty(_ tag: String, _ attributes: Attributes = [:]) {
        text += "<" + tag
        append(attributes)
        text += "/>"
    }

    /// Escaped character data.
    mutating func content(_ string: String) {
        text += Markup.escape(string)
    }

    /// The renderer's own trusted constants only (the style sheet): never input text.
    mutating func trusted(_ string: String) {
        text += string
    }

    /// The finished markup; every element must be closed.
    var finished: String {
        precondition(open.isEmpty, "unclosed elements: \(open)")
        return text
    }

    private mutating func append(_ attributes: Attributes) {
        for (name, value) in attributes {
            append(name, value)
        }
    }

    private mutating func append(_ name: String, _ value: String) {
        text += " " + name + "=\"" + Markup.escape(value) + "\""
    }

    /// Escapes text for element content and quoted attribute values alike. Characters XML 1.0
    /// forbids (most C0 controls, U+FFFE, U+FFFF) become U+FFFD, so no input makes the page
    /// unparsable.
    static func escape(_ string: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(string.unicodeScalars.count)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF:
                out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Numbers as the report prints them: fixed decimals, "." as the separator whatever the
/// locale, no exponent notation below 10^15 (beyond that, Swift's own description).
enum ReportNumber {
    /// `value` rounded to `decimals` places (0...6); non-finite values print as "–".
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        precondition((0...6).contains(decimals), "decimals \(decimals) out of 0...6")
        guard value.isFinite else { return "–" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 1e15 else { return value.description }
        let units = Int64(scaled)
        let sign = value < 0 && units != 0 ? "-" : ""
        let whole = units / Int64(scale)
        guard decimals > 0 else { return sign + String(whole) }
        let fraction = String(units % Int64(scale))
        return sign + String(whole) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    /// An SVG coordinate: one decimal is finer than any screen or printer needs.
    static func coordinate(_ value: Double) -> String {
        fixed(value, 1)
    }

    /// Three significant figures, at most three decimals: 0.123, 1.23, 12.3, 123, 12345.
    static func significant(_ value: Double) -> String {
        let magnitude = abs(value)
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3
        return fixed(value, decimals)
    }

    /// Seconds for text: "12.5 s".
    static func seconds(_ value: Double) -> String {
        fixed(value, abs(value) >= 100 ? 0 : 1) + " s"
    }
}
