import Foundation
import PBFTCheck
import PBFTTestSupport
import Testing

/// The convergence rule (`Convergence`) on hand-built final states, and the verdict
/// (`ConvergenceCheck`) on hand-built results folders: `final_status` events as the runner
/// writes them, reconfigurations, and folders written before the records existed.
@Suite struct ConvergenceTests {
    typealias Status = ReplicaFinalState.Status

    /// A running replica of epoch 1 (members r0 to r4), active in view 2, at checkpoint 640, executed 650.
    static func up(_ id: Int, epoch: UInt64 = 1, members: [Int] = [0, 1, 2, 3, 4], view: UInt64 = 2, active: Bool = true,
                   stable: UInt64 = 640, executed: UInt64 = 650, passive: Bool = false, joining: Bool = false, next: UInt64? = nil) -> ReplicaFinalState {
        ReplicaFinalState(replica: id, process: "running", status: Status(
            epoch: epoch, members: members, view: view, viewActive: active, lastExecuted: executed, stableCheckpoint: stable,
            passive: passive, joining: joining, nextEpoch: next))
    }

    static let converged = (0...4).map { up($0) }

    func only(_ problems: [String], naming replica: String, _ words: String) {
        #expect(problems.count == 1 && problems[0].hasPrefix(replica + " ") && problems[0].contains(words), "\(problems)")
    }

    @Test("replicas in one epoch and view, at one stable checkpoint and one last executed sequence number, have converged")
    func sameEpochViewCheckpointAndExecutedConverge() {
        let convergence = Convergence(Self.converged, byzantine: [])
        #expect(convergence.converged, "\(convergence.problems)")
        #expect(convergence.judged == [0, 1, 2, 3, 4])
        #expect(convergence.reached == "e1 v2, stable checkpoint 640, executed 650")
    }

    @Test("a replica stuck in a view change, or active in an older view, is named with the view of the others")
    func aViewChangeOrALaggingViewIsNamed() {
        var states = Self.converged
        states[2] = Self.up(2, view: 3, active: false)
        let changing = Convergence(states, byzantine: []).problems
        only(changing, naming: "r2", "stuck in a view change to v3 (the others in v2, e1)")
        #expect(changing[0].hasSuffix(": e1 v3 changing h=640 executed=650"), "its state: \(changing)")

        states[2] = Self.up(2, view: 1)
        only(Convergence(states, byzantine: []).problems, naming: "r2", "in v1, the others in v2, e1")
    }

    @Test("a replica behind the others' stable checkpoint, or behind their last executed sequence number, is named")
    func aLaggingCheckpointOrExecutionIsNamed() {
        var states = Self.converged
        states[3] = Self.up(3, stable: 576, executed: 600)
        only(Convergence(states, byzantine: []).problems, naming: "r3", "at stable checkpoint 576, the others at 640")
        // Same checkpoint, 10 requests behind: K = 64 would hide it.
        states[3] = Self.up(3, executed: 640)
        only(Convergence(states, byzantine: []).problems, naming: "r3", "executed up to 640, the others up to 650")
    }

    @Test("a replica still passive after amnesia, still joining, in an older epoch, or waiting for a decided epoch is named")
    func passiveJoiningOldEpochOrPendingEpochIsNamed() {
        var states = Self.converged
        states[1] = Self.up(1, stable: 512, executed: 512, passive: true)
        only(Convergence(states, byzantine: []).problems, naming: "r1", "still passive after amnesia")

        states = Self.converged
        states[4] = Self.up(4, view: 0, stable: 0, executed: 0, joining: true)
        only(Convergence(states, byzantine: []).problems, naming: "r4", "still joining e1")

        states = Self.converged
        states[0] = Self.up(0, epoch: 0, members: [0, 1, 2, 3], view: 5, stable: 576, executed: 600)
        only(Convergence(states, byzantine: []).problems, naming: "r0", "still in e0, the others in e1")

        // A replica the newest epoch left out runs on instead of retiring.
        let leftOut = Self.converged.map { $0.replica == 4 ? $0 : Self.up($0.replica, members: [0, 1, 2, 3]) }
        only(Convergence(leftOut, byzantine: []).problems, naming: "r4", "left out of e1 but not retired")

        let waiting = Self.converged.map { Self.up($0.replica, next: 2) }
        let problems = Convergence(waiting, byzantine: []).problems
        #expect(problems.count == 5 && problems.allSatisfy { $0.contains("waiting for e2, decided but not begun") }, "\(problems)")
    }

