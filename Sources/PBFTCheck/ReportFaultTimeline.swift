extension ReportPlots {
    static let faultRowHeight = 24.0
    static let eventLabelLanesMax = 3

    /// The fault timeline: one row per fault interval (a bar from start to end, the label
    /// above it), then a row of event ticks with as many labels as fit in three lanes, on the
    /// plots' time axis.
    static func faultTimeline(_ timeline: ReportTimeline, into m: inout Markup) {
        let frame = PlotFrame(top: 8, height: 0, time: timeline.axis)
        let rows = max(timeline.faults.count, 1)
        let eventsTop = frame.top + Double(rows) * faultRowHeight + 6
        let events = eventLabels(timeline, frame: frame)
        let lanes = (events.compactMap(\.lane).max() ?? -1) + 1
        let hidden = events.filter { $0.lane == nil }.count
        let axisY = eventsTop + 10 + Double(max(lanes, 1)) * 12 + (hidden > 0 ? 14 : 0) + 6
        let height = axisY + 38

        openSVG(class: "timeline", height: height, title: "Fault intervals and events over the run", into: &m)
        m.open("g", ["class": "grid", "stroke": PlotStyle.grid, "stroke-width": "1"])
        for tick in frame.time.ticks {
            let x = c(frame.x(tick))
            m.empty("line", ["x1": x, "x2": x, "y1": c(frame.top), "y2": c(axisY)])
        }
        m.close("g")

        m.element("text", ["class": "row-title", "x": c(frame.x0 - 6), "y": c(frame.top + 20), "text-anchor": "end", "fill": PlotStyle.muted], "faults")
        if timeline.faults.isEmpty {
            m.element("text", ["class": "no-data", "x": c(frame.x0 + 4), "y": c(frame.top + 20), "fill": PlotStyle.muted], "no faults injected")
        }
        for (row, fault) in timeline.faults.enumerated() {
            faultRow(fault, top: frame.top + Double(row) * faultRowHeight, frame: frame, into: &m)
        }

        m.element("text", ["class": "row-title", "x": c(frame.x0 - 6), "y": c(eventsTop + 8), "text-anchor": "end", "fill": PlotStyle.muted], "events")
        eventRow(timeline, labels: events, top: eventsTop, frame: frame, into: &m)
        if hidden > 0 {
            let note = "\(hidden) more event label\(hidden == 1 ? "" : "s") left out for space: hover the ticks, or see the event list"
            m.element("text", ["class": "events-hidden", "x": c(frame.x0), "y": c(axisY - 8), "font-size": c(PlotFrame.labelFontSize), "fill": PlotStyle.muted], note)
        }
        if timeline.events.isEmpty {
            m.element("text", ["class": "no-data", "x": c(frame.x0 + 4), "y": c(eventsTop + 8), "fill": PlotStyle.muted], "no events")
        }

        let axisFrame = PlotFrame(top: axisY, height: 0, time: timeline.axis)
        timeAxisMarks(frame: axisFrame, into: &m)
        m.close("svg")
    }

    private static func faultRow(_ fault: ReportTimeline.Fault, top: Double, frame: PlotFrame, into m: inout Markup) {
        let start = frame.x(fault.start)
        let text = LabelLanes.truncated(fault.label, to: 80)
        let width = LabelLanes.width(text, fontSize: PlotFrame.fontSize)
        let place = LabelLanes.place(at: start, width: width, centred: false, within: frame.x0...frame.x1)
        m.open("g", ["class": "fault-row", "data-start": ReportNumber.fixed(fault.start, 3), "data-end": ReportNumber.fixed(fault.end, 3)])
        m.element("title", faultTitle(fault))
        m.element("text", ["class": "fault-row-label", "x": c(place.x), "y": c(top + 10), "text-anchor": place.anchor.rawValue], text)
        m.empty("rect", [
            "class": "fault-bar", "x": c(start), "y": c(top + 13), "width": c(max(frame.x(fault.end) - start, 2)), "height": "8",
            "fill": PlotStyle.fault, "fill-opacity": "0.6",
        ])
        if fault.open {
            // An open interval runs off the end of the run: an arrowhead says it never ended.
            let x = frame.x(fault.end)
            m.empty("path", ["class": "fault-open", "d": "M\(c(x)) \(c(top + 11))l6 6l-6 6Z", "fill": PlotStyle.fault])
        }
        m.close("g")
    }

    private static func eventLabels(_ timeline: ReportTimeline, frame: PlotFrame) -> [MarkerLabel] {
        let places = timeline.events.map { event in
            let text = LabelLanes.truncated(event.label, to: 40)
            return (text, LabelLanes.place(
                at: frame.x(event.time), width: LabelLanes.width(text, fontSize: PlotFrame.labelFontSize),
                centred: false, within: frame.x0...frame.x1
            ))
        }
        let marks = timeline.events.map { frame.x($0.time) }
        let lanes = LabelLanes.assign(places.map(\.1.span), marks: marks, lanes: eventLabelLanesMax, gap: 8)
        return zip(places, lanes).map { MarkerLabel(kind: .event, text: $0.0, place: $0.1, lane: $1) }
    }

    private static func eventRow(_ timeline: ReportTimeline, labels: [MarkerLabel], top: Double, frame: PlotFrame, into m: inout Markup) {
        m.open("g", ["class": "event-row"])
        m.open("g", ["stroke": PlotStyle.ink, "stroke-width": "1.2"])
        for event in timeline.events {
            let x = c(frame.x(event.time))
            m.open("line", ["class": "event", "x1": x, "x2": x, "y1": c(top), "y2": c(top + 8), "data-time": ReportNumber.fixed(event.time, 3)])
            m.element("title", "\(ReportNumber.seconds(event.time)): \(event.label)")
            m.close("line")
        }
        m.close("g")
        m.open("g", ["font-size": c(PlotFrame.labelFontSize)])
        for label in labels {
            guard let lane = label.lane else { continue }
            m.element("text", [
                "class": label.kind.rawValue, "x": c(label.place.x), "y": c(top + 19 + Double(lane) * 12),
                "text-anchor": label.place.anchor.rawValue,
            ], label.text)
        }
        m.close("g")
        m.close("g")
    }
}
