public import PBFTWire

/// Everything a replica needs to know that is not state: the membership and the bounds
/// that keep its memory finite. `validate()` rejects inconsistent settings; a replica is
/// only ever built from a validated configuration.
public struct Configuration: Hashable, Sendable {
    public var membership: Membership
    /// K: a checkpoint every K executed sequence numbers (§4.3).
    public var checkpointInterval: Int
    /// L: sequence numbers accepted above the low water mark h, so H = h + L (§4.2).
    public var logWindow: Int
    /// Requests in one pre-prepare's batch.
    public var batchSizeMax: Int
    /// Sequence numbers the primary may have assigned but not yet executed. Fewer than L
    /// leaves room for the next checkpoint to become stable before the window fills.
    public var sequencesInFlightMax: Int
    /// Requests a replica holds that are not yet in its log (one per client at most).
    public var requestsPendingMax: Int
    /// Ticks a backup waits for a known request to execute before it suspects the primary.
    public var viewChangeTimeoutTicks: Int
    /// Ticks without progress before a replica that has work ahead asks peers for what it
    /// is missing, and the least interval between two answers to one peer.
    public var statusIntervalTicks: Int
    /// Bytes of state in one state-transfer chunk.
    public var stateChunkBytes: Int
    public var limits: WireLimits

    public init(
        membership: Membership,
        checkpointInterval: Int = 64,
        logWindow: Int = 128,
        batchSizeMax: Int = 64,
        sequencesInFlightMax: Int = 32,
        requestsPendingMax: Int = 4096,
        viewChangeTimeoutTicks: Int = 200,
        statusIntervalTicks: Int = 20,
        stateChunkBytes: Int = 32 << 10,
        limits: WireLimits = .default
    ) {
        self.membership = membership
        self.checkpointInterval = checkpointInterval
        self.logWindow = logWindow
        self.batchSizeMax = batchSizeMax
        self.sequencesInFlightMax = sequencesInFlightMax
        self.requestsPendingMax = requestsPendingMax
        self.viewChangeTimeoutTicks = viewChangeTimeoutTicks
        self.statusIntervalTicks = statusIntervalTicks
        self.stateChunkBytes = stateChunkBytes
        self.limits = limits
    }

    public func validate() throws(ConfigurationError) {
        let m = membership
        guard m.n <= limits.replicasMax else { throw .invalid("n = \(m.n) exceeds the wire limit replicasMax = \(limits.replicasMax)") }
        guard m.n >= 3 * m.f + 1 else { throw .invalid("n = \(m.n) cannot tolerate f = \(m.f): n >= 3f+1 is required") }
        guard checkpointInterval >= 1 else { throw .invalid("checkpointInterval = \(checkpointInterval) must be at least 1") }
        guard logWindow >= checkpointInterval, logWindow % checkpointInterval == 0 else {
            throw .invalid("logWindow = \(logWindow) must be a positive multiple of checkpointInterval = \(checkpointInterval)")
        }
        guard logWindow <= limits.logWindowMax else {
            throw .invalid("logWindow = \(logWindow) exceeds the wire limit logWindowMax = \(limits.logWindowMax)")
        }
        guard (1...logWindow).contains(sequencesInFlightMax) else {
            throw .invalid("sequencesInFlightMax = \(sequencesInFlightMax) must be in 1...logWindow (\(logWindow))")
        }
        guard (1...limits.batchRequestsMax).contains(batchSizeMax) else {
            throw .invalid("batchSizeMax = \(batchSizeMax) must be in 1...\(limits.batchRequestsMax) (the wire limit batchRequestsMax)")
        }
        guard requestsPendingMax >= batchSizeMax else {
            throw .invalid("requestsPendingMax = \(requestsPendingMax) must be at least batchSizeMax = \(batchSizeMax)")
        }
        guard (1...limits.stateChunkBytesMax).contains(stateChunkBytes) else {
            throw .invalid("stateChunkBytes = \(stateChunkBytes) must be in 1...\(limits.stateChunkBytesMax) (the wire limit stateChunkBytesMax)")
        }
        guard viewChangeTimeoutTicks >= 1 else { throw .invalid("viewChangeTimeoutTicks must be at least 1") }
        guard statusIntervalTicks >= 1 else { throw .invalid("statusIntervalTicks must be at least 1") }
        guard statusIntervalTicks < viewChangeTimeoutTicks else {
            throw .invalid("statusIntervalTicks = \(statusIntervalTicks) must be below viewChangeTimeoutTicks = \(viewChangeTimeoutTicks), or lost messages would look like a faulty primary")
        }
    }

    /// The wire limits tightened to this configuration (n replicas, a window of L, batches
    /// of at most `batchSizeMax`), for decoding what peers send: a frame with more nested
    /// envelopes than this configuration can produce is refused before any of their
    /// signatures is checked, so one faulty replica cannot buy verification work with size.
    public var receiveLimits: WireLimits {
        var tight = limits
        tight.replicasMax = min(limits.replicasMax, membership.n)
        tight.logWindowMax = min(limits.logWindowMax, logWindow)
        tight.batchRequestsMax = min(limits.batchRequestsMax, batchSizeMax)
        return tight
    }

    /// The primary of `view` in this configuration.
    public func primary(of view: ViewNumber) -> ReplicaID { membership.primary(of: view) }
}

public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let reason): "invalid configuration: \(reason)" }
    }
}
