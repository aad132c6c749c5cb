import ArgumentParser
import PBFTCluster
import PBFTCore
import PBFTKeyValue
import PBFTRuntime
import PBFTWire

#if canImport(Glibc)
import Glibc
#endif

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Run key-value operations against a cluster, or a closed-loop load.",
        discussion: """
            pbft client --cluster keys/cluster.toml --key keys/client-0.key put color blue
            pbft client --cluster keys/cluster.toml --key keys/client-0.key get color
            pbft client --cluster keys/cluster.toml --keys keys --clients 4 --duration 10
            """
    )

    @Option(help: "The cluster file.") var cluster: String
    @Option(help: "A client's secret key file (single operations).") var key: String?
    @Option(help: "Directory with client-J.key files (load mode).") var keys: String?
    @Option(help: "Load mode: this many closed-loop clients.") var clients: Int?
    @Option(help: "Load mode: seconds to run.") var duration: Double = 10
    @Option(help: "Load mode: open loop at this many operations per second in total (default: closed loop).") var rate: Double?
    @Option(help: "Milliseconds to wait for f+1 matching replies per operation.") var timeoutMs: Int = 30_000
    @Option(help: .hidden) var parentPid: Int32?
    @Argument(help: "put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED|- NEW") var words: [String] = []

    func run() async throws {
        if let parentPid, !ParentWatch.dieWithParent(parentPid) { throw ExitCode(1) }
        let membership = try ClusterFile.load(cluster)
        if let clients {
            try await load(membership, clients: clients)
            return
        }
        guard let key else { throw ValidationError("give --key for an operation, or --keys and --clients for a load") }
        let operation = try parse(words)
        let node = try ClientNode(membership: membership, key: try KeyFile.load(key))
        try await node.start()
        let result: [UInt8]
        do {
            result = try await node.submit(operation.encoded(), timeoutMilliseconds: timeoutMs)
        } catch {
            await node.close()
            throw error
        }
        await node.close()
        Output.line(describe(KeyValueResult.decode(result)))
    }

    func parse(_ words: [String]) throws -> KeyValueOperation {
        let bytes = { (s: String) in Array(s.utf8) }
        switch words.first {
        case "put" where words.count == 3: return .put(key: bytes(words[1]), value: bytes(words[2]))
        case "get" where words.count == 2: return .get(key: bytes(words[1]))
        case "delete" where words.count == 2: return .delete(key: bytes(words[1]))
        case "cas" where words.count == 4:
            return .compareAndSet(key: bytes(words[1]), expected: words[2] == "-" ? nil : bytes(words[2]), new: bytes(words[3]))
        default:
            throw ValidationError("expected put KEY VALUE, get KEY, delete KEY or cas KEY EXPECTED|- NEW; got '\(words.joined(separator: " "))'")
        }
    }

    func describe(_ result: KeyValueResult?) -> String {
        switch result {
        case .ok: "ok"
        case .value(let v): String(decoding: v, as: UTF8.self)
        case .notFound: "(not found)"
        case .mismatch(nil): "mismatch: the key is absent"
        case .mismatch(let current?): "mismatch: the value is \(String(decoding: current, as: UTF8.self))"
        case .malformed: "error: the replicas could not decode the operation"
        case nil: "error: an undecodable result"
        }
    }

    func load(_ membership: PBFTCore.Membership, clients: Int) async throws {
        guard let keys else { throw ValidationError("load mode needs --keys DIR with client-J.key files") }
        guard clients >= 1, clients <= membership.clients.count else {
            throw ValidationError("--clients \(clients): the cluster file lists \(membership.clients.count) clients")
        }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        if let rate, !(rate > 0) { throw ValidationError("--rate \(rate): must be positive") }
        // Open loop: each client has a schedule; latency counts from the scheduled time, so a
        // slow cluster is not hidden by clients that wait (no coordinated omission).
        let interval: Duration? = rate.map { .nanoseconds(Int64(Double(clients) / $0 * 1e9)) }
        // The clients share this process's threads, sockets and checks of reply roots, as the
        // bench's do (docs/performance.md, Method).
        let threads = ClientThreads()
        let nodes: [ClientNode]
        do {
            nodes = try (0..<clients).map { j in
                try ClientNode(membership: membership, key: try KeyFile.load("\(keys)/client-\(membership.clients[j].id.rawValue).key"), sharing: threads)
            }
            for node in nodes { try await node.start() }
        } catch {
            await threads.shutdown()
            throw error
        }
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .milliseconds(Int64(duration * 1000)))
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for (j, node) in nodes.enumerated() {
                group.addTask {
                    var samples: [Double] = []
                    var i = 0
                    let begin = clock.now
                    while clock.now < end {
                        let op = KeyValueOperation.put(key: Array("k\(j)-\(i % 64)".utf8), value: Array("v\(i)".utf8))
                        var start = clock.now
                        if let interval {
                            let scheduled = begin.advanced(by: interval * i)
                            if scheduled > clock.now { try await Task.sleep(until: scheduled, clock: clock) }
                            guard scheduled < end else { break }
                            start = scheduled
                        }
                        _ = try await node.submit(op.encoded(), timeoutMilliseconds: timeoutMs)
                        let elapsed = clock.now - start
                        samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                        i += 1
                    }
                    return samples
                }
            }
            var all: [Double] = []
            for try await samples in group { all += samples }
            return all.sorted()
        }
        for node in nodes { await node.close() }
        await threads.shutdown()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let mode = rate.map { String(format: "open loop at %.0f/s", $0) } ?? "closed loop"
        Output.line(String(format: "%d operations in %.1f s from %d clients (%@): %.0f ops/s; latency ms p50 %.2f p90 %.2f p99 %.2f max %.2f",
                           latencies.count, duration, clients, mode, Double(latencies.count) / duration,
                           percentile(0.5), percentile(0.9), percentile(0.99), latencies.last ?? 0))
    }
}
