/// Proof that a principal is faulty: two messages it signed that no correct replica would
/// both sign. Signatures are the caller's to verify (`Authenticator`); this only says
/// whether the two messages, as signed, conflict.
extension Envelope {
    /// Both from one sender, of one kind, for one view and sequence number (pre-prepare,
    /// prepare, commit) or one checkpoint, with different digests.
    public func conflicts(with other: Envelope) -> Bool {
        guard sender == other.sender, epoch == other.epoch else { return false }
        switch (message, other.message) {
        case (.prePrepare(let a), .prePrepare(let b)):
            return a.view == b.view && a.sequence == b.sequence && a.batchDigest != b.batchDigest
        case (.prepare(let a), .prepare(let b)), (.commit(let a), .commit(let b)):
            return a.view == b.view && a.sequence == b.sequence && a.batchDigest != b.batchDigest
        case (.checkpoint(let a), .checkpoint(let b)):
            return a.sequence == b.sequence && a.stateDigest != b.stateDigest
        default:
            return false
        }
    }
}
