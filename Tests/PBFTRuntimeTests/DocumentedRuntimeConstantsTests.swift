import PBFTRuntime
import PBFTTestSupport
import PBFTWire
import Testing

/// What docs/transport.md ("In the processes") and docs/runtime.md say the replica process
/// does with datagrams, held to the code (issue 19: the pages said 3 s where replicas keep
/// an incomplete frame 30 s).
@Suite struct DocumentedRuntimeConstantsTests {
    let options = ReplicaOptions(clusterPath: "", id: ReplicaID(0), keyPath: "", dataDirectory: "")

    @Test func replicaReassemblyIsWhatTheTransportPageSays() throws {
        let page = try Document("docs/transport.md")
        let table = try #require(page.table(under: "In the processes"))
        let row = try #require(table.rows.first { $0[0].hasPrefix("replica") })
        func cell(_ name: String) throws -> String { try #require(table.column(name).map { row[$0] }, "column \(name)") }

        let limits = options.reassemblyLimits(replicasMax: WireLimits.default.replicasMax)
        #expect(DocumentNumber.exact(try cell("`sendersMax`")) == limits.sendersMax)
        #expect(DocumentNumber.integers(in: try cell("`timeoutTicks`")) == [Int(ReassemblyLimits.default.timeoutTicks), ReplicaOptions.fragmentTimeoutMilliseconds])
        #expect(DocumentNumber.integers(in: try cell("tick")).last == options.tickMilliseconds, "the default tick")
        #expect(limits.timeoutTicks == UInt64(ReplicaOptions.fragmentTimeoutMilliseconds / options.tickMilliseconds))
        let kept = DocumentNumber.integers(in: try cell("incomplete frame kept"))
        #expect(kept.first.map { $0 * 1_000 } == ReplicaOptions.fragmentTimeoutMilliseconds, "seconds an incomplete frame is kept")
        #expect(page.text.contains("A replica keeps an incomplete frame \(ReplicaOptions.fragmentTimeoutMilliseconds / 1_000) s"))

        // "30 s (for ticks up to 100 ms; 300 ticks above)".
        #expect(kept.dropFirst().first.map { ReplicaOptions.fragmentTimeoutMilliseconds / $0 } == Int(ReassemblyLimits.default.timeoutTicks))
        var slow = options
        slow.tickMilliseconds = 1_000
        #expect(slow.reassemblyLimits(replicasMax: 4).timeoutTicks == ReassemblyLimits.default.timeoutTicks)
        slow.tickMilliseconds = 100
        #expect(slow.reassemblyLimits(replicasMax: 4).timeoutTicks * 100 == UInt64(ReplicaOptions.fragmentTimeoutMilliseconds))

        let runtime = try Document("docs/runtime.md")
        #expect(runtime.text.contains("an incomplete frame kept \(ReplicaOptions.fragmentTimeoutMilliseconds / 1_000) s"))
    }

    @Test func executionLogDigestsAreAllDefined() throws {
        let table = try #require(try Document("docs/runtime.md").table(under: "The execution log, `execution.jsonl`"))
        #expect(table.cells("field") == ["`batch`", "`request`", "`result`", "`digest`"])
    }
}
