// The report's figures, each a standalone SVG (namespace, fonts and colours as attributes) so
// it can be cut out of the page into a paper. They share one horizontal layout, so the same
// second sits at the same x in the throughput plot, the latency plot and the fault timeline.

/// The horizontal layout shared by every figure, and one figure's vertical layout.
struct PlotFrame {
    static let width = 760.0
    static let left = 64.0
    static let right = 20.0
    static let font = "Helvetica, Arial, sans-serif"
    static let fontSize = 11.0
    static let labelFontSize = 10.0
    static let laneHeight = 13.0
    static let labelLanesMax = 4

    /// Top of the plotting area.
    let top: Double
    let height: Double
    let time: ValueAxis

    var x0: Double { Self.left }
    var x1: Double { Self.width - Self.right }
    var bottom: Double { top + height }

    func x(_ seconds: Double) -> Double {
        x0 + time.fraction(seconds) * (x1 - x0)
    }
}

/// Colours and strokes: quiet, and told apart by shape as well as hue so they survive print.
enum PlotStyle {
    static let ink = "#222222"
    static let muted = "#666666"
    static let axis = "#999999"
    static let grid = "#e6e6e6"
    static let fault = "#d9822b"
    static let view = "#444444"
    static let throughput = "#1f4e79"
    static let p50 = "#1f4e79"
    static let p99 = "#a63603"
    static let max = "#888888"
}

enum ReportPlots {
    /// Operations completed per second, a step line over each second.
    static func throughput(_ timeline: ReportTimeline, into m: inout Markup) {
        let counts = timeline.completed
        let yAxis = ValueAxis.linear(max: Double(counts.max() ?? 0), integral: true)
        let noData = counts.allSatisfy { $0 == 0 } ? "no operations completed" : nil
        plot(
            kind: "throughput", title: "Throughput: operations completed per second",
            yAxis: yAxis, yTitle: "throughput (operations/s)", legend: [], noData: noData,
            timeline: timeline, into: &m
        ) { frame, y, m in
            guard !counts.isEmpty else { return }
            var line = "M\(c(frame.x(0))) \(c(y(Double(counts[0]))))"
            for (second, count) in counts.enumerated() {
                if second > 0 { line += "V\(c(y(Double(count))))" }
                line += "H\(c(frame.x(Double(second + 1))))"
            }
            let area = line + "V\(c(frame.bottom))H\(c(frame.x(0)))Z"
            m.empty("path", ["class": "throughput-area", "d": area, "fill": PlotStyle.throughput, "fill-opacity": "0.05", "stroke": "none"])
            m.empty("path", ["class": "throughput", "d": line, "fill": "none", "stroke": PlotStyle.throughput, "stroke-width": "1.5", "stroke-linejoin": "round"])
        }
    }

    /// p50 and p99 per second as lines, the maximum as dots; a log axis when they span more
    /// than two decades.
    static func latency(_ timeline: ReportTimeline, into m: inout Markup) {
        let p50 = timeline.seconds.map { usable($0?.latencyP50Ms) }
        let p99 = timeline.seconds.map { usable($0?.latencyP99Ms) }
        let maxima = timeline.seconds.map { usable($0?.latencyMaxMs) }
        let values = (p50 + p99 + maxima).compactMap { $0 }
        let yAxis = ValueAxis.latency(values)
        let yTitle = yAxis.kind == .logarithmic ? "latency (ms, log scale)" : "latency (ms)"
        let legend: [LegendEntry] = [
            LegendEntry(label: "p50", shape: .line(colour: PlotStyle.p50, dash: nil)),
            LegendEntry(label: "p99", shape: .line(colour: PlotStyle.p99, dash: "5 3")),
            LegendEntry(label: "max", shape: .dot(colour: PlotStyle.max)),
        ]
        plot(
            kind: "latency", title: "Latency of completed operations per second (p50, p99, max)",
            yAxis: yAxis, yTitle: yTitle, legend: legend, noData: values.isEmpty ? "no operations completed" : nil,
            timeline: timeline, into: &m
        ) { frame, y, m in
            if let d = linePath(p50, frame: frame, y: y) {
                m.empty("path", ["class": "latency-p50", "d": d, "fill": "none", "stroke": PlotStyle.p50, "stroke-width": "1.5", "stroke-linejoin": "round", "stroke-linecap": "round"])
            }
            if let d = linePath(p99, frame: frame, y: y) {
                m.empty("path", ["class": "latency-p99", "d": d, "fill": "none", "stroke": PlotStyle.p99, "stroke-width": "1.2", "stroke-dasharray": "5 3", "stroke-linejoin": "round"])
            }
            m.open("g", ["class": "latency-max", "fill": PlotStyle.max, "stroke": "none"])
            for (second, value) in maxima.enumerated() {
                guard let value else { continue }
                m.empty("circle", ["cx": c(frame.x(Double(second) + 0.5)), "cy": c(y(value)), "r": "1.6"])
            }
            m.close("g")
        }
    }

