import Foundation
import PBFTCheck
import PBFTTestSupport
import Testing

/// The checkers of a results folder across epochs: the `epochs` verdict, the operator's
/// requests in integrity, and execution logs with epoch lines.
@Suite struct EpochCheckTests {
    /// An execution log with `epoch` lines and an executed batch per line given.
    func log(_ lines: [String], in directory: TemporaryDirectory, _ name: String) throws -> ExecutionRecord {
        try ExecutionRecord.read(directory.write(name, lines.joined(separator: "\n") + "\n"))
    }

    static func epoch(_ e: Int, from seq: Int, f: Int = 1, _ replicas: [Int]) -> String {
        #"{"type":"epoch","seq":\#(seq),"epoch":\#(e),"n":\#(replicas.count),"f":\#(f),"replicas":[\#(replicas.map(String.init).joined(separator: ","))]}"#
    }

    static func executed(_ seq: Int, _ requester: String, _ timestamp: Int) -> String {
        #"{"type":"executed","seq":\#(seq),"view":0,"batch":"b\#(seq)","requests":[{"requester":"\#(requester)","timestamp":\#(timestamp),"request":"q","result":"r"}]}"#
    }

    @Test("replicas that entered each epoch at one sequence number with one membership pass; a replica that disagrees is named")
    func epochsAgreeOrAreNamed() throws {
        let dir = TemporaryDirectory()
        let e1 = Self.epoch(1, from: 33, [0, 1, 2, 3, 4])
        let a = try log([e1], in: dir, "a"), b = try log([e1], in: dir, "b")
        let joiner = try log([#"{"type":"installed","seq":32,"digest":"d"}"#, e1], in: dir, "c")
        let timing = ReconfigurationTiming(change: "add replica 4 at 127.0.0.1:9", submitted: 1, answer: "ok: e1 (n = 5, f = 1) starts after sequence 32",
                                           answered: 1.05, epoch: 1, began: 1.3, firstSequence: 33, firstOperation: 1.4, longestGap: 0.2)
        let pass = EpochCheck.verdict([0: a, 1: b, 4: joiner], timings: [timing])
        #expect(pass.passed, "\(pass.detail)")
        #expect(pass.detail.contains("e1 from 33 (n = 5, f = 1; r0,r1,r2,r3,r4): entered by r0, r1, r4"), "\(pass.detail)")
        #expect(pass.detail.contains("first operation in e1 0.40 s after submitting, longest gap in service 0.20 s"), "\(pass.detail)")

        let late = try log([Self.epoch(1, from: 65, [0, 1, 2, 3, 4])], in: dir, "d")
        let fail = EpochCheck.verdict([0: a, 1: b, 2: late], timings: [])
        #expect(!fail.passed)
        #expect(fail.detail.contains("e1 was entered differently") && fail.detail.contains("from 65") && fail.detail.contains("by r2"), "\(fail.detail)")

        let never = EpochCheck.verdict([0: try log([], in: dir, "e")], timings: [timing])
        #expect(!never.passed && never.detail.contains("no replica's execution log shows e1 beginning"), "\(never.detail)")
        #expect(EpochCheck.verdict([0: try log([], in: dir, "f")], timings: []).detail.contains("no reconfiguration"))
    }

    @Test("the operator's reconfigurations are legitimate requests, as many as it submitted")
    func operatorRequests() throws {
        let dir = TemporaryDirectory()
        let record = try log([Self.executed(1, "c0", 1), Self.executed(2, "operator", 7), Self.executed(3, "operator", 8)], in: dir, "a")
        #expect(ResultsCheck.integrity([0: record], invokedPerClient: [0: 1], operatorSubmitted: 2).passed)
        let over = ResultsCheck.integrity([0: record], invokedPerClient: [0: 1], operatorSubmitted: 1)
        #expect(!over.passed && over.detail.contains("2 reconfigurations of the operator, which submitted only 1"), "\(over.detail)")
    }
}
