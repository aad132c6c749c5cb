import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import PBFTCheck
import Testing

// The report is checked by parsing it as XML, never by eye: the class names documented on
// `ReportRenderer` are the interface these tests hold it to.

/// An element of a parsed report.
final class ReportNode {
    let name: String
    let attributes: [String: String]
    fileprivate(set) var children: [ReportNode] = []
    fileprivate var ownText = ""

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    var classes: [String] { (attributes["class"] ?? "").split(separator: " ").map(String.init) }

    /// All text inside, as a browser would show it.
    var text: String { ownText + children.map(\.text).joined() }

    /// Descendants in document order, filtered by element name and class tokens.
    func all(_ name: String? = nil, class tokens: String...) -> [ReportNode] {
        all(name, classList: tokens)
    }

    private func all(_ name: String?, classList tokens: [String]) -> [ReportNode] {
        var found: [ReportNode] = []
        for child in children {
            if name == nil || child.name == name, tokens.allSatisfy(child.classes.contains) {
                found.append(child)
            }
            found += child.all(name, classList: tokens)
        }
        return found
    }

    func one(_ name: String? = nil, class tokens: String...) throws -> ReportNode {
        let found = all(name, classList: tokens)
        guard found.count == 1, let node = found.first else {
            throw ReportParseError(message: "expected one \(name ?? "*").\(tokens.joined(separator: ".")), found \(found.count)")
        }
        return node
    }

    func number(_ attribute: String) -> Double? { attributes[attribute].flatMap(Double.init) }
}

struct ReportParseError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Parses the report with Foundation's XMLParser: a page that is not well-formed XML fails.
enum ReportXML {
    static func parse(_ html: String) throws -> ReportNode {
        let parser = XMLParser(data: Data(html.utf8))
        let builder = Builder()
        parser.delegate = builder
        parser.shouldResolveExternalEntities = false
        guard parser.parse(), let root = builder.root else {
            throw ReportParseError(message: "not well-formed: \(parser.parserError.map { "\($0)" } ?? "no root") at line \(parser.lineNumber)")
        }
        return root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var root: ReportNode?
        var stack: [ReportNode] = []

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            let node = ReportNode(name: name, attributes: attributes)
            if let parent = stack.last { parent.children.append(node) } else { root = node }
            stack.append(node)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            stack.removeLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard let node = stack.last else { return }
            // Text after a child element belongs after it; keeping it in order is enough for
            // elements holding text only, which is all the tests read.
            node.ownText += string
        }
    }
}

/// Example runs to render.
enum ReportSample {
    /// A minute of a four-replica run: the primary killed and restarted, a partition, then
    /// message loss to the end; two view changes; one failing verdict.
    static func experiment() -> RunReport {
        var seconds: [RunReport.SecondMetrics] = []
        for second in 0..<60 {
            let disturbed = (15...17).contains(second) || (30...33).contains(second)
            let lossy = second >= 45
            let completed = disturbed ? (second % 3) * 20 : lossy ? 260 + (second * 7) % 40 : 420 + (second * 13) % 60
            let base = 2.4 + Double((second * 7) % 10) / 10
            seconds.append(RunReport.SecondMetrics(
                second: second,
                completed: completed,
                latencyP50Ms: completed == 0 ? nil : disturbed ? 180 : lossy ? base * 3 : base,
                latencyP99Ms: completed == 0 ? nil : disturbed ? 1450 : lossy ? 95 : base * 4,
                latencyMaxMs: completed == 0 ? nil : disturbed ? 2100 : lossy ? 310 : base * 7,
                view: second < 17 ? 0 : second < 33 ? 1 : 2
            ))
        }
        return RunReport(
            name: "primary-crash-partition-loss",
            purpose: "The cluster keeps serving through a primary crash, a partition of the new primary and 20% message loss; view changes restore progress within the timeout.",
            seed: 90249,
            version: "0.9.0-dev",
            started: "2026-11-21T08:30:00Z",
            durationSeconds: 60,
            cluster: [
                .init("n", "4"), .init("f", "1"), .init("checkpoint interval", "128"),
                .init("view change timeout", "500 ms"), .init("clients", "8"),
            ],
            seconds: seconds,
            faults: [
                .init("kill r0", start: 15, end: 25),
                .init("partition 1 / 0,2,3", start: 30, end: 38),
                .init("drop 20% all traffic", start: 45),
            ],
            viewChanges: [
                .init(time: 17.2, view: 1, primary: 1),
                .init(time: 33.5, view: 2, primary: 2),
            ],
            events: [
                .init(time: 15, "kill r0"), .init(time: 17.2, "new view 1"), .init(time: 25, "restart r0"),
                .init(time: 30, "partition"), .init(time: 33.5, "new view 2"), .init(time: 38, "heal"),
                .init(time: 45, "drop 20%"), .init(time: 52.75, "checkpoint 6400 stable"),
            ],
            verdicts: [
                .init("agreement", passed: true, detail: "4 replicas executed the same 21873 operations in the same order"),
                .init("integrity", passed: true, detail: "every executed request was sent by a client, once"),
                .init("linearizability", passed: true, detail: "history of 21873 operations on 64 keys: linearizable"),
                .init("liveness", passed: false, detail: "no operation completed for 3.1 s after the last fault healed\nlimit: 2.0 s (4 view change timeouts)"),
            ]
        )
    }

