@testable import PBFTCheck
import Testing

@Suite struct ReportAxisTests {
    @Test func linearAxisEndsOnATickAtOrAboveTheMaximum() {
        let counts = ValueAxis.linear(max: 437, integral: true)
        #expect(counts.ticks == [0, 100, 200, 300, 400, 500])
        #expect(counts.upper == 500 && counts.lower == 0)
        #expect(counts.ticks.map(counts.label) == ["0", "100", "200", "300", "400", "500"])

        let exact = ValueAxis.linear(max: 400, integral: true)
        #expect(exact.upper == 400, "a maximum on a tick is not pushed up a step")

        let few = ValueAxis.linear(max: 3, integral: true)
        #expect(few.ticks == [0, 1, 2, 3], "counts step by whole numbers")

        let small = ValueAxis.linear(max: 0.37, integral: false)
        #expect(small.upper >= 0.37 && small.upper < 0.5)
        #expect(small.ticks.map(small.label) == ["0.0", "0.1", "0.2", "0.3", "0.4"])
    }

    @Test func linearAxisOfNothingIsStillAnAxis() {
        for value in [0, -5, .nan, .infinity] {
            let axis = ValueAxis.linear(max: value, integral: true)
            #expect(axis.lower == 0 && axis.upper == 1, "\(value)")
            #expect(axis.ticks == [0, 1])
        }
    }

    @Test func niceSteps() {
        #expect(ValueAxis.niceStep(87) == 100)
        #expect(ValueAxis.niceStep(20) == 20)
        #expect(ValueAxis.niceStep(21) == 50)
        #expect(ValueAxis.niceStep(0.013) == 0.02)
        #expect(ValueAxis.niceStep(0) == 1)
        #expect(ValueAxis.niceStep(.nan) == 1)
    }

    @Test func latencyAxisGoesLogarithmicAboveAHundredfold() {
        #expect(ValueAxis.latency([1, 100]).kind == .linear, "exactly two decades stay linear")
        let log = ValueAxis.latency([1, 101])
        #expect(log.kind == .logarithmic)
        #expect(log.ticks == [1, 10, 100, 1000])
        let fine = ValueAxis.latency([0.04, 0, .nan, 35])
        #expect(fine.kind == .logarithmic, "zero and NaN do not decide the scale")
        #expect(fine.ticks == [0.01, 0.1, 1, 10, 100])
        #expect(fine.ticks.map(fine.label) == ["0.01", "0.1", "1", "10", "100"])
        #expect(fine.fraction(0) == 0, "zero sits on the floor of a log axis")
        #expect(abs(fine.fraction(1) - 0.5) < 1e-9)
        #expect(ValueAxis.latency([]) == .linear(max: 1, integral: false))
    }

    @Test func logarithmicAxisOfOneDecadeHasTwoTicks() {
        let axis = ValueAxis.logarithmic(min: 10, max: 10)
        #expect(axis.ticks == [10, 100])
    }

    @Test func timeAxisStopsAtTheEnd() {
        let minute = ValueAxis.time(end: 60)
        #expect(minute.ticks == [0, 10, 20, 30, 40, 50, 60])
        #expect(minute.upper == 60)
        let odd = ValueAxis.time(end: 73.4)
        #expect(odd.upper == 73.4, "the axis is the run, not rounded up")
        #expect(odd.ticks.last! <= 73.4)
        #expect(ValueAxis.time(end: 0).upper == 1)
        #expect(minute.fraction(-3) == 0 && minute.fraction(90) == 1, "clamped")
    }
}

@Suite struct ReportLabelLaneTests {
    @Test func overlappingLabelsTakeHigherLanesAndTheMostCrowdedYields() {
        let spans: [ClosedRange<Double>] = [0...50, 20...60, 55...90, 100...120, 10...30]
        let lanes = LabelLanes.assign(spans, marks: spans.map(\.lowerBound), lanes: 2, gap: 4)
        #expect(lanes == [nil, 1, 0, 0, 0], "0...50 covers three marks, so it goes last and finds no room")
    }

    @Test func aLoneLabelBeatsABurst() {
        let burst: [ClosedRange<Double>] = (10...14).map { Double($0)...Double($0 + 30) }
        let lanes = LabelLanes.assign(burst + [30...50], marks: [10, 11, 12, 13, 14, 30], lanes: 2, gap: 4)
        #expect(lanes == [nil, nil, nil, nil, 1, 0])
    }

    @Test func tiesGoLeftToRight() {
        let spans: [ClosedRange<Double>] = [100...120, 0...50, 60...70]
        #expect(LabelLanes.assign(spans, marks: [100, 0, 60], lanes: 1, gap: 4) == [0, 0, 0])
        #expect(LabelLanes.assign(spans, marks: [100, 0, 60], lanes: 1, gap: 20) == [0, 0, nil], "60 is within the gap after 50; 100 clears it")
        #expect(LabelLanes.assign([], marks: [], lanes: 3, gap: 4).isEmpty)
    }

