import Foundation
import PBFTBench
import Testing

@Suite("Latency histogram")
struct LatencyHistogramTests {
    /// The nearest-rank value of a sorted sample, as the histogram defines quantiles.
    func nearestRank(_ sorted: [UInt64], _ q: Double) -> UInt64 {
        let rank = min(sorted.count, max(1, Int((q * Double(sorted.count)).rounded(.up))))
        return sorted[rank - 1]
    }

    /// Log-uniform values from 1 µs to 60 s: every magnitude the histogram must cover.
    func samples(_ count: Int, seed: UInt64) -> [UInt64] {
        var generator = SplitMix(seed)
        let low = 3.0 /* log10(1 µs in ns) */, high = 10.0 + 0.778 /* log10(60 s in ns) */
        return (0..<count).map { _ in
            let exponent = low + (high - low) * Double(generator.next() >> 11) / Double(1 << 53)
            return UInt64(pow(10, exponent))
        }
    }

    @Test("percentiles are within 1/2048 of the sorted samples' (three significant digits) from 1 µs to 60 s", arguments: [1, 2, 3])
    func accuracyAgainstSortedSamples(seed: UInt64) {
        let values = samples(20_000, seed: seed)
        var histogram = LatencyHistogram()
        for v in values { histogram.record(nanoseconds: v) }
        let sorted = values.sorted()
        #expect(sorted.first! >= 1_000 && sorted.last! <= 60_000_000_000)
        for q in [0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            let truth = Double(nearestRank(sorted, q))
            let reported = Double(histogram.value(atQuantile: q))
            #expect(abs(reported - truth) <= truth / 2048, "q \(q): \(reported) vs \(truth)")
            // Three significant decimal digits: the relative error stays under 0.05%.
            #expect(abs(reported - truth) / truth < 0.0005, "q \(q)")
        }
        #expect(histogram.count == UInt64(values.count))
        #expect(histogram.minimum == sorted.first! && histogram.maximum == sorted.last!)
        #expect(histogram.value(atQuantile: 1) == sorted.last!)
        #expect(histogram.overflowCount == 0)
    }

    @Test("every value from 1 µs to 60 s lands in a bucket no wider than 1/1024 of it, and the bucket's middle is within 1/2048")
    func bucketWidths() {
        var v: UInt64 = 1_000
        while v <= 60_000_000_000 {
            var one = LatencyHistogram()
            one.record(nanoseconds: v)
            one.record(nanoseconds: 1)        // keeps the minimum below v
            one.record(nanoseconds: 1 << 40)  // and the maximum above: the bucket's middle is reported
            let reported = one.value(atQuantile: 0.5)
            #expect(reported.distance(to: v).magnitude <= v / 2048, "\(v) reported as \(reported)")
            v = v + v / 7 + 1
        }
    }

    @Test("values below 2048 ns are exact; the middle of a wide bucket is never outside the values recorded")
    func exactBelowTheLinearLimitAndClampedToMinMax() {
        var histogram = LatencyHistogram()
        for v in [5, 17, 2047] as [UInt64] { histogram.record(nanoseconds: v) }
        #expect(histogram.value(atQuantile: 0) == 5)
        #expect(histogram.value(atQuantile: 0.5) == 17)
        #expect(histogram.value(atQuantile: 1) == 2047)
        var single = LatencyHistogram()
        single.record(nanoseconds: 1_234_567_891)
        for q in [0.0, 0.5, 1.0] { #expect(single.value(atQuantile: q) == 1_234_567_891) }
    }

    @Test("histograms recorded apart and merged equal one histogram of every value")
    func mergeEqualsRecordingTogether() {
        let values = samples(6_000, seed: 9)
        var whole = LatencyHistogram()
        var parts = [LatencyHistogram](repeating: LatencyHistogram(), count: 3)
        for (i, v) in values.enumerated() {
            whole.record(nanoseconds: v)
            parts[i % 3].record(nanoseconds: v)
        }
        var merged = LatencyHistogram()
        merged.merge(LatencyHistogram())
        for part in parts { merged.merge(part) }
        #expect(merged == whole)
        #expect(merged.value(atQuantile: 0.99) == whole.value(atQuantile: 0.99))
        #expect(merged.minimum == values.min()! && merged.maximum == values.max()!)
    }

    @Test("a value beyond the trackable range is counted in the last bucket and keeps the exact maximum")
    func overflow() {
        var histogram = LatencyHistogram()
        histogram.record(nanoseconds: 10)
        histogram.record(nanoseconds: 100 * 1_000_000_000)
        #expect(histogram.overflowCount == 1)
        #expect(histogram.maximum == 100 * 1_000_000_000)
        #expect(histogram.value(atQuantile: 1) == 100 * 1_000_000_000)
        #expect(histogram.count == 2)
    }

    @Test("durations record as nanoseconds; an empty histogram reports zeros")
    func durationsAndEmpty() {
        var histogram = LatencyHistogram()
        #expect(histogram.value(atQuantile: 0.5) == 0 && histogram.meanNanoseconds == 0)
        histogram.record(.milliseconds(3) + .nanoseconds(7))
        histogram.record(.seconds(-1))
        #expect(histogram.maximum == 3_000_007)
        #expect(histogram.minimum == 0)
        #expect(histogram.meanNanoseconds == 1_500_003.5)
    }
}

/// SplitMix64, for repeatable samples.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
