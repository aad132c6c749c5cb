import Foundation
import PBFTBench
import Testing

@Suite("bench.json")
struct ReportTests {
    func report() -> BenchReport {
        var histogram = LatencyHistogram()
        for ms in 1...1_000 { histogram.record(nanoseconds: UInt64(ms) * 1_000_000) }
        let model = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 4, batchSize: 10)
        let atMax = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 4, batchSize: 64)
        let samples = [MemorySample(seconds: 1, requests: 100_000, residentKilobytes: [1_000, nil]),
                       MemorySample(seconds: 2, requests: 200_000, residentKilobytes: [1_050, 2_000])]
        return BenchReport(
            started: "2026-01-01T00:00:00Z",
            configuration: .init(replicas: 4, f: 1, clients: 16, batchSizeMax: 64, payloadBytes: 64, warmupSeconds: 2, durationSeconds: 10,
                                 requestsTarget: nil, direct: true, sync: true, runDirectory: "/tmp/run", cores: 2),
            crypto: .init(CryptoCost(signMicroseconds: 16.2, verifyMicroseconds: 47.8, signRangeMicroseconds: 16...17, verifyRangeMicroseconds: 47...49,
                                     iterations: 4_000, messageBytes: 64)),
            throughput: .init(requests: 20_180, seconds: 10, requestsPerSecond: 2_018),
            latency: .init(histogram),
            protocol: .init(effectiveBatchSize: 10, viewChanges: 0),
            cpu: .init(replicaSeconds: 15, replicaSecondsEach: [4, 3.5, 3.5, 4], clientSeconds: 3, replicaMicrosecondsPerRequest: 743, clientMicrosecondsPerRequest: 149),
            ceiling: .init(model, source: "measured", throughput: 2_018, atBatchMax: atMax),
            memory: .init(samples: samples, growth: MemoryGrowth.between(samples)))
    }

    @Test("the JSON has snake_case keys, the percentiles in microseconds and the fraction of the ceiling; it decodes back")
    func json() throws {
        let data = try report().json()
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let latency = try #require(object["latency_us"] as? [String: Any])
        // Each within 1/2048 of the exact nearest-rank value (the histogram's precision).
        for (key, exact) in [("p50", 500_000.0), ("p90", 900_000), ("p99", 990_000), ("p999", 999_000)] {
            #expect((latency[key] as? Double).map { abs($0 - exact) <= exact / 2048 } == true, "\(key): \(latency[key] ?? "none")")
        }
        #expect(latency["max"] as? Double == 1_000_000)
        let ceiling = try #require(object["ceiling"] as? [String: Any])
        #expect((ceiling["fraction"] as? Double).map { abs($0 - 2_018 / 4_036.45) < 1e-3 } == true)
        #expect(ceiling["batch_source"] as? String == "measured")
        #expect(ceiling["signs_per_request"] as? Double == 5.8)
        #expect((object["throughput"] as? [String: Any])?["requests_per_second"] as? Double == 2_018)
        #expect((object["cpu"] as? [String: Any])?["replica_microseconds_per_request"] as? Double == 743)
        let memory = try #require(object["memory"] as? [String: Any])
        let samples = try #require(memory["samples"] as? [[String: Any]])
        #expect((samples[0]["resident_kilobytes"] as? [Any])?.last is NSNull)
        #expect(((memory["growth"] as? [String: Any])?["max_percent"] as? Double) == 5)
        let back = try BenchReport.decode(data)
        #expect(abs(back.latencyUs.p99 - 990_000) < 500 && back.configuration.durationSeconds == 10 && back.configuration.requestsTarget == nil)
    }

    @Test("with the model of what this build signs, the JSON and the summary give its ceiling and fraction too")
    func asSigned() throws {
        var r = report()
        var rooted = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 4, batchSize: 10)
        rooted.replies = .perBatch
        rooted.clientsShareRoots = true
        r.cpu.clientVerificationsPerRequest = 0.25
        r.ceiling = .init(CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 4, batchSize: 10),
                          source: "measured", throughput: 2_018, atBatchMax: nil, asSigned: rooted)
        let object = try #require(try JSONSerialization.jsonObject(with: r.json()) as? [String: Any])
        let signed = try #require((object["ceiling"] as? [String: Any])?["as_signed"] as? [String: Any])
        // 1 + 12/10 signatures per request instead of 5 + 8/10.
        #expect((signed["signs_per_request"] as? Double).map { abs($0 - 2.2) < 1e-9 } == true)
        #expect((signed["fraction"] as? Double).map { abs($0 - 2_018 / rooted.requestsPerSecond) < 1e-9 } == true)
        let lines = r.summaryLines
        #expect(lines.contains { $0.contains(String(format: "%.0f requests/s for what this build signs", rooted.requestsPerSecond)) })
        // Replica crypto as signed, at b = 10: 16.2 (12/10) + 47.8 (4 + 24/10) = 325.36 µs, 44% of 743 µs.
        #expect(lines.contains { $0.contains("signatures 44% of it") })
        // Client crypto when they share roots, at b = 10: 16.2 + 47.8 (2/10) = 25.76 µs, 17% of 149 µs.
        #expect(lines.contains { $0.contains("149 µs in the clients") && $0.contains("signatures 17%; 0.25 signature checks per request)") })
        #expect((signed["client_microseconds_per_request"] as? Double).map { abs($0 - 25.76) < 1e-9 } == true)
    }

    @Test("the printed summary names throughput, percentiles, CPU per request, the ceiling with its batch, and the growth")
    func summary() {
        let lines = report().summaryLines
        #expect(lines.contains { $0.hasPrefix("throughput 2018 requests/s") })
        #expect(lines.contains { $0.contains("p50 500.04") && $0.contains("p99.9 999.03") && $0.contains("max 1000.00") })
        #expect(lines.contains { $0.contains("743 µs per request in the replicas") })
        // Replica crypto at b = 10: 16.2 (4 + 8/10) + 47.8 (4 + 24/10) = 383.68 µs, 52% of 743 µs.
        #expect(lines.contains { $0.contains("signatures 52% of it") && $0.contains("149 µs in the clients") })
        #expect(lines.contains { $0.contains("batch 10.00 requests per sequence number, 0 view changes") })
        #expect(lines.contains { $0.contains("4036 requests/s") && $0.contains("measured batch 10.0") && $0.contains("this run: 50.0%") })
        #expect(lines.contains { $0.contains("+5.0%") && $0.contains("from 100000 to 200000 requests") })
    }
}
