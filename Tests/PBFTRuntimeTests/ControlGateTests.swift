import Foundation
import PBFTRuntime
import PBFTStorage
import PBFTTestSupport
import PBFTWire
import Testing

/// The operator-command gate (`ControlGate`, docs/runtime.md *Control security*), each attack
/// of issue 19 replayed against it: a command captured on its way to one target and sent to
/// another, after a restart (with the high mark read back, and with it lost), for another
/// epoch, to another launch.
@Suite struct ControlGateTests {
    static let second: UInt64 = 1_000_000
    /// The replica's clock when it started.
    static let start: UInt64 = 1_800_000_000 * second

    func gate(_ target: Control.Target = .replica(ReplicaID(3)), start: UInt64 = start, mark: UInt64 = 0) -> ControlGate {
        ControlGate(target: target, startMicros: start, highMark: Timestamp(mark))
    }

    func command(_ target: Control.Target = .replica(ReplicaID(3)), at t: UInt64, _ command: Control.Command = .stop) -> Control {
        Control(timestamp: Timestamp(t), target: target, command: command)
    }

    @Test func aFreshCommandForThisTargetAndEpochIsAcceptedAndRaisesTheMark() {
        var g = gate()
        let t = Self.start + 5 * Self.second
        #expect(g.admit(command(at: t), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + 1_000) == .accept)
        #expect(g.highMark == Timestamp(t))
        #expect(g.admit(command(at: t + 1), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + 2_000) == .accept, "the next one, one microsecond later")
        #expect(g.acceptedCount == 2 && g.refusedTotal == 0)
    }

    /// Attack (a): `ctl stop 3` captured and sent to replicas 0 and 1.
    @Test func aCommandCapturedForReplica3IsRefusedByTheOthersUnanswered() {
        let t = Self.start + 5 * Self.second
        let stop3 = command(at: t)
        for other in [0, 1, 2] as [UInt32] {
            var g = gate(.replica(ReplicaID(other)))
            #expect(g.precheck(stop3, nowMicros: t) == .wrongTarget, "before any signature check")
            #expect(g.admit(stop3, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .refuse(.wrongTarget, answer: false))
            #expect(g.refused(.wrongTarget) == 1 && g.highMark == Timestamp(0))
        }
    }

    /// Attack (b), mark kept: the target restarted half a second after it obeyed, too soon
    /// for the start rule; the mark read back from its data directory refuses the replay.
    @Test func aReplayAfterARestartIsRefusedByTheDurableMark() throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let t = Self.start + 5 * Self.second
        var before = gate()
        #expect(before.admit(command(at: t), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .accept)
        try ControlMarkStore(directory: directory.path).save(before.highMark.rawValue)