    /// A value is drawn only if it is a finite, non-negative number.
    private static func usable(_ value: Double?) -> Double? {
        guard let value, value.isFinite, value >= 0 else { return nil }
        return value
    }

    /// A line through the middle of each second with a value, broken where a second has none;
    /// a second alone between gaps is drawn across its width so it still shows.
    private static func linePath(_ values: [Double?], frame: PlotFrame, y: (Double) -> Double) -> String? {
        var d = ""
        for (second, value) in values.enumerated() {
            guard let value else { continue }
            let before = second > 0 && values[second - 1] != nil
            let after = second + 1 < values.count && values[second + 1] != nil
            let x = frame.x(Double(second) + 0.5)
            switch (before, after) {
            case (true, _): d += "L\(c(x)) \(c(y(value)))"
            case (false, true): d += "M\(c(x)) \(c(y(value)))"
            case (false, false): d += "M\(c(frame.x(Double(second)))) \(c(y(value)))H\(c(frame.x(Double(second + 1))))"
            }
        }
        return d.isEmpty ? nil : d
    }

    struct LegendEntry {
        enum Shape {
            case line(colour: String, dash: String?)
            case dot(colour: String)
        }

        let label: String
        let shape: Shape
    }

    /// One plot: grid, fault bands, the series, view-change markers, axes, labels above the
    /// plot for the bands and markers, a legend, and per-second hover titles on top.
    private static func plot(
        kind: String,
        title: String,
        yAxis: ValueAxis,
        yTitle: String,
        legend: [LegendEntry],
        noData: String?,
        timeline: ReportTimeline,
        into m: inout Markup,
        series: (PlotFrame, (Double) -> Double, inout Markup) -> Void
    ) {
        let labels = markerLabels(timeline)
        let lanes = (labels.map(\.lane).compactMap { $0 }.max() ?? -1) + 1
        let frame = PlotFrame(top: 8 + Double(lanes) * PlotFrame.laneHeight, height: 200, time: timeline.axis)
        let height = frame.bottom + (legend.isEmpty ? 40 : 56)
        let y = { (value: Double) in frame.bottom - yAxis.fraction(value) * frame.height }

        openSVG(class: "plot " + kind, height: height, title: title, into: &m, data: [
            ("y-scale", yAxis.kind == .logarithmic ? "log" : "linear"),
            ("y-max", ReportNumber.fixed(yAxis.upper, 3)),
        ])

        m.open("g", ["class": "grid", "stroke": PlotStyle.grid, "stroke-width": "1"])
        for tick in yAxis.ticks where tick > yAxis.lower {
            m.empty("line", ["x1": c(frame.x0), "x2": c(frame.x1), "y1": c(y(tick)), "y2": c(y(tick))])
        }
        m.close("g")

        faultBands(timeline, frame: frame, into: &m)
        m.open("g", ["class": "series"])
        series(frame, y, &m)
        m.close("g")
        viewChangeLines(timeline, frame: frame, into: &m)

        yAxisMarks(yAxis, title: yTitle, frame: frame, y: y, into: &m)
        timeAxisMarks(frame: frame, into: &m)
        if let noData {
            m.element("text", [
                "class": "no-data", "x": c((frame.x0 + frame.x1) / 2), "y": c(frame.top + frame.height / 2),
                "text-anchor": "middle", "fill": PlotStyle.muted, "font-size": "13",
            ], noData)
        }
        placeLabels(labels, frame: frame, into: &m)
        legendMarks(legend, y: frame.bottom + 48, frame: frame, into: &m)
        hoverColumns(timeline, frame: frame, into: &m)
        m.close("svg")
    }

    /// Opens a figure's `<svg>`, standalone: its own namespace, font and size, and a title.
    static func openSVG(class name: String, height: Double, title: String, into m: inout Markup, data: [(String, String)] = []) {
        m.open("svg", pairs: [
            ("xmlns", "http://www.w3.org/2000/svg"),
            ("class", name),
            ("viewBox", "0 0 \(c(PlotFrame.width)) \(c(height))"),
            ("width", c(PlotFrame.width)),
            ("height", c(height)),
            ("role", "img"),
            ("aria-label", title),
            ("font-family", PlotFrame.font),
            ("font-size", c(PlotFrame.fontSize)),
            ("fill", PlotStyle.ink),
        ] + data.map { ("data-" + $0.0, $0.1) })
        m.element("title", title)
    }

