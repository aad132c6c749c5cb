public import PBFTWire

// Rejoining after amnesia: a replica whose durable state was lost cannot know which
// pre-prepares, prepares, commits and view-changes it signed before, so it must not sign
// any that could contradict them. A correct replica only signs for sequence numbers up to
// its H = h + L, and its h was a checkpoint that 2f+1 replicas signed, so at least f+1
// correct replicas remember a stable checkpoint at least as high. Any 2f+1 replicas include
// one of them. So the rule: collect the stable checkpoints that 2f+1 distinct replicas report
// (in their STATUS messages); with C the highest, stay passive (no pre-prepare, prepare,
// commit, view-change or new-view; checkpoints, state transfer and retransmission only)
// until this replica's stable checkpoint is above C + L. Everything it signs afterwards is
// for sequence numbers it cannot have signed before.
//
// A report counts only once this replica holds a stable checkpoint at least as high, its own
// or one certified by a quorum's checkpoint messages (peers answer a STATUS from behind with
// their stable checkpoint's proof, and the rejoining replica follows them by state transfer).
// A faulty replica's absurd report is then never counted, where it used to become C and keep
// a correct replica passive for good (seed 10017490); the quorum of reports is still a quorum
// of distinct replicas, so the argument above holds. Correct replicas alone make a quorum.

/// Progress of a rejoin after amnesia.
public struct AmnesiaRecovery: Hashable, Sendable {
    /// The stable checkpoint each replica reported, the highest seen from each.
    var reports: [ReplicaID: SequenceNumber] = [:]
    /// C + L, once 2f+1 replicas reported: passive until h passes it.
    public internal(set) var passiveThrough: SequenceNumber?
}

extension Replica {
    /// Starts the rejoin rule; call on a replica created without its durable state on a
    /// cluster that may have run before.
    public mutating func beginAmnesiaRecovery() {
        amnesia = AmnesiaRecovery()
        viewChangeDeadline = nil
    }

    mutating func noteAmnesiaReport(_ stable: SequenceNumber, from sender: ReplicaID) {
        guard var recovery = amnesia, recovery.passiveThrough == nil else { return }
        recovery.reports[sender] = max(recovery.reports[sender] ?? SequenceNumber(0), stable)
        amnesia = recovery
        fixPassiveThroughOnceConfirmed()
    }

    /// Sets C + L once a quorum's reports (this replica's own among them) are each at or
    /// below a stable checkpoint this replica knows to be certified.
    mutating func fixPassiveThroughOnceConfirmed() {
        guard var recovery = amnesia, recovery.passiveThrough == nil else { return }
        let confirmed = max(waterMarks.low, certifiedCheckpointAhead()?.0.sequence ?? SequenceNumber(0))
        var reports = recovery.reports.filter { $0.value <= confirmed }
        // Our own stable checkpoint counts too: we report to ourselves what we hold.
        reports[id] = waterMarks.low
        guard reports.count >= membership.quorum, let highest = reports.values.max() else { return }
        let (through, overflow) = highest.rawValue.addingReportingOverflow(UInt64(configuration.logWindow))
        recovery.passiveThrough = SequenceNumber(overflow ? .max : through)
        amnesia = recovery
    }

    mutating func endAmnesiaIfSafe() {
        fixPassiveThroughOnceConfirmed()
        guard let through = amnesia?.passiveThrough, waterMarks.low > through else { return }
        amnesia = nil
        lastProgressTick = now
        // Backups waiting for this replica's null requests (`awaitFillForPassive`) stop now.
        broadcastStatus()
    }
}