        let mark = try #require(try ControlMarkStore(directory: directory.path).load())
        var after = gate(start: t + Self.second / 2, mark: mark)
        let now = t + Self.second
        #expect(after.admit(command(at: t), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: now) == .refuse(.replayed, answer: false))
        #expect(after.admit(command(at: t + Self.second / 2 + 10), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: now) == .accept, "a new command is obeyed")
    }

    /// Attack (b), mark lost (`restart --wipe`): the same datagram, 20 s old, and one only 2 s
    /// older than the new process, are refused without any mark.
    @Test func aReplayAfterARestartWithItsDataWipedIsRefusedByTheClock() {
        let t = Self.start
        let restarted = t + 2 * Self.second
        var g = gate(start: restarted, mark: 0)
        #expect(g.admit(command(at: t), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: restarted + Self.second) == .refuse(.beforeStart, answer: false))
        #expect(g.admit(command(at: t), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + 20 * Self.second) == .refuse(.tooOld, answer: false))
        #expect(g.acceptedCount == 0)
    }

    /// Attack (c): a command signed for another epoch. The operator's own fresh command with
    /// a stale epoch gets one answer (with the epoch to use); the same datagram again, none.
    @Test func aCommandForAnotherEpochIsRefusedAndAnsweredOnce() {
        var g = gate()
        let t = Self.start + Self.second
        #expect(g.precheck(command(at: t), nowMicros: t) == nil, "the epoch is not a field rule: it needs the signature")
        #expect(g.admit(command(at: t), signedFor: Epoch(1), epoch: Epoch(2), nowMicros: t) == .refuse(.wrongEpoch, answer: true))
        #expect(g.admit(command(at: t), signedFor: Epoch(1), epoch: Epoch(2), nowMicros: t + 1) == .refuse(.wrongEpoch, answer: false))
        #expect(g.admit(command(at: t), signedFor: Epoch(3), epoch: Epoch(2), nowMicros: t + 2) == .refuse(.wrongEpoch, answer: false))
        #expect(g.highMark == Timestamp(0), "a refused command does not move the mark")
        #expect(g.admit(command(at: t + 5), signedFor: Epoch(2), epoch: Epoch(2), nowMicros: t + 6) == .accept, "signed again for the epoch the answer named")
        #expect(g.refused(.wrongEpoch) == 3)
    }

    /// Attack (d): `byzantine` is bound the same way, and a launcher accepts only commands for
    /// its own run.
    @Test func byzantineCommandsAndLauncherCommandsAreBoundTheSameWay() {
        let t = Self.start + Self.second
        var replica2 = gate(.replica(ReplicaID(2)))
        #expect(replica2.admit(command(.replica(ReplicaID(1)), at: t, .byzantine), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .refuse(.wrongTarget, answer: false))

        let runA = RunID(high: 1, low: 2), runB = RunID(high: 1, low: 3)
        var launcherB = gate(.launcher(runB))
        #expect(launcherB.admit(command(.launcher(runA), at: t, .launcher), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .refuse(.wrongTarget, answer: false))
        #expect(launcherB.admit(command(.replica(ReplicaID(0)), at: t, .stop), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .refuse(.wrongTarget, answer: false))
        #expect(launcherB.admit(command(.launcher(runB), at: t, .launcher), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t) == .accept)
        #expect(launcherB.admit(command(.launcher(runB), at: t, .launcher), signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + 1) == .refuse(.replayed, answer: false))
    }

    @Test func theWindowIsTenSecondsEitherWayAndOverflowsNowhere() {
        let now = Self.start + 100 * Self.second
        let w = ControlGate.windowMicros
        let g = gate()
        #expect(g.precheck(command(at: now - w), nowMicros: now) == nil)
        #expect(g.precheck(command(at: now - w - 1), nowMicros: now) == .tooOld)
        #expect(g.precheck(command(at: now + w), nowMicros: now) == nil)
        #expect(g.precheck(command(at: now + w + 1), nowMicros: now) == .tooNew)
        #expect(g.precheck(command(at: UInt64.max), nowMicros: now) == .tooNew)
        #expect(g.precheck(command(at: 0), nowMicros: now) == .replayed, "0 is never above a mark")
        #expect(g.precheck(command(at: 1), nowMicros: now) == .tooOld)
        #expect(g.precheck(command(at: 1), nowMicros: 0) == .beforeStart, "a clock that fails reads 0: nothing is accepted then")
        #expect(gate(mark: UInt64.max).precheck(command(at: UInt64.max), nowMicros: UInt64.max) == .replayed)
        #expect(g.precheck(command(at: Self.start - ControlGate.startSlackMicros), nowMicros: Self.start) == nil, "the slack for clock skew")
        #expect(g.precheck(command(at: Self.start - ControlGate.startSlackMicros - 1), nowMicros: Self.start) == .beforeStart)
    }

    /// The target of issue 19: every replay refused, 0 accepted, each counted by reason.
    @Test func everyReplayOfIssue19IsRefused() throws {
        let t = Self.start + Self.second
        let captured = [command(at: t), command(at: t, .byzantine)]
        var accepted = 0
        var tries = 0
        for control in captured {
            // To another replica.
            for other in [0, 1, 2] as [UInt32] {
                var g = gate(.replica(ReplicaID(other)))
                tries += 1
                if g.admit(control, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + 1) == .accept { accepted += 1 }
            }
            // To its own target again, and after restarts with and without the mark, up to 20 s later.
            var own = gate()
            _ = own.admit(control, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t)
            for delay in [1, 100_000, Self.second, 20 * Self.second] {
                tries += 3
                if own.admit(control, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + delay) == .accept { accepted += 1 }
                var kept = gate(start: t + delay, mark: own.highMark.rawValue)
                if kept.admit(control, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + delay + 1) == .accept { accepted += 1 }
                var wiped = gate(start: t + max(delay, Self.second), mark: 0)
                if wiped.admit(control, signedFor: Epoch(0), epoch: Epoch(0), nowMicros: t + max(delay, Self.second) + 1) == .accept { accepted += 1 }
            }
            // To a replica in another epoch.
            var later = gate()
            tries += 1
            if later.admit(control, signedFor: Epoch(0), epoch: Epoch(1), nowMicros: t + 1) == .accept { accepted += 1 }
        }
        print("control gate: \(tries) replays tried, \(accepted) accepted")
        #expect(accepted == 0)
    }
}

@Suite struct RateLimitedCountsTests {
    @Test func oneReportPerReasonPerIntervalCarryingTheCount() {
        var counts = RateLimitedCounts<String>(intervalMicros: 1_000_000)
        #expect(counts.note("replayed", nowMicros: 10) == 1, "the first is reported at once")
        for k in 0..<999 { #expect(counts.note("replayed", nowMicros: 20 + UInt64(k)) == nil) }
        #expect(counts.note("wrong_target", nowMicros: 30) == 1, "reasons are limited apart")
        #expect(counts.due(nowMicros: 500_000).isEmpty, "the second is not over")
        let due = counts.due(nowMicros: 1_000_010)
        #expect(due.count == 1 && due[0].reason == "replayed" && due[0].count == 999)
        #expect(counts.due(nowMicros: 5_000_000).isEmpty, "nothing waits")
        #expect(counts.note("replayed", nowMicros: 5_000_000) == 1)
    }

    @Test func theTableIsBoundedWhateverTheReasons() {
        var counts = RateLimitedCounts<String>()
        for k in 0..<1_000 { _ = counts.note("reason \(k)", nowMicros: 1) }
        #expect(counts.due(nowMicros: 10_000_000).count <= RateLimitedCounts<String>.reasonsMax)
    }
}