    // MARK: - Marks shared by both plots

    private static func faultBands(_ timeline: ReportTimeline, frame: PlotFrame, into m: inout Markup) {
        m.open("g", ["class": "fault-bands", "fill": PlotStyle.fault, "fill-opacity": "0.14", "stroke": "none"])
        for fault in timeline.faults {
            let x = frame.x(fault.start)
            m.open("rect", [
                "class": "fault", "x": c(x), "y": c(frame.top),
                "width": c(max(frame.x(fault.end) - x, 1)), "height": c(frame.height),
                "data-start": ReportNumber.fixed(fault.start, 3),
                "data-end": ReportNumber.fixed(fault.end, 3),
            ])
            m.element("title", faultTitle(fault))
            m.close("rect")
        }
        m.close("g")
    }

    static func faultTitle(_ fault: ReportTimeline.Fault) -> String {
        let end = fault.open ? "end of run" : ReportNumber.seconds(fault.end)
        return "\(fault.label): \(ReportNumber.seconds(fault.start)) to \(end)"
    }

    private static func viewChangeLines(_ timeline: ReportTimeline, frame: PlotFrame, into m: inout Markup) {
        m.open("g", ["class": "view-changes", "stroke": PlotStyle.view, "stroke-width": "1"])
        for view in timeline.views {
            let x = c(frame.x(view.time))
            m.open("line", [
                "class": "view-change", "x1": x, "x2": x, "y1": c(frame.top), "y2": c(frame.bottom),
                "data-view": String(view.view), "data-time": ReportNumber.fixed(view.time, 3),
            ])
            m.element("title", "view change to \(view.label) at \(ReportNumber.seconds(view.time))")
            m.close("line")
        }
        m.close("g")
    }

    struct MarkerLabel {
        enum Kind: String { case fault = "fault-label", view = "view-change-label", event = "event-label" }

        let kind: Kind
        let text: String
        let place: LabelPlacement
        let lane: Int?
    }

    /// Labels for the fault bands (from their start) and view changes (centred on the line),
    /// in lanes above the plot.
    private static func markerLabels(_ timeline: ReportTimeline) -> [MarkerLabel] {
        let frame = PlotFrame(top: 0, height: 0, time: timeline.axis)
        let bounds = frame.x0...frame.x1
        var items: [(kind: MarkerLabel.Kind, text: String, place: LabelPlacement)] = []
        for fault in timeline.faults {
            let text = LabelLanes.truncated(fault.label, to: 48)
            let width = LabelLanes.width(text, fontSize: PlotFrame.labelFontSize)
            items.append((.fault, text, LabelLanes.place(at: frame.x(fault.start) + 2, width: width, centred: false, within: bounds)))
        }
        for view in timeline.views {
            let width = LabelLanes.width(view.label, fontSize: PlotFrame.labelFontSize)
            items.append((.view, view.label, LabelLanes.place(at: frame.x(view.time), width: width, centred: true, within: bounds)))
        }
        let marks = timeline.faults.map { frame.x($0.start) } + timeline.views.map { frame.x($0.time) }
        let lanes = LabelLanes.assign(items.map(\.place.span), marks: marks, lanes: PlotFrame.labelLanesMax, gap: 6)
        return zip(items, lanes).map { MarkerLabel(kind: $0.kind, text: $0.text, place: $0.place, lane: $1) }
    }

    private static func placeLabels(_ labels: [MarkerLabel], frame: PlotFrame, into m: inout Markup) {
        m.open("g", ["class": "marker-labels", "font-size": c(PlotFrame.labelFontSize)])
        for label in labels {
            guard let lane = label.lane else { continue }
            m.element("text", [
                "class": label.kind.rawValue,
                "x": c(label.place.x),
                "text-anchor": label.place.anchor.rawValue,
                "y": c(frame.top - 4 - Double(lane) * PlotFrame.laneHeight),
                "fill": label.kind == .fault ? "#8a4b0f" : PlotStyle.view,
            ], label.text)
        }
        m.close("g")
    }

