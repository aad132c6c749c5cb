/// The run's data in order and on one time axis, shared by the plots and the fault timeline so
/// they line up: the axis runs from 0 to the end of the run (its duration, or the latest thing
/// reported if that is later), and every time is clamped to it.
struct ReportTimeline {
    /// A fault interval with its end resolved.
    struct Fault: Equatable {
        let label: String
        let start: Double
        let end: Double
        /// In force until the end of the run.
        let open: Bool
    }

    let end: Double
    let axis: ValueAxis
    /// Indexed by second, 0 up to the last second reported; nil where none was (when a second
    /// is reported twice, the later entry wins).
    let seconds: [RunReport.SecondMetrics?]
    /// In the order given.
    let faults: [Fault]
    /// In time order.
    let views: [RunReport.ViewMark]
    /// In time order.
    let events: [RunReport.TimelineEvent]

    init(_ report: RunReport) {
        let reported = report.seconds.filter { (0..<Self.secondsMax).contains($0.second) }
        var end = Self.time(report.durationSeconds)
        end = max(end, Double((reported.map(\.second).max() ?? -1) + 1))
        for fault in report.faults {
            end = max(end, Self.time(fault.start), Self.time(fault.end ?? 0))
        }
        end = max(end, report.viewChanges.map { Self.time($0.time) }.max() ?? 0)
        end = max(end, report.events.map { Self.time($0.time) }.max() ?? 0)
        if end <= 0 { end = 1 }
        self.end = end
        axis = .time(end: end)

        var seconds = [RunReport.SecondMetrics?](repeating: nil, count: (reported.map(\.second).max() ?? -1) + 1)
        for metrics in reported {
            seconds[metrics.second] = metrics
        }
        self.seconds = seconds

        faults = report.faults.map { fault in
            let start = Self.time(fault.start)
            let stop = fault.end.map { max(Self.time($0), start) } ?? end
            return Fault(label: fault.label, start: start, end: stop, open: fault.end == nil)
        }
        views = report.viewChanges
            .map { RunReport.ViewMark(time: Self.time($0.time), view: $0.view, primary: $0.primary, epoch: $0.epoch) }
            .enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        events = report.events
            .map { RunReport.TimelineEvent(time: Self.time($0.time), $0.label) }
            .enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
    }

    /// Seconds at or past this (eleven days) are left out, so a wrong second number cannot
    /// make the renderer allocate without bound.
    static let secondsMax = 1_000_000

    /// Operations completed in each second; a second without an entry completed none.
    var completed: [Int] {
        seconds.map { max($0?.completed ?? 0, 0) }
    }

    /// A time as the axis takes it: non-finite or negative times become 0.
    private static func time(_ value: Double) -> Double {
        value.isFinite ? max(value, 0) : 0
    }
}
