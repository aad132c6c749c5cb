import Foundation
import PBFTTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `pbft bench` with real replica processes, run as a user runs it.
@Suite(.serialized) struct BenchTests {
    @Test("a short bench (n = 4, 2 clients, 2 s) writes throughput, ordered percentiles, a ceiling with the fraction reached, CPU per request, memory samples; no process outlives it")
    func shortBench() throws {
        let dir = TemporaryDirectory()
        let json = dir.file("out.json")
        let result = try PBFTBinary.run([
            "bench", "--replicas", "4", "--clients", "2", "--duration", "2", "--warmup", "0.5", "--crypto-iterations", "500",
            "--dir", dir.file("run"), "--json", json,
        ])
        #expect(result.status == 0, "\(result.stderr)\(result.stdout)")
        let data = try Data(contentsOf: URL(fileURLWithPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(result.stdout)")
        func number(_ section: String, _ key: String) -> Double? { ((report[section] as? [String: Any])?[key] as? NSNumber)?.doubleValue }

        let throughput = try #require(number("throughput", "requests_per_second"))
        #expect(throughput > 0)
        #expect((number("throughput", "requests") ?? 0) >= 1)
        let percentiles = try ["p50", "p90", "p99", "p999", "max"].map { try #require(number("latency_us", $0), "\($0)") }
        #expect(percentiles[0] > 0)
        #expect(percentiles == percentiles.sorted(), "\(percentiles)")
        let ceiling = try #require(number("ceiling", "requests_per_second"))
        let fraction = try #require(number("ceiling", "fraction"))
        #expect(ceiling > 0 && fraction > 0)
        #expect(abs(fraction - throughput / ceiling) < 1e-9)
        #expect(["measured", "maximum"].contains((report["ceiling"] as? [String: Any])?["batch_source"] as? String))
        #expect((number("crypto", "sign_microseconds") ?? 0) > 0 && (number("crypto", "verify_microseconds") ?? 0) > 0)
        #expect((number("cpu", "replica_microseconds_per_request") ?? 0) > 0)
        #expect((number("cpu", "client_microseconds_per_request") ?? 0) > 0)
        let configuration = try #require(report["configuration"] as? [String: Any])
        #expect(configuration["replicas"] as? Int == 4 && configuration["clients"] as? Int == 2 && configuration["direct"] as? Bool == true)
        let samples = try #require((report["memory"] as? [String: Any])?["samples"] as? [[String: Any]])
        #expect(samples.count >= 2)
        #expect((samples.last?["resident_kilobytes"] as? [Int])?.count == 4, "\(samples.last ?? [:])")
        #expect(result.stdout.contains("requests/s") && result.stdout.contains("p99.9"), "\(result.stdout)")

        // Every replica it started has ended by the time it exits.
        let starts = text(dir.file("run/events.jsonl")).split(separator: "\n").compactMap { line -> Int32? in
            guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], event["event"] as? String == "start" else { return nil }
            return (event["pid"] as? NSNumber)?.int32Value
        }
        #expect(starts.count == 4)
        #expect(eventually(within: 5) { starts.allSatisfy(isGone) }, "still running: \(starts.filter { !isGone($0) })")
    }

    @Test("a bench of a running launch (--run) writes bench.json in its run directory and leaves the launch running")
    func benchOfARunningLaunch() throws {
        let launch = try LaunchHarness(arguments: ["--direct"])
        let pids = try launch.status().replicas.compactMap(\.pid)
        let result = try PBFTBinary.run(["bench", "--run", launch.run, "--clients", "2", "--duration", "1", "--warmup", "0.5", "--crypto-iterations", "300"])
        #expect(result.status == 0, "\(result.stderr)\(result.stdout)")
        let data = try Data(contentsOf: URL(fileURLWithPath: launch.run + "/bench.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(((report["throughput"] as? [String: Any])?["requests_per_second"] as? Double ?? 0) > 0)
        let configuration = try #require(report["configuration"] as? [String: Any])
        #expect(configuration["direct"] as? Bool == true)
        #expect(configuration["batch_size_max"] == nil && configuration["sync"] == nil, "the launch chose those")
        #expect(((report["cpu"] as? [String: Any])?["replica_seconds_each"] as? [Double])?.count == 4)
        #expect(launch.launcher.isRunning)
        let after = try launch.status().replicas
        #expect(after.allSatisfy { $0.state == "running" && $0.viewActive }, "\(after)")
        #expect(after.compactMap(\.pid) == pids)
    }

    @Test("a mistake gets one line and a non-zero exit", arguments: [
        (["--clients", "0"], "--clients 0"),
        (["--replicas", "3"], "at least 4 replicas"),
        (["--payload=-1"], "--payload -1"),
        (["--run", "/nonexistent/run"], "no launch at /nonexistent/run"),
        (["--run", "/tmp", "--batch", "8"], "a launch (--run) has its own"),
    ])
    func mistakes(_ arguments: [String], _ message: String) throws {
        let result = try PBFTBinary.run(["bench"] + arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test("a port in use gets one line naming it, and nothing starts")
    func portInUse() throws {
        let dir = TemporaryDirectory()
        let base = try freeUDPPortRange(count: 4)
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(base + 2).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        try #require(bound)
        let result = try PBFTBinary.run(["bench", "--base-port", "\(base)", "--dir", dir.file("run"), "--duration", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("UDP port \(base + 2) on 127.0.0.1 (replica 2) is in use"), "\(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("run/events.jsonl")))
    }
}