    private static func yAxisMarks(_ axis: ValueAxis, title: String, frame: PlotFrame, y: (Double) -> Double, into m: inout Markup) {
        m.open("g", ["class": "axis y", "fill": PlotStyle.muted])
        for tick in axis.ticks {
            m.element("text", ["class": "tick-label", "x": c(frame.x0 - 6), "y": c(y(tick) + 3.5), "text-anchor": "end"], axis.label(tick))
        }
        let middle = c(frame.top + frame.height / 2)
        m.element("text", [
            "class": "axis-title", "x": "14", "y": middle, "text-anchor": "middle",
            "transform": "rotate(-90 14 \(middle))", "fill": PlotStyle.ink,
        ], title)
        m.close("g")
    }

    static func timeAxisMarks(frame: PlotFrame, into m: inout Markup) {
        m.open("g", ["class": "axis x", "fill": PlotStyle.muted])
        m.empty("line", ["x1": c(frame.x0), "x2": c(frame.x1), "y1": c(frame.bottom), "y2": c(frame.bottom), "stroke": PlotStyle.axis])
        for tick in frame.time.ticks {
            let x = c(frame.x(tick))
            m.empty("line", ["x1": x, "x2": x, "y1": c(frame.bottom), "y2": c(frame.bottom + 4), "stroke": PlotStyle.axis])
            m.element("text", ["class": "tick-label", "x": x, "y": c(frame.bottom + 15), "text-anchor": "middle"], frame.time.label(tick))
        }
        m.element("text", [
            "class": "axis-title", "x": c((frame.x0 + frame.x1) / 2), "y": c(frame.bottom + 31),
            "text-anchor": "middle", "fill": PlotStyle.ink,
        ], "time since start (s)")
        m.close("g")
    }

    private static func legendMarks(_ entries: [LegendEntry], y: Double, frame: PlotFrame, into m: inout Markup) {
        guard !entries.isEmpty else { return }
        m.open("g", ["class": "legend", "font-size": c(PlotFrame.labelFontSize)])
        var x = frame.x0
        for entry in entries {
            switch entry.shape {
            case .line(let colour, let dash):
                if let dash {
                    m.empty("line", ["x1": c(x), "x2": c(x + 22), "y1": c(y - 3.5), "y2": c(y - 3.5), "stroke": colour, "stroke-width": "1.5", "stroke-dasharray": dash])
                } else {
                    m.empty("line", ["x1": c(x), "x2": c(x + 22), "y1": c(y - 3.5), "y2": c(y - 3.5), "stroke": colour, "stroke-width": "1.5"])
                }
            case .dot(let colour):
                m.empty("circle", ["cx": c(x + 11), "cy": c(y - 3.5), "r": "1.8", "fill": colour])
            }
            m.element("text", ["x": c(x + 27), "y": c(y)], entry.label)
            x += 27 + LabelLanes.width(entry.label, fontSize: PlotFrame.labelFontSize) + 16
        }
        m.close("g")
    }

    /// Up to this many seconds get a hover column each; longer runs go without, to keep the
    /// page small.
    static let hoverSecondsMax = 1_200

    /// Transparent columns, one per second, whose titles give that second's figures.
    private static func hoverColumns(_ timeline: ReportTimeline, frame: PlotFrame, into m: inout Markup) {
        guard timeline.seconds.count <= hoverSecondsMax else { return }
        m.open("g", ["class": "hover-columns", "fill": "#000000", "fill-opacity": "0"])
        for (second, metrics) in timeline.seconds.enumerated() {
            let x = frame.x(Double(second))
            m.open("rect", ["class": "hover", "x": c(x), "y": c(frame.top), "width": c(frame.x(Double(second + 1)) - x), "height": c(frame.height)])
            m.element("title", hoverText(second: second, metrics))
            m.close("rect")
        }
        m.close("g")
    }

    static func hoverText(second: Int, _ metrics: RunReport.SecondMetrics?) -> String {
        var parts = ["\(second)–\(second + 1) s", "\(max(metrics?.completed ?? 0, 0)) operations"]
        let latencies: [(String, Double?)] = [("p50", metrics?.latencyP50Ms), ("p99", metrics?.latencyP99Ms), ("max", metrics?.latencyMaxMs)]
        for (name, value) in latencies {
            if let value = usable(value) { parts.append("\(name) \(ReportNumber.significant(value)) ms") }
        }
        if let view = metrics?.view { parts.append("view \(view)") }
        return parts.joined(separator: " · ")
    }

    /// A coordinate.
    static func c(_ value: Double) -> String {
        ReportNumber.coordinate(value)
    }
}
