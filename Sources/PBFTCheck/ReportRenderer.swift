/// Renders a `RunReport` as `report.html`: one self-contained page (inline CSS and SVG; no
/// scripts, fonts, images or links) that opens offline and prints cleanly. The markup is XHTML
/// (every element closed, attributes quoted), so an XML parser reads it as well as a browser.
/// All text from the report is escaped; characters XML forbids become U+FFFD.
///
/// The page, in order: the header (name, purpose, overall verdict, seed, version, start,
/// duration, totals, cluster settings), the throughput plot, the latency plot, the fault
/// timeline with a table of the fault intervals, the verdicts table, and the full event list.
///
/// Class names are an interface: tests and tools find the report's parts by them. A `class`
/// attribute is a space-separated list; match the tokens.
///
/// | element | class | what |
/// |---|---|---|
/// | `p` | `overall pass`, `overall fail`, `overall none` | the overall verdict, in words: PASS only if no verdict failed and one passed (a skipped one does neither); `none` when no verdicts |
/// | `strong` | `verdict-word` | "PASS", "FAIL" or "NO VERDICTS", inside `.overall` |
/// | `table` | `facts`, `cluster` | run facts (`td.seed`, `td.version`, `td.started`, `td.duration`, `td.operations`, `td.view-change-count`, `td.fault-count`, `td.epoch-count` after a reconfiguration); cluster settings (`th` name, `td` value) |
/// | `svg` | `plot throughput`, `plot latency` | the plots; `data-y-scale` is `linear` or `log`, `data-y-max` the top of the y axis |
/// | `svg` | `timeline` | the fault timeline |
/// | `rect` | `fault` | in each plot (inside `g.fault-bands`), one band per fault interval, input order; `data-start`, `data-end` in seconds |
/// | `text` | `fault-label`, `view-change-label` | labels above a plot (left out when crowded) |
/// | `line` | `view-change` | in each plot, one per view change; `data-view`, `data-time` |
/// | `path` | `throughput`, `latency-p50`, `latency-p99` | the series; `g.latency-max` holds one `circle` per second |
/// | `g` | `axis x`, `axis y` | axes; `text.tick-label` holds a tick's number, `text.axis-title` the quantity and unit |
/// | `text` | `no-data` | "no operations completed", "no faults injected", "no events" |
/// | `rect` | `hover` | per-second columns whose `title` gives that second's figures |
/// | `g` | `fault-row` | in the timeline, one per fault interval: `text.fault-row-label`, `rect.fault-bar`, `path.fault-open` if open-ended |
/// | `g` | `event-row` | in the timeline: `line.event` per event, `text.event-label` for those with room |
/// | `text` | `events-hidden` | how many event labels were left out for space |
/// | `table` | `faults`, `verdicts`, `events` | fault intervals (after the timeline); verdicts; every event (in `details.events`) |
/// | `tr` | `verdict pass`, `verdict fail`, `verdict skipped` | one per verdict: `td.verdict-name`, `td.verdict-result` ("PASS"/"FAIL"/"SKIPPED"), `td.verdict-detail` (for a skipped one, why) |
public enum ReportRenderer {
    /// The whole page.
    public static func html(_ report: RunReport) -> String {
        let timeline = ReportTimeline(report)
        var m = Markup()
        m.trusted("<!DOCTYPE html>\n")
        m.open("html", ["xmlns": "http://www.w3.org/1999/xhtml", "lang": "en"])
        m.open("head")
        m.empty("meta", ["charset": "utf-8"])
        m.empty("meta", ["name": "viewport", "content": "width=device-width, initial-scale=1"])
        m.element("title", "\(report.name): \(overallWord(report)) (pbft run report)")
        m.open("style")
        m.trusted(styleSheet)
        m.close("style")
        m.close("head")
        m.open("body")

        header(report, timeline: timeline, into: &m)
        figure("Throughput", class: "throughput", into: &m, caption: """
            Operations completed in each second of the run. Shaded bands: fault intervals, \
            labelled above the plot. Vertical lines: view changes, labelled with the new view \
            and its primary (v3 (r3)); after a reconfiguration, with the epoch too (e1 v0 (r0): \
            epoch 1 began, in view 0).
            """) { ReportPlots.throughput(timeline, into: &$0) }
        figure("Latency", class: "latency", into: &m, caption: """
            Client-observed latency of the operations completed in each second: median (p50, \
            solid), 99th percentile (p99, dashed), maximum (dots). Bands and lines as above.
            """) { ReportPlots.latency(timeline, into: &$0) }
        figure("Faults and events", class: "timeline", into: &m, caption: """
            One row per fault interval (an arrowhead: in force until the end of the run), then \
            the events, on the plots' time axis.
            """) {
            ReportPlots.faultTimeline(timeline, into: &$0)
        } after: {
            faultTable(timeline, into: &$0)
        }
        verdictTable(report.verdicts, into: &m)
        eventList(timeline, into: &m)

        m.element("footer", [:], "Report of a pbft experiment run, pbft version \(report.version). Self-contained: nothing is loaded from elsewhere.")
        m.close("body")
        m.close("html")
        return m.finished + "\n"
    }

