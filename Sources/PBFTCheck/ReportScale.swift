import Foundation

/// A numeric axis: its domain, where its ticks go, how their labels read.
struct ValueAxis: Equatable {
    enum Kind: Equatable { case linear, logarithmic }

    let kind: Kind
    let lower: Double
    let upper: Double
    let ticks: [Double]

    /// 0...max rounded up to a tick, so the top tick is at or above every value. With
    /// `integral` (counts), ticks are whole numbers.
    static func linear(max value: Double, integral: Bool, tickCount: Int = 5) -> ValueAxis {
        let top = value.isFinite && value > 0 ? value : 1
        var step = niceStep(top / Double(tickCount))
        if integral { step = Swift.max(step, 1) }
        var steps = (top / step).rounded()
        if steps * step < top { steps += 1 }
        let ticks = (0...Int(steps)).map { Double($0) * step }
        return ValueAxis(kind: .linear, lower: 0, upper: ticks.last!, ticks: ticks)
    }

    /// Whole decades around the positive values, a tick at each.
    static func logarithmic(min low: Double, max high: Double) -> ValueAxis {
        precondition(low > 0 && high >= low, "log axis needs 0 < min <= max, got \(low), \(high)")
        let first = Int(floor(log10(low) + 1e-9))
        var last = Int(ceil(log10(high) - 1e-9))
        if last == first { last += 1 }
        let ticks = (first...last).map { pow(10, Double($0)) }
        return ValueAxis(kind: .logarithmic, lower: ticks.first!, upper: ticks.last!, ticks: ticks)
    }

    /// Values that span more than two decades get a log axis, so p50 stays readable under p99
    /// spikes; otherwise linear from 0. Non-positive and non-finite values are ignored for the
    /// choice.
    static func latency(_ values: [Double]) -> ValueAxis {
        let positive = values.filter { $0.isFinite && $0 > 0 }
        guard let low = positive.min(), let high = positive.max() else {
            return linear(max: 1, integral: false)
        }
        if high / low > logarithmicRatioMin {
            return logarithmic(min: low, max: high)
        }
        return linear(max: high, integral: false)
    }

    /// The ratio of the largest to the smallest value above which `latency` goes logarithmic.
    static let logarithmicRatioMin = 100.0

    /// Time since the start, 0...end; ticks at a round step, none past `end`.
    static func time(end: Double, tickCount: Int = 8) -> ValueAxis {
        let end = end.isFinite && end > 0 ? end : 1
        let step = niceStep(end / Double(tickCount))
        let count = Int((end / step + 1e-9).rounded(.down))
        return ValueAxis(kind: .linear, lower: 0, upper: end, ticks: (0...count).map { Double($0) * step })
    }

    /// Where `value` falls, 0 at `lower` to 1 at `upper`, clamped.
    func fraction(_ value: Double) -> Double {
        let f: Double
        switch kind {
        case .linear:
            f = (value - lower) / (upper - lower)
        case .logarithmic:
            guard value > 0 else { return 0 }
            f = (log10(value) - log10(lower)) / (log10(upper) - log10(lower))
        }
        return f.isFinite ? Swift.min(Swift.max(f, 0), 1) : 0
    }

    /// A tick's label with as many decimals as the ticks need to differ: "0", "0.5", "0.01".
    func label(_ tick: Double) -> String {
        ReportNumber.fixed(tick, Swift.min(decimals(of: tick), 6))
    }

    private func decimals(of tick: Double) -> Int {
        switch kind {
        case .linear:
            guard ticks.count > 1 else { return 0 }
            return Swift.max(0, Int(ceil(-log10(ticks[1] - ticks[0]) - 1e-9)))
        case .logarithmic:
            return Swift.max(0, Int(-floor(log10(tick) + 1e-9)))
        }
    }

    /// 1, 2 or 5 times a power of ten, at least `rough`.
    static func niceStep(_ rough: Double) -> Double {
        guard rough.isFinite, rough > 0 else { return 1 }
        let power = pow(10, floor(log10(rough)))
        let fraction = rough / power
        let nice: Double = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10
        return nice * power
    }
}

