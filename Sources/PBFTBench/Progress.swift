/// One replica's progress as its status report gives it.
public struct ReplicaProgress: Sendable, Equatable {
    public var replica: Int
    /// Client requests executed since the process started.
    public var requestsExecuted: UInt64
    /// The last sequence number executed (each is one batch, or a null request).
    public var lastExecuted: UInt64
    /// View changes it started since the process started.
    public var viewChanges: UInt64

    public init(replica: Int, requestsExecuted: UInt64, lastExecuted: UInt64, viewChanges: UInt64 = 0) {
        self.replica = replica
        self.requestsExecuted = requestsExecuted
        self.lastExecuted = lastExecuted
        self.viewChanges = viewChanges
    }

    /// View changes any replica present in both reports started between them (the largest count).
    public static func viewChanges(from start: [ReplicaProgress], to end: [ReplicaProgress]) -> UInt64 {
        end.compactMap { last in
            start.first { $0.replica == last.replica && $0.viewChanges <= last.viewChanges }.map { last.viewChanges - $0.viewChanges }
        }.max() ?? 0
    }

    /// The average batch the replicas executed between two reports: requests executed over
    /// sequence numbers executed, summed over the replicas present in both (a replica whose
    /// counters went back, a restart, is left out). Nil when nothing was executed.
    public static func effectiveBatchSize(from start: [ReplicaProgress], to end: [ReplicaProgress]) -> Double? {
        var requests: UInt64 = 0
        var sequences: UInt64 = 0
        for last in end {
            guard let first = start.first(where: { $0.replica == last.replica }),
                  last.requestsExecuted >= first.requestsExecuted, last.lastExecuted >= first.lastExecuted
            else { continue }
            requests += last.requestsExecuted - first.requestsExecuted
            sequences += last.lastExecuted - first.lastExecuted
        }
        guard sequences > 0, requests > 0 else { return nil }
        return Double(requests) / Double(sequences)
    }
}

/// The replicas' resident memory at one moment, with the requests completed by then.
public struct MemorySample: Codable, Sendable, Equatable {
    /// Seconds since the load began.
    public var seconds: Double
    /// Requests the bench's clients had completed since the load began (warm-up included).
    public var requests: Int
    /// VmRSS in kilobytes per replica, in replica order; nil for one that was not running.
    public var residentKilobytes: [Int?]

    public init(seconds: Double, requests: Int, residentKilobytes: [Int?]) {
        self.seconds = seconds
        self.requests = requests
        self.residentKilobytes = residentKilobytes
    }
}

/// How much the replicas' resident memory grew between the sample nearest a number of
/// requests (100,000 by default) and the last sample.
public struct MemoryGrowth: Codable, Sendable, Equatable {
    public var fromRequests: Int
    public var toRequests: Int
    public var fromKilobytes: [Int?]
    public var toKilobytes: [Int?]
    /// Growth per replica in percent (nil where a sample is missing).
    public var percent: [Double?]
    /// The largest growth of any replica.
    public var maxPercent: Double

    /// Nil unless the last sample got to `reference` requests and is a later sample than
    /// the one nearest `reference` (an earlier one on ties).
    public static func between(_ samples: [MemorySample], reference: Int = 100_000) -> MemoryGrowth? {
        guard let last = samples.last, last.requests >= reference else { return nil }
        let nearest = samples.indices.min { a, b in
            let da = abs(samples[a].requests - reference), db = abs(samples[b].requests - reference)
            return da != db ? da < db : a < b
        }!
        guard nearest < samples.count - 1 else { return nil }
        let first = samples[nearest]
        let percent: [Double?] = zip(first.residentKilobytes, last.residentKilobytes).map { a, b in
            guard let a, let b, a > 0 else { return nil }
            return Double(b - a) / Double(a) * 100
        }
        guard let maxPercent = percent.compactMap({ $0 }).max() else { return nil }
        return MemoryGrowth(
            fromRequests: first.requests, toRequests: last.requests, fromKilobytes: first.residentKilobytes,
            toKilobytes: last.residentKilobytes, percent: percent, maxPercent: maxPercent)
    }
}
