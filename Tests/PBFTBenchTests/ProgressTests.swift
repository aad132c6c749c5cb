import Foundation
import PBFTBench
import Testing

@Suite("Bench measurements")
struct ProgressTests {
    @Test("utime + stime from /proc/PID/stat, with a command name holding spaces and parentheses")
    func statParsing() {
        let line = "4242 (pbft (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 731 269 0 0 20 0 5 0 123 456789 1234 18446744073709551615"
        #expect(ProcFS.cpuTicks(stat: line) == 1_000)
        #expect(ProcFS.cpuTicks(stat: "4242 (pbft) S 1 2") == nil)
        #expect(ProcFS.cpuTicks(stat: "no parenthesis") == nil)
        #expect(ProcFS.cpuTicks(stat: "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 2 0") == nil)
    }

    @Test("VmRSS in kB from /proc/PID/status; none for a zombie")
    func statusParsing() {
        let text = "Name:\tpbft\nVmPeak:\t  100 kB\nVmRSS:\t   52340 kB\nRssAnon:\t 1 kB\n"
        #expect(ProcFS.residentKilobytes(status: text) == 52_340)
        #expect(ProcFS.residentKilobytes(status: "Name:\tpbft\nState:\tZ (zombie)\n") == nil)
        #expect(ProcFS.residentKilobytes(status: "VmRSS:\t 12 MB\n") == nil)
    }

    @Test("this process's own /proc entries read: CPU time and resident memory are positive")
    func ownProcess() {
        let pid = ProcessInfo.processInfo.processIdentifier
        #expect(ProcFS.residentKilobytes(pid: pid).map { $0 > 0 } == true)
        #expect(ProcFS.cpuSeconds(pid: pid).map { $0 >= 0 } == true)
        #expect(ProcFS.cpuSeconds(pid: -5) == nil)
        #expect(OwnCPU.coresOnline() >= 1)
    }

    @Test("the effective batch is requests over sequence numbers, summed over replicas in both reports; a restarted replica is left out")
    func effectiveBatch() {
        let start = [ReplicaProgress(replica: 0, requestsExecuted: 100, lastExecuted: 10), ReplicaProgress(replica: 1, requestsExecuted: 90, lastExecuted: 9),
                     ReplicaProgress(replica: 2, requestsExecuted: 500, lastExecuted: 50)]
        let end = [ReplicaProgress(replica: 0, requestsExecuted: 400, lastExecuted: 60), ReplicaProgress(replica: 1, requestsExecuted: 390, lastExecuted: 59),
                   ReplicaProgress(replica: 2, requestsExecuted: 3, lastExecuted: 1), ReplicaProgress(replica: 3, requestsExecuted: 800, lastExecuted: 8)]
        #expect(ReplicaProgress.effectiveBatchSize(from: start, to: end) == 6)
        #expect(ReplicaProgress.effectiveBatchSize(from: start, to: start) == nil)
        #expect(ReplicaProgress.effectiveBatchSize(from: [], to: end) == nil)
    }

    @Test("view changes in a window: the most any replica present at both ends started")
    func viewChanges() {
        let start = [ReplicaProgress(replica: 0, requestsExecuted: 0, lastExecuted: 0, viewChanges: 1),
                     ReplicaProgress(replica: 1, requestsExecuted: 0, lastExecuted: 0, viewChanges: 5)]
        let end = [ReplicaProgress(replica: 0, requestsExecuted: 0, lastExecuted: 0, viewChanges: 3),
                   ReplicaProgress(replica: 1, requestsExecuted: 0, lastExecuted: 0, viewChanges: 0),
                   ReplicaProgress(replica: 2, requestsExecuted: 0, lastExecuted: 0, viewChanges: 9)]
        #expect(ReplicaProgress.viewChanges(from: start, to: end) == 2)
        #expect(ReplicaProgress.viewChanges(from: [], to: end) == 0)
    }

    func sample(_ requests: Int, _ kilobytes: [Int?]) -> MemorySample {
        MemorySample(seconds: Double(requests) / 1_000, requests: requests, residentKilobytes: kilobytes)
    }

    @Test("memory growth runs from the sample nearest 100,000 requests to the last, per replica, the largest reported")
    func memoryGrowth() throws {
        let samples = [sample(20_000, [100, 100]), sample(98_000, [200, 400]), sample(103_000, [210, 420]), sample(1_000_000, [220, 500])]
        let growth = try #require(MemoryGrowth.between(samples))
        #expect(growth.fromRequests == 98_000 && growth.toRequests == 1_000_000)
        #expect(growth.percent == [10, 25])
        #expect(growth.maxPercent == 25)
        // A missing sample does not count.
        let gone = try #require(MemoryGrowth.between([sample(100_000, [100, nil]), sample(200_000, [105, 300])]))
        #expect(gone.percent == [5, nil] && gone.maxPercent == 5)
    }

    @Test("no growth before the run got to 100,000 requests, or when the nearest sample is the last")
    func noMemoryGrowth() {
        #expect(MemoryGrowth.between([]) == nil)
        #expect(MemoryGrowth.between([sample(50_000, [1]), sample(99_999, [2])]) == nil)
        #expect(MemoryGrowth.between([sample(10_000, [1]), sample(100_000, [2])]) == nil)
        #expect(MemoryGrowth.between([sample(10_000, [1]), sample(150_000, [2])]) == nil)
    }
}
