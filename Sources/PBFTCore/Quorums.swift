public import PBFTWire

/// Votes of one kind (prepares, commits or checkpoints) for one slot, at most one per
/// replica: the first vote a replica sends is kept; a different later one is conflicting
/// and dropped. Counting is by digest, so votes may arrive before the pre-prepare they
/// match.
public struct VoteSet: Hashable, Sendable {
    public struct Vote: Hashable, Sendable {
        public var digest: Digest
        public var envelope: Envelope
    }

    public enum Outcome: Hashable, Sendable { case added, duplicate, conflicting }

    private var votes: [ReplicaID: Vote] = [:]

    public init() {}

    public mutating func insert(_ envelope: Envelope, digest: Digest, from replica: ReplicaID) -> Outcome {
        if let existing = votes[replica] {
            return existing.digest == digest ? .duplicate : .conflicting
        }
        votes[replica] = Vote(digest: digest, envelope: envelope)
        return .added
    }

    /// Replaces `replica`'s vote with a conflicting one. Only for a vote that completes a
    /// certificate: a replica that signed two different votes is faulty, and a quorum
    /// certificate is sound whichever of a faulty replica's votes it holds (its strength
    /// lies in the correct replicas it contains), so equivocation must not be able to keep
    /// a certificate from forming.
    ///
    /// Returns whether it replaced the vote: only when `replica` voted before and the new
    /// vote brings `digest` to `quorum`.
    public mutating func replace(_ envelope: Envelope, digest: Digest, from replica: ReplicaID, completing quorum: Int) -> Bool {
        guard votes[replica] != nil, count(matching: digest) + 1 >= quorum else { return false }
        votes[replica] = Vote(digest: digest, envelope: envelope)
        return true
    }

    public func vote(of replica: ReplicaID) -> Vote? { votes[replica] }

    /// The number of replicas (other than `excluded`) that voted for `digest`.
    public func count(matching digest: Digest, excluding excluded: ReplicaID? = nil) -> Int {
        var count = 0
        for (replica, vote) in votes where vote.digest == digest && replica != excluded { count += 1 }
        return count
    }

    /// The envelopes voting for `digest`, in replica-id order (deterministic).
    public func envelopes(matching digest: Digest, excluding excluded: ReplicaID? = nil) -> [Envelope] {
        votes.filter { $0.value.digest == digest && $0.key != excluded }
            .sorted { $0.key < $1.key }
            .map(\.value.envelope)
    }

    /// A digest that at least `quorum` replicas voted for, if any (the smallest, should
    /// there ever be two).
    public func digest(withAtLeast quorum: Int) -> Digest? {
        var counts: [Digest: Int] = [:]
        for vote in votes.values { counts[vote.digest, default: 0] += 1 }
        return counts.filter { $0.value >= quorum }.keys.min()
    }

    public var count: Int { votes.count }
    public var isEmpty: Bool { votes.isEmpty }
}

/// The low and high water marks: a replica accepts protocol messages for sequence numbers
/// `n` with `h < n <= H`, where `H = h + L` (§4.2). `h` is the last stable checkpoint.
public struct WaterMarks: Hashable, Sendable {
    public private(set) var low: SequenceNumber
    public let window: Int

    public init(low: SequenceNumber = SequenceNumber(0), window: Int) {
        precondition(window >= 1, "log window must be positive, got \(window)")
        self.low = low
        self.window = window
    }

    public var high: SequenceNumber { SequenceNumber(low.rawValue + UInt64(window)) }

    public func contains(_ n: SequenceNumber) -> Bool { n > low && n <= high }

    /// Advances `h` to a newer stable checkpoint; an older one leaves the marks alone.
    @discardableResult
    public mutating func advance(to stable: SequenceNumber) -> Bool {
        guard stable > low else { return false }
        low = stable
        return true
    }
}

extension Principal: Comparable {
    /// Replicas, then clients, then the operator; by id within a kind. Used wherever a
    /// deterministic order over principals is needed.
    public static func < (a: Principal, b: Principal) -> Bool {
        func key(_ p: Principal) -> (Int, UInt32) {
            switch p {
            case .replica(let id): (0, id.rawValue)
            case .client(let id): (1, id.rawValue)
            case .operator: (2, 0)
            }
        }
        return key(a) < key(b)
    }
}
