public import PBFTWire

/// The rule an operator-signed control command must pass at its target (a replica's control
/// endpoint, or a launcher's) before it is carried out: docs/runtime.md, *Control security*.
///
/// A command is accepted only if
/// 1. it names this target (`wrongTarget` otherwise): a command captured on its way to
///    replica 3 does nothing at replica 0, nor one for a launcher at another run's launcher;
/// 2. its timestamp is above the high mark, the newest timestamp this target accepted
///    (`replayed`); a replica keeps the mark in its data directory, synced before it carries
///    out a command that changes anything, so a restart does not lower it;
/// 3. its timestamp is within `windowMicros` of this target's clock (`tooOld`, `tooNew`):
///    a recording is useless after the window even where the mark was lost;
/// 4. it was issued after this target started, give or take `startSlackMicros` of clock
///    skew (`beforeStart`): whatever was recorded before a restart is refused after it,
///    a restart with a wiped data directory (its mark lost) included (on one host, a
///    command cannot arrive before the socket it is sent to is bound, which is after the
///    start was noted, so the slack only serves hosts whose clocks differ);
/// 5. it was signed for the epoch this target is in (`wrongEpoch`).
///
/// Rules 1 to 4 read only fields of the command, so a receiver may apply them (`precheck`)
/// before it verifies the signature: a replayed datagram costs no signature check. Only a
/// `wrongEpoch` refusal is answered, and only once per command (the first time a command
/// that passed rules 1 to 4 arrives): that is the operator's own fresh command signed with a
/// stale epoch, and the answer carries the epoch to sign it in again. Every other refusal is
/// counted and left unanswered, so a replayed datagram never costs a signature or a log line.
///
/// Pure: the caller passes the time. Not thread-safe; one owner.
public struct ControlGate: Sendable {
    /// Why a command was refused; the raw value names its counter in status reports.
    public enum Refusal: String, CaseIterable, Sendable {
        case wrongTarget = "wrong_target"
        case replayed
        case tooOld = "too_old"
        case tooNew = "too_new"
        case beforeStart = "before_start"
        case wrongEpoch = "wrong_epoch"
    }

    public enum Verdict: Equatable, Sendable {
        case accept
        /// `answer`: send a signed refusal (only the first wrong-epoch refusal of a command).
        case refuse(Refusal, answer: Bool)
    }

    /// How far a command's timestamp may be from the target's clock, either way: clock skew
    /// between the operator's host and the target's plus the time a command takes to arrive
    /// on a busy host. A recorded command is dead after this long wherever it is replayed.
    public static let windowMicros: UInt64 = 10_000_000
    /// How much earlier than the target's start a command may have been issued: the clock
    /// skew tolerated right after a (re)start (hosts kept in step by NTP differ by
    /// milliseconds; on one host there is none). With a wiped data directory, commands
    /// recorded less than this before the restart are the only recordings no rule refuses.
    public static let startSlackMicros: UInt64 = 500_000

    public let target: Control.Target
    /// The target's wall clock when it started (microseconds since 1970).
    public let startMicros: UInt64
    /// The newest timestamp accepted.
    public private(set) var highMark: Timestamp
    /// The newest command answered with a wrong-epoch refusal: one answer per command.
    private var lastAnswered = Timestamp(0)
    public private(set) var acceptedCount = 0
    private var refusedCounts = [Int](repeating: 0, count: Refusal.allCases.count)

    /// `highMark`: the mark read back from durable storage (0 when there is none).
    public init(target: Control.Target, startMicros: UInt64, highMark: Timestamp) {
        self.target = target
        self.startMicros = startMicros
        self.highMark = highMark
    }

    public func refused(_ reason: Refusal) -> Int { refusedCounts[Refusal.allCases.firstIndex(of: reason)!] }

    /// Rules 1 to 4, on the command's fields alone; changes nothing. Nil: it may go on to
    /// the signature check and `admit`.
    public func precheck(_ control: Control, nowMicros: UInt64) -> Refusal? {
        let t = control.timestamp.rawValue
        if control.target != target { return .wrongTarget }
        if control.timestamp <= highMark { return .replayed }
        if nowMicros > t, nowMicros - t > Self.windowMicros { return .tooOld }
        if t > nowMicros, t - nowMicros > Self.windowMicros { return .tooNew }
        if startMicros > t, startMicros - t > Self.startSlackMicros { return .beforeStart }
        return nil
    }