    static func empty() -> RunReport {
        RunReport(name: "empty", purpose: "", seed: 0, version: "0.9.0-dev", started: "2026-11-21T08:30:00Z", durationSeconds: 0)
    }
}

@Suite struct ReportTests {
    let experiment = ReportSample.experiment()

    @Test func plotsShowEveryFaultAndViewChange() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        #expect(page.name == "html")
        let plots = page.all("svg", class: "plot")
        #expect(plots.count == 2)
        for kind in ["throughput", "latency"] {
            let plot = try page.one("svg", class: "plot", kind)
            let bands = plot.all("rect", class: "fault")
            #expect(bands.count == 3, "\(kind)")
            #expect(plot.all("line", class: "view-change").count == 2, "\(kind)")
            #expect(plot.all("text", class: "view-change-label").map(\.text) == ["v1 (r1)", "v2 (r2)"], "\(kind)")
            #expect(plot.all("text", class: "fault-label").map(\.text) == experiment.faults.map(\.label), "\(kind)")
            #expect(bands.map { $0.number("data-start") } == [15, 30, 45])
            #expect(bands.map { $0.number("data-end") } == [25, 38, 60], "the open-ended fault runs to the end of the run")
            #expect(plot.all("rect", class: "hover").count == 60)
        }
        #expect(try page.one("svg", class: "throughput").all("path", class: "throughput").count == 1)
        let latency = try page.one("svg", class: "latency")
        #expect(latency.all("path", class: "latency-p50").count == 1)
        #expect(latency.all("path", class: "latency-p99").count == 1)
        let busySeconds = experiment.seconds.filter { $0.latencyMaxMs != nil }.count
        #expect(busySeconds < 60)
        #expect(try latency.one("g", class: "latency-max").all("circle").count == busySeconds)
    }

    @Test func timelineHasARowPerFaultAndEveryEvent() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        let timeline = try page.one("svg", class: "timeline")
        let rows = timeline.all("g", class: "fault-row")
        #expect(rows.count == 3)
        #expect(rows.map { try? $0.one("text", class: "fault-row-label").text } == experiment.faults.map(\.label))
        #expect(rows.map { $0.all("path", class: "fault-open").count } == [0, 0, 1])
        let eventRow = try timeline.one("g", class: "event-row")
        #expect(eventRow.all("line", class: "event").count == experiment.events.count)
        #expect(eventRow.all("text", class: "event-label").count == experiment.events.count, "eight events fit")
        #expect(timeline.all("text", class: "events-hidden").isEmpty)
        #expect(try page.one("table", class: "faults").all("tr").count == 4)
        #expect(try page.one("table", class: "events").all("tr").count == experiment.events.count + 1)
    }

    @Test func plotsAndTimelineShareTheTimeAxis() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        let bars = try page.one("svg", class: "timeline").all("rect", class: "fault-bar")
        for kind in ["throughput", "latency"] {
            let bands = try page.one("svg", class: kind).all("rect", class: "fault")
            #expect(bands.map { $0.number("x") } == bars.map { $0.number("x") })
            #expect(bands.map { $0.number("width") } == bars.map { $0.number("width") })
        }
        let widths = page.all("svg").map { $0.attributes["width"] }
        #expect(Set(widths).count == 1, "same width, so the same second lines up when the page scales them")
    }

    @Test func verdictsAndOverallVerdict() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        let rows = page.all("tr", class: "verdict")
        #expect(rows.count == 4)
        #expect(page.all("tr", class: "verdict", "fail").count == 1)
        #expect(page.all("tr", class: "verdict", "pass").count == 3)
        let failed = try page.one("tr", class: "fail")
        #expect(try failed.one("td", class: "verdict-name").text == "liveness")
        #expect(try failed.one("td", class: "verdict-result").text == "FAIL")
        #expect(try failed.one("td", class: "verdict-detail").text.contains("\nlimit: 2.0 s"), "lines of detail are kept")
        let overall = try page.one("p", class: "overall")
        #expect(overall.classes.contains("fail"))
        #expect(try overall.one("strong", class: "verdict-word").text == "FAIL")
        #expect(overall.text.contains("liveness"))

        var passing = experiment
        passing.verdicts[3].passed = true
        let passed = try ReportXML.parse(ReportRenderer.html(passing))
        #expect(try passed.one("p", class: "overall").classes.contains("pass"))
        #expect(try passed.one("strong", class: "verdict-word").text == "PASS")
        #expect(passed.all("tr", class: "fail").isEmpty)
    }

    @Test func headerCarriesTheRunsIdentity() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        #expect(try page.one("h1", class: "name").text == experiment.name)
        #expect(try page.one("p", class: "purpose").text == experiment.purpose)
        let facts = try page.one("table", class: "facts")
        #expect(try facts.one("td", class: "seed").text == "90249")
        #expect(try facts.one("td", class: "version").text == "0.9.0-dev")
        #expect(try facts.one("td", class: "started").text == "2026-11-21T08:30:00Z")
        #expect(try facts.one("td", class: "duration").text == "60.0 s")
        let cluster = try page.one("table", class: "cluster")
        #expect(cluster.all("th").map(\.text) == experiment.cluster.map(\.name))
        #expect(cluster.all("td").map(\.text) == experiment.cluster.map(\.value))
    }

    @Test func nothingIsLoadedFromElsewhere() {
        let html = ReportRenderer.html(experiment)
        let allowed = ["xmlns=\"http://www.w3.org/1999/xhtml\"", "xmlns=\"http://www.w3.org/2000/svg\""]
        var rest = html
        for namespace in allowed { rest = rest.replacingOccurrences(of: namespace, with: "") }
        for forbidden in ["http://", "https://", "//www.", "<script", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe", "<object"] {
            #expect(!rest.lowercased().contains(forbidden), "\(forbidden)")
        }
        #expect(html.components(separatedBy: "xmlns=\"http://www.w3.org/1999/xhtml\"").count == 2, "one page namespace")
    }

    @Test func untrustedTextIsInert() throws {
        let attack = "</svg><script>alert(1)</script><img src=x onerror=alert(2)>"
        let tricky = "a & b \"quoted\" 'single' ]]> <!-- --> \u{0}\u{1B}[31m \u{FFFE}"
        var report = experiment
        report.name = attack
        report.purpose = tricky
        report.version = attack
        report.started = attack
        report.cluster.append(.init(attack, tricky))
        report.faults[0].label = attack
        report.faults[2].label = tricky
        report.events.append(.init(time: 40, attack))
        report.verdicts[0].name = attack
        report.verdicts[3].detail = attack + "\n" + tricky

        let html = ReportRenderer.html(report)
        #expect(!html.contains("<script"))
        #expect(!html.contains("<img"))
        #expect(!html.contains("\u{0}"))
        let page = try ReportXML.parse(html)
        #expect(page.all("script").isEmpty)
        #expect(page.all("img").isEmpty)
        #expect(page.all("svg").count == 3, "the label did not close an svg")
        #expect(try page.one("h1", class: "name").text == attack, "shown as text, exactly")
        let plot = try page.one("svg", class: "throughput")
        #expect(plot.all("text", class: "fault-label").first?.text == LabelLanes.truncated(attack, to: 48))
        #expect(try page.one("svg", class: "timeline").all("text", class: "fault-row-label").first?.text == attack)
        #expect(try page.one("tr", class: "fail").one("td", class: "verdict-detail").text.hasPrefix(attack + "\n"))
        let purpose = try page.one("p", class: "purpose").text
        #expect(purpose.hasPrefix("a & b \"quoted\" 'single' ]]> <!-- --> "), "entities decode back to the text")
        #expect(purpose.contains("\u{FFFD}\u{FFFD}[31m \u{FFFD}"), "characters XML forbids are replaced")
    }

    @Test func emptyReportRenders() throws {
        let html = ReportRenderer.html(ReportSample.empty())
        let page = try ReportXML.parse(html)
        #expect(page.all("svg", class: "plot").count == 2)
        for kind in ["throughput", "latency"] {
            let plot = try page.one("svg", class: kind)
            #expect(try plot.one("text", class: "no-data").text == "no operations completed")
            #expect(plot.all("rect", class: "fault").isEmpty)
            #expect(plot.all("line", class: "view-change").isEmpty)
            #expect(!plot.all("text", class: "tick-label").isEmpty, "axes are still drawn")
        }
        let timeline = try page.one("svg", class: "timeline")
        #expect(timeline.all("g", class: "fault-row").isEmpty)
        #expect(timeline.all("text", class: "no-data").map(\.text) == ["no faults injected", "no events"])
        #expect(page.all("tr", class: "verdict").isEmpty)
        #expect(try page.one("p", class: "overall").classes.contains("none"))
        #expect(try page.one("strong", class: "verdict-word").text == "NO VERDICTS", "nothing checked is not a pass")
        #expect(page.all("table", class: "faults").isEmpty)
        #expect(page.all("details", class: "events").isEmpty)
    }

    @Test func secondsWithoutOperationsSayNoneCompleted() throws {
        var report = ReportSample.empty()
        report.durationSeconds = 10
        report.seconds = (0..<10).map { RunReport.SecondMetrics(second: $0, completed: 0) }
        report.faults = [.init("kill r0 r1", start: 0)]
        let page = try ReportXML.parse(ReportRenderer.html(report))
        #expect(try page.one("svg", class: "throughput").one("text", class: "no-data").text == "no operations completed")
        #expect(try page.one("svg", class: "latency").one("text", class: "no-data").text == "no operations completed")
        #expect(try page.one("svg", class: "throughput").one("rect", class: "fault").number("data-end") == 10)
    }

    @Test func throughputAxisCoversTheBusiestSecond() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        let plot = try page.one("svg", class: "throughput")
        let ticks = try plot.one("g", class: "axis", "y").all("text", class: "tick-label").map { Double($0.text) }
        #expect(!ticks.contains(nil), "tick labels are plain numbers")
        let values = ticks.compactMap { $0 }
        let busiest = Double(experiment.seconds.map(\.completed).max()!)
        #expect(values.first == 0)
        #expect(values == values.sorted() && Set(values).count == values.count)
        #expect(values.last! >= busiest)
        #expect(values.last! < busiest * 2, "not absurdly far above")
        #expect(plot.number("data-y-max") == values.last)
        #expect(plot.attributes["data-y-scale"] == "linear")
        let title = try plot.one("g", class: "axis", "y").one("text", class: "axis-title").text
        #expect(title == "throughput (operations/s)")

        let time = try plot.one("g", class: "axis", "x").all("text", class: "tick-label").compactMap { Double($0.text) }
        #expect(time.first == 0)
        #expect(time.last! <= 60 && time.last! >= 50)
        #expect(time.count >= 4 && time.count <= 13)
        #expect(try plot.one("g", class: "axis", "x").one("text", class: "axis-title").text == "time since start (s)")
    }

    @Test func latencyAxisGoesLogarithmicOverTwoDecades() throws {
        let page = try ReportXML.parse(ReportRenderer.html(experiment))
        let plot = try page.one("svg", class: "latency")
        #expect(plot.attributes["data-y-scale"] == "log", "2.4 ms to 2100 ms")
        let axis = try plot.one("g", class: "axis", "y")
        #expect(try axis.one("text", class: "axis-title").text == "latency (ms, log scale)")
        let ticks = axis.all("text", class: "tick-label").compactMap { Double($0.text) }
        #expect(ticks == [1, 10, 100, 1000, 10000])

        var calm = experiment
        calm.seconds = (0..<30).map { RunReport.SecondMetrics(second: $0, completed: 100, latencyP50Ms: 2 + Double($0 % 3), latencyP99Ms: 9, latencyMaxMs: 14.5) }
        let calmPlot = try ReportXML.parse(ReportRenderer.html(calm)).one("svg", class: "latency")
        #expect(calmPlot.attributes["data-y-scale"] == "linear")
        let calmAxis = try calmPlot.one("g", class: "axis", "y")
        #expect(try calmAxis.one("text", class: "axis-title").text == "latency (ms)")
        let calmTicks = calmAxis.all("text", class: "tick-label").compactMap { Double($0.text) }
        #expect(calmTicks.first == 0 && calmTicks.last! >= 14.5 && calmTicks.last! < 29)
    }

    @Test func crowdedEventLabelsAreThinnedNotOverlapped() throws {
        var report = experiment
        report.events = (0..<40).map { .init(time: 20 + Double($0) * 0.1, "retransmit burst \($0)") }
        let page = try ReportXML.parse(ReportRenderer.html(report))
        let row = try page.one("svg", class: "timeline").one("g", class: "event-row")
        #expect(row.all("line", class: "event").count == 40, "every event keeps its tick")
        let labels = row.all("text", class: "event-label")
        #expect(labels.count < 40 && labels.count >= 3)
        let hidden = try page.one("svg", class: "timeline").one("text", class: "events-hidden").text
        #expect(hidden.hasPrefix("\(40 - labels.count) more event labels"))
        let lanes = Dictionary(grouping: labels) { $0.attributes["y"]! }
        #expect(lanes.count <= ReportPlots.eventLabelLanesMax)
        for lane in lanes.values {
            let spans = lane.map { label in
                let x = label.number("x")!
                let width = LabelLanes.width(label.text, fontSize: PlotFrame.labelFontSize)
                return label.attributes["text-anchor"] == "end" ? (x - width, x) : (x, x + width)
            }.sorted { $0.0 < $1.0 }
            for (left, right) in zip(spans, spans.dropFirst()) {
                #expect(left.1 <= right.0, "labels in one lane do not overlap")
            }
        }
    }

    @Test func aLongRunDropsTheHoverColumns() throws {
        var report = experiment
        report.durationSeconds = 2_000
        report.seconds = (0..<2_000).map { .init(second: $0, completed: 300 + $0 % 40, latencyP50Ms: 3, latencyP99Ms: 11, latencyMaxMs: 20) }
        let html = ReportRenderer.html(report)
        let page = try ReportXML.parse(html)
        #expect(page.all("rect", class: "hover").isEmpty, "past \(ReportPlots.hoverSecondsMax) seconds")
        #expect(try page.one("svg", class: "latency").one("g", class: "latency-max").all("circle").count == 2_000)
        #expect(html.utf8.count < 400_000)
    }

    @Test func renderingIsDeterministic() {
        #expect(ReportRenderer.html(experiment) == ReportRenderer.html(experiment))
    }

    @Test func writesAnExampleToOpen() throws {
        let path = NSTemporaryDirectory() + "pbft-report-example.html"
        let html = ReportRenderer.html(experiment)
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        let bytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        print("report: \(path) \(bytes) bytes")
        #expect(bytes == html.utf8.count)
        #expect(bytes < 200_000, "a minute of run stays small")
    }
}