    @Test("replicas the experiment made Byzantine, took down or retired are not judged; one that ended on its own or does not answer is named")
    func whoIsJudged() {
        var states = Self.converged
        states[0] = Self.up(0, view: 7, active: false)
        states[1] = ReplicaFinalState(replica: 1, process: "killed", status: nil)
        states[2] = ReplicaFinalState(replica: 2, process: "retired", status: nil)
        states.append(ReplicaFinalState(replica: 5, process: "paused", status: nil))
        let convergence = Convergence(states, byzantine: [0])
        #expect(convergence.converged, "\(convergence.problems)")
        #expect(convergence.judged == [3, 4])
        #expect(convergence.excluded == ["r0 Byzantine", "r1 killed", "r2 retired", "r5 paused"])

        states[1] = ReplicaFinalState(replica: 1, process: "exited", status: nil)
        only(Convergence(states, byzantine: [0]).problems, naming: "r1", "exited on its own")
        states[1] = ReplicaFinalState(replica: 1, process: "running", status: nil)
        only(Convergence(states, byzantine: [0]).problems, naming: "r1", "did not answer its status")
    }

    // MARK: The verdict of a results folder

    /// A results folder with the files `ResultsFolder.open` needs: scenario.json and events.jsonl.
    func folder(_ events: [String], byzantine: [Int] = [], in directory: TemporaryDirectory) throws -> ResultsFolder {
        directory.write("scenario.json", #"{"name":"t","cluster":{"replicas":5,"f":1},"load":{"duration_s":10},"replica_ids":[0,1,2,3,4],"byzantine_replicas":\#(byzantine)}"#)
        var lines = [#"{"time":"t","elapsed":1.0,"event":"load_start"}"#]
        lines += events.map { #"{"time":"t","elapsed":12.0,"#+$0.dropFirst() }
        directory.write("events.jsonl", lines.joined(separator: "\n") + "\n")
        return try ResultsFolder.open(directory.path)
    }

    /// The `final_status` line the runner writes for `state`.
    static func line(_ state: ReplicaFinalState) throws -> String {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as! [String: Any]
        object["event"] = "final_status"
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test("final_status lines read back as the runner wrote them, with or without a status")
    func finalStatusRoundTrips() throws {
        let dir = TemporaryDirectory()
        let states = Self.converged + [ReplicaFinalState(replica: 5, process: "killed", status: nil), Self.up(6, next: 2)]
        let read = try folder(states.map(Self.line), in: dir)
        #expect(read.finalStates == states)
        #expect(try !Self.line(Self.up(0)).contains("next_epoch"), "absent, not null, when no epoch is decided")
    }

    @Test("a converged run passes; one replica in a view change fails, naming it and its state")
    func verdictPassesOrNamesTheReplica() throws {
        let dir = TemporaryDirectory()
        let settle = #"{"event":"settle","converged":true,"waited_s":0.4,"settle_s":15}"#
        let pass = ConvergenceCheck.verdict(try folder(try Self.converged.map(Self.line) + [settle], in: dir), timings: [])
        #expect(pass.passed && !pass.skipped, "\(pass.detail)")
        #expect(pass.detail.hasPrefix("r0, r1, r2, r3, r4 all in e1 v2, stable checkpoint 640, executed 650"), "\(pass.detail)")
        #expect(pass.detail.contains("the runner waited 0.4 s after the load (settle_s 15)"), "\(pass.detail)")

        var states = Self.converged
        states[2] = Self.up(2, view: 3, active: false)
        let fail = ConvergenceCheck.verdict(try folder(try states.map(Self.line), in: TemporaryDirectory()), timings: [])
        #expect(fail.failed)
        #expect(fail.detail.hasPrefix("r2 stuck in a view change to v3 (the others in v2, e1): e1 v3 changing"), "\(fail.detail)")

        // The same replica, Byzantine in the experiment, is not judged.
        let byzantine = ConvergenceCheck.verdict(try folder(try states.map(Self.line), byzantine: [2], in: TemporaryDirectory()), timings: [])
        #expect(byzantine.passed && byzantine.detail.contains("not judged: r2 Byzantine"), "\(byzantine.detail)")
    }

    @Test("a reconfiguration never answered, or answered for an epoch the replicas never reached, fails the verdict")
    func unansweredReconfigurationFails() throws {
        let dir = TemporaryDirectory()
        let read = try folder(try Self.converged.map(Self.line), in: dir)
        let unanswered = ReconfigurationTiming(change: "add replica 5 at 127.0.0.1:9", submitted: 5, answer: nil, answered: nil, epoch: nil,
                                               began: nil, firstSequence: nil, firstOperation: nil, longestGap: nil)
        let fail = ConvergenceCheck.verdict(read, timings: [unanswered])
        #expect(fail.failed && fail.detail.hasPrefix("'add replica 5 at 127.0.0.1:9' submitted at 5.00 s was never answered"), "\(fail.detail)")
        #expect(fail.detail.contains("0 of 1 reconfigurations answered"), "\(fail.detail)")

        let ahead = ReconfigurationTiming(change: "set f to 1", submitted: 5, answer: "ok: e2 (n = 5, f = 1) starts after sequence 704", answered: 5.1,
                                          epoch: 2, began: nil, firstSequence: nil, firstOperation: nil, longestGap: nil)
        let behind = ConvergenceCheck.verdict(read, timings: [ahead])
        #expect(behind.failed && behind.detail.contains("but the correct replicas ended in e1"), "\(behind.detail)")

        let reached = ReconfigurationTiming(change: "add replica 4 at 127.0.0.1:9", submitted: 2, answer: "ok: e1 (n = 5, f = 1) starts after sequence 96",
                                            answered: 2.1, epoch: 1, began: 2.5, firstSequence: 97, firstOperation: 2.6, longestGap: 0.3)
        #expect(ConvergenceCheck.verdict(read, timings: [reached]).passed)
    }

    @Test("a folder without final_status records is skipped, not passed; so is a run that ended with the network still faulty")
    func missingRecordsOrUnhealedNetworkAreSkipped() throws {
        let old = ConvergenceCheck.verdict(try folder([#"{"event":"load_end"}"#], in: TemporaryDirectory()), timings: [])
        #expect(old.skipped && !old.passed && !old.failed)
        #expect(old.detail.contains("no final_status records"), "\(old.detail)")
        #expect(old.word == "SKIPPED")

        var states = Self.converged
        states[0] = Self.up(0, view: 3, active: false)
        let split = ConvergenceCheck.verdict(try folder([#"{"event":"partition","groups":[[0],[1,2,3,4]],"one_way":false}"#] + states.map(Self.line), in: TemporaryDirectory()), timings: [])
        #expect(split.skipped && split.detail.contains("partition 0 / 1,2,3,4 still in force"), "\(split.detail)")
        let healed = ConvergenceCheck.verdict(try folder([#"{"event":"partition","groups":[[0],[1,2,3,4]],"one_way":false}"#, #"{"event":"heal"}"#] + states.map(Self.line), in: TemporaryDirectory()), timings: [])
        #expect(healed.failed, "judged once healed: \(healed.detail)")

        // A report with a skipped verdict and passing ones passes; with only a skipped one, it does not.
        let report = RunReport(name: "t", purpose: "", seed: 1, version: "v", started: "s", durationSeconds: 1,
                               verdicts: [RunReport.Verdict("agreement", passed: true), old])
        #expect(report.passed)
        #expect(!RunReport(name: "t", purpose: "", seed: 1, version: "v", started: "s", durationSeconds: 1, verdicts: [old]).passed)
        let page = try ReportXML.parse(ReportRenderer.html(report))
        #expect(try page.one("tr", class: "skipped").one("td", class: "verdict-result").text == "SKIPPED")
        #expect(try page.one("p", class: "overall").text.contains("1 of 2 checks passed, 1 skipped (convergence)"))
    }
}