    /// Counts a refusal found before the signature check (by `precheck`).
    public mutating func count(_ reason: Refusal) {
        refusedCounts[Refusal.allCases.firstIndex(of: reason)!] += 1
    }

    /// Every rule, for a command whose signature checked out, signed for `signedEpoch`, at a
    /// target in `epoch`. Accepting raises the high mark; the caller makes it durable before
    /// it carries out a command that `changesState`.
    public mutating func admit(_ control: Control, signedFor signedEpoch: Epoch, epoch: Epoch, nowMicros: UInt64) -> Verdict {
        if let reason = precheck(control, nowMicros: nowMicros) {
            count(reason)
            return .refuse(reason, answer: false)
        }
        guard signedEpoch == epoch else {
            count(.wrongEpoch)
            let first = control.timestamp > lastAnswered
            if first { lastAnswered = control.timestamp }
            return .refuse(.wrongEpoch, answer: first)
        }
        precondition(control.timestamp > highMark && control.target == target, "an accepted command is newer than the mark and ours: \(control.timestamp) vs \(highMark)")
        highMark = control.timestamp
        acceptedCount += 1
        return .accept
    }

    /// Counts as JSON for status reports: `{"accepted":N,"refused":{"wrong_target":N,...},"high_mark":T}`.
    public var json: String {
        let counts = Refusal.allCases.map { "\"\($0.rawValue)\":\(refused($0))" }.joined(separator: ",")
        return "{\"accepted\":\(acceptedCount),\"refused\":{\(counts)},\"high_mark\":\(highMark.rawValue)}"
    }

    /// Every refusal counted, all reasons.
    public var refusedTotal: Int { refusedCounts.reduce(0, +) }
}

/// Counts events by reason and lets at most one report per reason per interval through,
/// carrying the count since the last one: how refusals reach a log or an event file when a
/// flood brings thousands a second (one line per reason per second instead of one per
/// datagram). Pure: the caller passes the time and writes the lines.
public struct RateLimitedCounts<Reason: Hashable & Comparable & Sendable>: Sendable {
    public let intervalMicros: UInt64
    /// Per reason: counted and not yet reported, and when the last report went out.
    private var pending: [Reason: Int] = [:]
    private var lastReport: [Reason: UInt64] = [:]
    /// Reasons in the table at most: a bound on memory whatever the reasons' type allows.
    public static var reasonsMax: Int { 64 }

    public init(intervalMicros: UInt64 = 1_000_000) {
        self.intervalMicros = intervalMicros
    }

    /// Counts one event; returns the count to report now (this one included) when no report
    /// for `reason` went out in the last interval, else nil (it waits for `due`).
    public mutating func note(_ reason: Reason, nowMicros: UInt64) -> Int? {
        guard pending[reason] != nil || pending.count < Self.reasonsMax else { return nil }
        pending[reason, default: 0] += 1
        if let last = lastReport[reason], nowMicros >= last, nowMicros - last < intervalMicros { return nil }
        return take(reason, nowMicros: nowMicros)
    }

    /// The counts waiting whose interval has passed, by reason in order; call it from a timer
    /// so that the last events of a burst are reported too.
    public mutating func due(nowMicros: UInt64) -> [(reason: Reason, count: Int)] {
        var out: [(reason: Reason, count: Int)] = []
        for reason in pending.keys.sorted() where pending[reason]! > 0 {
            if let last = lastReport[reason], nowMicros >= last, nowMicros - last < intervalMicros { continue }
            out.append((reason, take(reason, nowMicros: nowMicros)))
        }
        return out
    }

    private mutating func take(_ reason: Reason, nowMicros: UInt64) -> Int {
        let count = pending[reason] ?? 0
        pending[reason] = 0
        lastReport[reason] = nowMicros
        return count
    }
}
