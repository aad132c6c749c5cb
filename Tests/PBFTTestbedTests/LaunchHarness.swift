import Foundation
import PBFTCluster
import PBFTCore
import PBFTKeyValue
import PBFTRuntime
import PBFTTestSupport
import PBFTWire

/// A `pbft launch` process with its run directory in a temporary directory, driven the way
/// a user drives it: `pbft ctl --run DIR`, clients on the public cluster file, and the
/// files in the run directory. The launcher is killed when the harness goes away, and the
/// kernel takes its children with it.
final class LaunchHarness: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let n: Int
    let launcher: Process
    var run: String { directory.file("run") }
    var output: String { directory.file("launch.out") }

    init(replicas: Int = 4, arguments: [String] = [], settings: [String] = LaunchHarness.fastSettings) throws {
        n = replicas
        let port = try freeUDPPortRange(count: replicas)
        launcher = try PBFTBinary.start(
            ["launch", "--replicas", "\(replicas)", "--dir", directory.file("run"), "--base-port", "\(port)"] + settings + arguments,
            logPath: directory.file("launch.out"))
        guard eventually(within: 30, { FileManager.default.fileExists(atPath: directory.file("run/launch.json")) }) else {
            throw TestFailure("the launcher did not start: \(text(output))")
        }
        guard eventually(within: 30, { (try? self.status())?.replicas.allSatisfy { $0.view != nil } ?? false }) else {
            throw TestFailure("the replicas did not all answer status: \(text(output))")
        }
    }

    /// Fast protocol clocks for tests: 5 ms ticks, a 0.5 s view-change timeout.
    static let fastSettings = ["--tick-ms", "5", "--view-change-timeout-ticks", "100", "--checkpoint-interval", "32", "--log-window", "64"]

    deinit {
        if launcher.isRunning { kill(launcher.processIdentifier, SIGKILL) }
    }

    /// `pbft ctl ARGUMENTS --run RUN`.
    @discardableResult
    func ctl(_ arguments: [String]) throws -> PBFTBinary.Result {
        try PBFTBinary.run(["ctl"] + arguments + ["--run", run])
    }

    /// Runs a ctl command that must succeed.
    func must(_ arguments: [String]) throws {
        let result = try ctl(arguments)
        guard result.status == 0 else { throw TestFailure("pbft ctl \(arguments.joined(separator: " ")) failed: \(result.stderr)\(result.stdout)") }
    }

    struct ReplicaStatus {
        let id: Int
        let state: String
        let pid: Int32?
        let view: Int?
        let viewActive: Bool
        let primary: Int?
        let lastExecuted: Int?
        let badSignatures: Int
        let epoch: Int?
        let joining: Bool
    }

    struct Status {
        let replicas: [ReplicaStatus]
        let primary: Int?
        let faults: [String]
        let rejectedControls: Int
        let raw: [String: Any]
    }

    func status() throws -> Status {
        let result = try ctl(["status", "--json"])
        guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
              let replicas = object["replicas"] as? [[String: Any]]
        else { throw TestFailure("status failed: \(result.stderr)") }
        return Status(
            replicas: replicas.map { r in
                let status = r["status"] as? [String: Any]
                return ReplicaStatus(
                    id: r["id"] as! Int, state: r["state"] as! String, pid: (r["pid"] as? Int).map { Int32($0) },
                    view: status?["view"] as? Int, viewActive: status?["view_active"] as? Bool ?? false, primary: status?["primary"] as? Int,
                    lastExecuted: status?["last_executed"] as? Int,
                    badSignatures: (status?["rejected"] as? [String: Int])?["bad_signature"] ?? 0,
                    epoch: status?["epoch"] as? Int, joining: status?["joining"] as? Bool ?? false)
            },
            primary: object["primary"] as? Int, faults: object["faults"] as? [String] ?? [], rejectedControls: object["rejected_controls"] as? Int ?? 0,
            raw: object)
    }

    var membership: Membership { get throws { try ClusterFile.load(run + "/keys/cluster.toml") } }

    func clients(_ count: Int) async throws -> [ClientNode] {
        let membership = try membership
        var nodes: [ClientNode] = []
        for j in 0..<count {
            let node = try ClientNode(membership: membership, key: try KeyFile.load(run + "/keys/client-\(j).key"), tickMilliseconds: 5, retransmitTicks: 60)
            try await node.start(host: "127.0.0.1")
            nodes.append(node)
        }
        return nodes
    }

    /// `count` puts from each client, closed loop; every one must complete within `timeout` ms.
    /// On failure it prints what the replicas report and their last log lines, then rethrows.
    func load(_ clients: [ClientNode], operations count: Int, tag: String, timeout: Int = 30_000) async throws -> Int {
        do {
            return try await closedLoop(clients, operations: count, tag: tag, timeout: timeout)
        } catch {
            print("launch harness: load '\(tag)' failed: \(error)")
            if let status = try? ctl(["status"]) { print(status.stdout) }
            for i in 0..<n { print("replica \(i):\n" + log(i).split(separator: "\n").suffix(8).joined(separator: "\n")) }
            throw error
        }
    }

    private func closedLoop(_ clients: [ClientNode], operations count: Int, tag: String, timeout: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for (j, node) in clients.enumerated() {
                group.addTask {
                    for i in 0..<count {
                        let key = Array("\(tag)-\(j)-\(i % 8)".utf8)
                        let result = try await node.submit(KeyValueOperation.put(key: key, value: Array("\(i)".utf8)).encoded(), timeoutMilliseconds: timeout)
                        guard KeyValueResult.decode(result) == .ok else { throw TestFailure("put returned \(String(describing: KeyValueResult.decode(result)))") }
                    }
                    return count
                }
            }
            var done = 0
            for try await n in group { done += n }
            return done
        }
    }

    /// Replica `id` as status shows it, if the launch started it.
    func replica(_ id: Int) throws -> ReplicaStatus? { try status().replicas.first { $0.id == id } }

    func executionLog(_ i: Int, twin: Bool = false) -> String { run + "/data/r\(i)\(twin ? "-twin" : "")/execution.jsonl" }
    func lastExecuted(_ i: Int) -> UInt64 { ExecutionLogFile.lastExecuted(at: executionLog(i)) }
    func log(_ i: Int) -> String { text(run + "/logs/replica-\(i).log") }
    var events: [[String: Any]] {
        text(run + "/events.jsonl").split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The replicas in `ids` executed the same batch at every sequence number they share.
    func agree(_ ids: [Int]) throws {
        let logs = try ids.map { try ExecutionLogFile.batches(at: executionLog($0)) }
        for (index, log) in logs.enumerated().dropFirst() {
            let differ = ExecutionLogFile.disagreements(logs[0], log)
            guard differ.isEmpty else { throw TestFailure("replicas \(ids[0]) and \(ids[index]) disagree at \(differ.prefix(5))") }
        }
    }

    /// Stops the launcher with SIGTERM and waits for it.
    func terminate() {
        guard launcher.isRunning else { return }
        kill(launcher.processIdentifier, SIGTERM)
        launcher.waitUntilExit()
    }
}

func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// Whether a process is gone (a zombie nobody reaped counts as gone).
func isGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 { return errno == ESRCH }
    let stat = text("/proc/\(pid)/stat")
    guard let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}