    @Test func labelsStayInBoundsAnchoredAtTheirMark() {
        let bounds = 64.0...740.0
        func place(_ x: Double, _ width: Double, centred: Bool) -> (LabelPlacement.Anchor, Double, ClosedRange<Double>) {
            let p = LabelLanes.place(at: x, width: width, centred: centred, within: bounds)
            return (p.anchor, p.x, p.span)
        }
        #expect(place(100, 50, centred: false) == (.start, 100, 100...150))
        #expect(place(720, 50, centred: false) == (.end, 720, 670...720), "ends at the mark instead")
        #expect(place(400, 50, centred: true) == (.middle, 400, 375...425))
        #expect(place(70, 50, centred: true) == (.start, 64, 64...114))
        #expect(place(735, 50, centred: true) == (.end, 740, 690...740))
        #expect(place(100, 1000, centred: false).2.lowerBound == 64, "too wide for either side: from the left bound")
    }

    @Test func truncation() {
        #expect(LabelLanes.truncated("kill r0", to: 10) == "kill r0")
        #expect(LabelLanes.truncated("partition 0 / 1,2,3", to: 10) == "partition…")
        #expect(LabelLanes.truncated("partition 0 / 1,2,3", to: 10).count == 10)
    }
}

@Suite struct ReportMarkupTests {
    @Test func escapesEverythingMarkupMeans() {
        #expect(Markup.escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
        #expect(Markup.escape("line\nnext\ttab") == "line\nnext\ttab")
        #expect(Markup.escape("nul\u{0} esc\u{1B} bad\u{FFFF}") == "nul\u{FFFD} esc\u{FFFD} bad\u{FFFD}")
        #expect(Markup.escape("π ≥ 3 — ✓") == "π ≥ 3 — ✓")
    }

    @Test func buildsClosedElementsWithQuotedAttributes() {
        var m = Markup()
        m.open("g", ["class": "a\"b"])
        m.element("text", ["x": "1"], "<hi>")
        m.empty("rect", ["width": "2"])
        m.close("g")
        #expect(m.finished == "<g class=\"a&quot;b\"><text x=\"1\">&lt;hi&gt;</text><rect width=\"2\"/></g>\n", "a new line after a block, for reading the source")
    }

    @Test func numbers() {
        #expect(ReportNumber.fixed(1.25, 1) == "1.3")
        #expect(ReportNumber.fixed(-1.25, 1) == "-1.3")
        #expect(ReportNumber.fixed(-0.01, 1) == "0.0", "no negative zero")
        #expect(ReportNumber.fixed(0.05, 2) == "0.05")
        #expect(ReportNumber.fixed(1234567, 0) == "1234567")
        #expect(ReportNumber.fixed(.nan, 2) == "–")
        #expect(ReportNumber.fixed(3e20, 1) == "3e+20", "absurd, but printed rather than trapped")
        #expect(ReportNumber.significant(0.01234) == "0.012")
        #expect(ReportNumber.significant(3.14159) == "3.14")
        #expect(ReportNumber.significant(31.4159) == "31.4")
        #expect(ReportNumber.significant(2100) == "2100")
        #expect(ReportNumber.seconds(12.25) == "12.3 s")
        #expect(ReportNumber.seconds(600) == "600 s")
    }
}

@Suite struct ReportTimelineTests {
    @Test func theAxisRunsToTheLatestThingReported() {
        var report = ReportSample.empty()
        report.durationSeconds = 30
        report.faults = [.init("late", start: 31, end: 34)]
        #expect(ReportTimeline(report).end == 34)
        report.seconds = [.init(second: 40, completed: 1)]
        #expect(ReportTimeline(report).end == 41)
        report.events = [.init(time: 50, "x")]
        #expect(ReportTimeline(report).end == 50)
    }

    @Test func faultsAreResolvedAndClamped() {
        var report = ReportSample.empty()
        report.durationSeconds = 20
        report.faults = [.init("open", start: 5), .init("backwards", start: 8, end: 6), .init("nan", start: .nan, end: 3)]
        let faults = ReportTimeline(report).faults
        #expect(faults == [
            .init(label: "open", start: 5, end: 20, open: true),
            .init(label: "backwards", start: 8, end: 8, open: false),
            .init(label: "nan", start: 0, end: 3, open: false),
        ])
    }

    @Test func secondsAreIndexedAndBounded() {
        var report = ReportSample.empty()
        report.durationSeconds = 5
        report.seconds = [
            .init(second: 3, completed: 7), .init(second: 0, completed: 2), .init(second: -1, completed: 9),
            .init(second: ReportTimeline.secondsMax, completed: 9), .init(second: 1, completed: -4),
        ]
        let timeline = ReportTimeline(report)
        #expect(timeline.seconds.count == 4, "up to the last second reported, not the duration")
        #expect(timeline.completed == [2, 0, 0, 7], "missing and negative counts are zero")
        #expect(timeline.end == 5)
    }

    @Test func viewsAndEventsInTimeOrder() {
        var report = ReportSample.empty()
        report.viewChanges = [.init(time: 9, view: 2, primary: 2), .init(time: 3, view: 1, primary: 1), .init(time: 9, view: 3)]
        report.events = [.init(time: 2, "b"), .init(time: 1, "a"), .init(time: 2, "c")]
        let timeline = ReportTimeline(report)
        #expect(timeline.views.map(\.label) == ["v1 (r1)", "v2 (r2)", "v3"], "ties keep their order")
        #expect(timeline.events.map(\.label) == ["a", "b", "c"])
    }
}