/// Places labels in horizontal lanes so none overlap. A label in the thick of other marks
/// yields to one standing apart: labels are placed in order of how many marks their span
/// covers (fewest first, then left to right), each in the lowest lane where it clears every
/// label already there; a label that fits in no lane is left out (its mark keeps a hover
/// title). So a burst of events gets a label or two and the lone restart beside it keeps its.
enum LabelLanes {
    /// The lane of each span, in the order given, or nil where it fits in none of `lanes`.
    /// `marks` are the x positions of all the marks being labelled.
    static func assign(_ spans: [ClosedRange<Double>], marks: [Double], lanes: Int, gap: Double) -> [Int?] {
        let sortedMarks = marks.sorted()
        let crowding = spans.map { count(sortedMarks, in: $0) }
        let order = spans.indices.sorted {
            (crowding[$0], spans[$0].lowerBound, $0) < (crowding[$1], spans[$1].lowerBound, $1)
        }
        // Each lane holds at most about width / (narrowest label + gap) labels, so the scans
        // below stay short however many labels are offered.
        var placed = [[ClosedRange<Double>]](repeating: [], count: lanes)
        var result = [Int?](repeating: nil, count: spans.count)
        for index in order {
            let span = spans[index]
            let clear = { (lane: [ClosedRange<Double>]) in
                lane.allSatisfy { $0.upperBound + gap <= span.lowerBound || span.upperBound + gap <= $0.lowerBound }
            }
            if let lane = placed.firstIndex(where: clear) {
                placed[lane].append(span)
                result[index] = lane
            }
        }
        return result
    }

    /// How many of the sorted `marks` lie in `span`.
    private static func count(_ marks: [Double], in span: ClosedRange<Double>) -> Int {
        firstIndex(in: marks, notBelow: span.upperBound, inclusive: false) - firstIndex(in: marks, notBelow: span.lowerBound, inclusive: true)
    }

    /// The first index whose mark is at least `value` (or above it, when not `inclusive`).
    private static func firstIndex(in marks: [Double], notBelow value: Double, inclusive: Bool) -> Int {
        var low = 0
        var high = marks.count
        while low < high {
            let middle = (low + high) / 2
            if inclusive ? marks[middle] < value : marks[middle] <= value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// A generous estimate of a label's width in a proportional sans-serif font.
    static func width(_ text: String, fontSize: Double) -> Double {
        Double(text.count) * fontSize * 0.6
    }

    /// `text` cut to `limit` characters, an ellipsis marking the cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    /// Where a label of `width` goes: centred on its mark at `x`, or starting there (ending
    /// there instead if it would run past the right), moved to lie within `bounds` where it
    /// can. The text is anchored on the side that touches the mark or a bound, so a label
    /// narrower than the estimate still ends where it should.
    static func place(at x: Double, width: Double, centred: Bool, within bounds: ClosedRange<Double>) -> LabelPlacement {
        if centred {
            if x + width / 2 > bounds.upperBound {
                return LabelPlacement(anchor: .end, x: bounds.upperBound, width: width, bounds: bounds)
            }
            if x - width / 2 < bounds.lowerBound {
                return LabelPlacement(anchor: .start, x: bounds.lowerBound, width: width, bounds: bounds)
            }
            return LabelPlacement(anchor: .middle, x: x, width: width, bounds: bounds)
        }
        if x + width <= bounds.upperBound || x - width < bounds.lowerBound {
            return LabelPlacement(anchor: .start, x: max(min(x, bounds.upperBound - width), bounds.lowerBound), width: width, bounds: bounds)
        }
        return LabelPlacement(anchor: .end, x: x, width: width, bounds: bounds)
    }
}

/// A label's position: the SVG `text-anchor` and `x`, and the span it is taken to cover.
struct LabelPlacement: Equatable {
    enum Anchor: String { case start, middle, end }

    let anchor: Anchor
    let x: Double
    let span: ClosedRange<Double>

    init(anchor: Anchor, x: Double, width: Double, bounds: ClosedRange<Double>) {
        self.anchor = anchor
        self.x = x
        switch anchor {
        case .start: span = x...(x + width)
        case .middle: span = (x - width / 2)...(x + width / 2)
        case .end: span = max(x - width, bounds.lowerBound)...x
        }
    }
}