    static func overallWord(_ report: RunReport) -> String {
        report.verdicts.isEmpty ? "NO VERDICTS" : report.passed ? "PASS" : "FAIL"
    }

    private static func header(_ report: RunReport, timeline: ReportTimeline, into m: inout Markup) {
        m.open("header", ["class": "run"])
        m.element("h1", ["class": "name"], report.name)
        m.element("p", ["class": "purpose"], report.purpose)

        let failed = report.verdicts.filter(\.failed)
        let skipped = report.verdicts.filter(\.skipped)
        let state = report.verdicts.isEmpty ? "none" : report.passed ? "pass" : "fail"
        m.open("p", ["class": "overall " + state])
        m.element("strong", ["class": "verdict-word"], overallWord(report))
        if report.verdicts.isEmpty {
            m.content(": no checks were run")
        } else if report.passed {
            m.content(skipped.isEmpty
                ? ": all \(report.verdicts.count) checks passed"
                : ": \(report.verdicts.count - skipped.count) of \(report.verdicts.count) checks passed, \(skipped.count) skipped (\(skipped.map(\.name).joined(separator: ", ")))")
        } else {
            m.content(": \(failed.count) of \(report.verdicts.count) checks failed (\(failed.map(\.name).joined(separator: ", ")))"
                + (skipped.isEmpty ? "" : ", \(skipped.count) skipped (\(skipped.map(\.name).joined(separator: ", ")))"))
        }
        m.close("p")

        m.open("div", ["class": "tables"])
        m.open("table", ["class": "facts"])
        m.open("tbody")
        for fact in facts(report, timeline: timeline) {
            m.open("tr")
            m.element("th", ["scope": "row"], fact.name)
            m.element("td", ["class": fact.class], fact.value)
            m.close("tr")
        }
        m.close("tbody")
        m.close("table")
        if !report.cluster.isEmpty {
            m.open("table", ["class": "cluster"])
            m.open("tbody")
            for setting in report.cluster {
                m.open("tr")
                m.element("th", ["scope": "row"], setting.name)
                m.element("td", [:], setting.value)
                m.close("tr")
            }
            m.close("tbody")
            m.close("table")
        }
        m.close("div")
        m.close("header")
    }

    /// The header's lines about the run, with the class of each value's cell.
    private static func facts(_ report: RunReport, timeline: ReportTimeline) -> [(name: String, class: String, value: String)] {
        let counts = timeline.completed
        let total = counts.reduce(0, +)
        var operations = "none"
        if total > 0, let peak = counts.max(), let peakSecond = counts.firstIndex(of: peak) {
            let mean = Double(total) / timeline.end
            operations = "\(total); mean \(ReportNumber.significant(mean))/s, peak \(peak)/s (second \(peakSecond))"
        }
        var views = "none"
        let changes = timeline.views.filter { !$0.startsEpoch }
        if let highest = changes.map(\.view).max() {
            views = "\(changes.count); highest view \(highest)"
        }
        let epochs = timeline.views.filter(\.startsEpoch)
        let epochLine: [(name: String, class: String, value: String)] = epochs.isEmpty ? [] : [("epochs entered", "epoch-count", "\(epochs.count); last " + (epochs.last?.label ?? ""))]
        return [
            ("seed", "seed", String(report.seed)),
            ("version", "version", report.version),
            ("started", "started", report.started),
            ("duration", "duration", ReportNumber.seconds(report.durationSeconds)),
            ("operations completed", "operations", operations),
            ("view changes", "view-change-count", views),
            ("fault intervals", "fault-count", timeline.faults.isEmpty ? "none" : String(timeline.faults.count)),
        ] + epochLine
    }

    private static func figure(
        _ title: String,
        class name: String,
        into m: inout Markup,
        caption: String,
        body: (inout Markup) -> Void,
        after: (inout Markup) -> Void = { _ in }
    ) {
        m.open("section", ["class": "figure " + name])
        m.element("h2", [:], title)
        body(&m)
        m.element("p", ["class": "caption"], caption)
        after(&m)
        m.close("section")
    }

    private static func faultTable(_ timeline: ReportTimeline, into m: inout Markup) {
        guard !timeline.faults.isEmpty else { return }
        m.open("table", ["class": "faults"])
        m.open("thead")
        m.open("tr")
        m.element("th", [:], "fault")
        m.element("th", ["class": "number"], "start (s)")
        m.element("th", ["class": "number"], "end (s)")
        m.close("tr")
        m.close("thead")
        m.open("tbody")
        for fault in timeline.faults {
            m.open("tr")
            m.element("td", [:], fault.label)
            m.element("td", ["class": "number"], ReportNumber.fixed(fault.start, 1))
            m.element("td", ["class": "number"], fault.open ? "end of run" : ReportNumber.fixed(fault.end, 1))
            m.close("tr")
        }
        m.close("tbody")
        m.close("table")
    }

