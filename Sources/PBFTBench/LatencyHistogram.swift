/// Latencies in nanoseconds, counted the way HdrHistogram counts them: exactly below
/// 2,048 ns, and above that each power of two split into 1,024 equal buckets, so a bucket
/// is never wider than 1/1,024 of the values in it and a reported value (the bucket's
/// middle) is within 1/2,048 of the true one: better than three significant decimal
/// digits from 1 ns to `highestTrackableNanoseconds` (about 68.7 s).
///
/// Counting is O(1) and allocation-free; histograms of several clients merge by adding
/// their counters, so each client records on its own and nothing is shared while measuring.
public struct LatencyHistogram: Sendable, Equatable {
    /// Buckets per power of two above the exact range: 2^10.
    static let subBucketBits = 10
    static let subBuckets = 1 << subBucketBits
    /// Values below this are counted one nanosecond per counter.
    static let exactLimit: UInt64 = 1 << (subBucketBits + 1)
    /// The largest value counted in its own bucket; larger ones go to the last bucket
    /// (`overflowCount` says how many) and still set `maximum` exactly.
    public static let highestTrackableNanoseconds: UInt64 = (1 << 36) - 1
    static let bucketCount = index(of: highestTrackableNanoseconds) + 1

    public private(set) var counts: [UInt64]
    /// Values recorded.
    public private(set) var count: UInt64 = 0
    /// The smallest and largest values recorded, exactly (0 when empty).
    public private(set) var minimum: UInt64 = 0
    public private(set) var maximum: UInt64 = 0
    /// Values above `highestTrackableNanoseconds`.
    public private(set) var overflowCount: UInt64 = 0
    /// The sum of the values recorded, for the mean.
    public private(set) var sumNanoseconds: Double = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    /// The counter a value goes to.
    static func index(of value: UInt64) -> Int {
        guard value >= exactLimit else { return Int(value) }
        let magnitude = 63 - value.leadingZeroBitCount  // floor(log2(value)) >= subBucketBits + 1
        let shift = magnitude - subBucketBits
        let sub = Int(value >> UInt64(shift)) - subBuckets  // 0 ..< subBuckets
        return Int(exactLimit) + (magnitude - subBucketBits - 1) * subBuckets + sub
    }

    /// The values counter `index` holds: lowest, and how many (a power of two).
    static func range(of index: Int) -> (lowest: UInt64, width: UInt64) {
        guard index >= Int(exactLimit) else { return (UInt64(index), 1) }
        let k = index - Int(exactLimit)
        let shift = k / subBuckets + 1
        let sub = UInt64(subBuckets + k % subBuckets)
        return (sub << UInt64(shift), 1 << UInt64(shift))
    }

    public mutating func record(nanoseconds value: UInt64) {
        if value > Self.highestTrackableNanoseconds { overflowCount += 1 }
        counts[Self.index(of: min(value, Self.highestTrackableNanoseconds))] += 1
        minimum = count == 0 ? value : min(minimum, value)
        maximum = count == 0 ? value : max(maximum, value)
        count += 1
        sumNanoseconds += Double(value)
    }

    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds < 0 ? 0 : UInt64(seconds) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        record(nanoseconds: nanoseconds)
    }

    /// Adds `other`'s values to these.
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        for i in counts.indices where other.counts[i] > 0 { counts[i] += other.counts[i] }
        minimum = count == 0 ? other.minimum : min(minimum, other.minimum)
        maximum = count == 0 ? other.maximum : max(maximum, other.maximum)
        count += other.count
        overflowCount += other.overflowCount
        sumNanoseconds += other.sumNanoseconds
    }

    /// The value at quantile `q` (0...1) by the nearest-rank rule: the value of rank
    /// ceil(q * count) in sorted order (rank 1 at q = 0), as the middle of its bucket,
    /// kept within the exact minimum and maximum. 0 when empty.
    public func value(atQuantile q: Double) -> UInt64 {
        precondition((0...1).contains(q), "quantile \(q) outside 0...1")
        guard count > 0 else { return 0 }
        let rank = min(count, max(1, UInt64((q * Double(count)).rounded(.up))))
        if rank == count { return maximum }
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank {
                let (lowest, width) = Self.range(of: i)
                return min(maximum, max(minimum, lowest + (width - 1) / 2))
            }
        }
        return maximum
    }

    public var meanNanoseconds: Double { count == 0 ? 0 : sumNanoseconds / Double(count) }
}