    private static func verdictTable(_ verdicts: [RunReport.Verdict], into m: inout Markup) {
        m.open("section", ["class": "verdicts"])
        m.element("h2", [:], "Verdicts")
        guard !verdicts.isEmpty else {
            m.element("p", ["class": "no-data"], "no checks were run")
            m.close("section")
            return
        }
        m.open("table", ["class": "verdicts"])
        m.open("thead")
        m.open("tr")
        m.element("th", [:], "check")
        m.element("th", [:], "result")
        m.element("th", [:], "evidence")
        m.close("tr")
        m.close("thead")
        m.open("tbody")
        for verdict in verdicts {
            m.open("tr", ["class": verdict.skipped ? "verdict skipped" : verdict.passed ? "verdict pass" : "verdict fail"])
            m.element("td", ["class": "verdict-name"], verdict.name)
            m.element("td", ["class": "verdict-result"], verdict.word)
            m.element("td", ["class": "verdict-detail"], verdict.detail)
            m.close("tr")
        }
        m.close("tbody")
        m.close("table")
        m.close("section")
    }

    private static func eventList(_ timeline: ReportTimeline, into m: inout Markup) {
        guard !timeline.events.isEmpty else { return }
        m.open("details", ["class": "events"])
        m.element("summary", [:], "All events (\(timeline.events.count))")
        m.open("table", ["class": "events"])
        m.open("thead")
        m.open("tr")
        m.element("th", ["class": "number"], "time (s)")
        m.element("th", [:], "event")
        m.close("tr")
        m.close("thead")
        m.open("tbody")
        for event in timeline.events {
            m.open("tr")
            m.element("td", ["class": "number"], ReportNumber.fixed(event.time, 3))
            m.element("td", [:], event.label)
            m.close("tr")
        }
        m.close("tbody")
        m.close("table")
        m.close("details")
    }

    /// Quiet type, tables without rules but one under the heads, and print rules that keep
    /// each figure on one page. No fonts are fetched: the system's sans-serif and monospace.
    static let styleSheet = """
        body { font: 14px/1.45 -apple-system, "Helvetica Neue", Helvetica, Arial, sans-serif; color: #222; \
        max-width: 800px; margin: 2em auto; padding: 0 1em; }
        h1 { font-size: 1.5em; margin: 0 0 .2em; }
        h2 { font-size: 1.05em; font-weight: 600; margin: 2em 0 .4em; }
        .purpose { margin: 0 0 1em; color: #444; }
        .overall { display: inline-block; margin: 0 0 1em; padding: .3em .7em; border: 2px solid #888; }
        .overall.pass { border-color: #2e7d32; }
        .overall.fail { border-color: #b71c1c; border-width: 3px; }
        .overall.pass .verdict-word { color: #2e7d32; }
        .overall.fail .verdict-word { color: #b71c1c; }
        .tables { display: flex; flex-wrap: wrap; gap: 0 3em; align-items: flex-start; }
        table { border-collapse: collapse; margin: 0 0 .5em; }
        th, td { text-align: left; vertical-align: top; padding: .15em 1.2em .15em 0; }
        th[scope=row] { font-weight: normal; color: #666; }
        thead th { font-weight: 600; border-bottom: 1px solid #999; }
        .number { text-align: right; font-variant-numeric: tabular-nums; }
        table.verdicts td { border-bottom: 1px solid #e6e6e6; padding-top: .4em; padding-bottom: .4em; }
        .verdict-result { font-weight: 600; white-space: nowrap; }
        tr.pass .verdict-result { color: #2e7d32; }
        tr.fail .verdict-result { color: #b71c1c; }
        tr.fail .verdict-result::before { content: "\\2717\\00a0"; }
        tr.pass .verdict-result::before { content: "\\2713\\00a0"; }
        tr.skipped .verdict-result { color: #8a6d00; }
        .verdict-detail { white-space: pre-wrap; font: .85em/1.4 ui-monospace, Menlo, Consolas, monospace; }
        svg { display: block; width: 100%; height: auto; }
        rect.hover:hover { fill-opacity: .05; }
        .caption { font-size: .85em; color: #555; margin: .2em 0 0; }
        summary { cursor: pointer; margin: 1.5em 0 .4em; font-weight: 600; }
        footer { margin: 3em 0 1em; font-size: .8em; color: #888; }
        @media print {
          body { max-width: none; margin: 0; font-size: 10pt; }
          section, tr, svg { break-inside: avoid; }
          rect.hover { display: none; }
        }

        """
}
