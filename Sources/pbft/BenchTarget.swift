import Foundation
import PBFTBench
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTTestbed
import PBFTWire

/// One replica as the launcher's status shows it.
struct BenchReplica: Sendable {
    let id: Int
    let state: String
    let pid: Int32?
    /// Nil when the replica did not answer.
    let progress: ReplicaProgress?
    let viewActive: Bool
}

/// The replicas a bench measures: ones it started with its own launcher (stopped at the
/// end), or those of a running launch, reached through that launch's control endpoint.
final class BenchCluster: Sendable {
    let membership: Membership
    let keysDirectory: String
    let runDirectory: String
    let direct: Bool
    /// Whether the bench started the replicas (and stops them).
    let started: Bool
    private let launcher: Launcher?
    private let remote: (client: ControlClient, host: String, port: Int, run: RunID, epoch: Epoch)?

    init(launcher: Launcher, membership: Membership) {
        self.launcher = launcher
        self.membership = membership
        keysDirectory = launcher.keysDirectory
        runDirectory = launcher.runDirectory
        direct = true
        started = true
        remote = nil
    }

    private init(membership: Membership, keys: String, run: String, direct: Bool, remote: (ControlClient, String, Int, RunID, Epoch)) {
        launcher = nil
        self.membership = membership
        keysDirectory = keys
        runDirectory = run
        self.direct = direct
        started = false
        self.remote = remote
    }

    /// The running launch in `runDirectory` (its launch.json, keys and cluster file).
    static func attach(runDirectory: String) async throws -> BenchCluster {
        guard case .launch(let launch) = try ControlTarget.parse(["--run", runDirectory]).resolve(launchOnly: true) else {
            throw Failure("no launch at \(runDirectory)")
        }
        let membership: Membership
        let client: ControlClient
        do {
            membership = try ClusterFile.load(launch.cluster)
            client = try ControlClient(membership: membership, operatorKey: try KeyFile.load(launch.keys + "/operator.key"))
        } catch { throw Failure("\(error)") }
        let status = try await Self.launchStatus(client, host: launch.host, port: launch.port, run: launch.runID, epoch: launch.epoch)
        if status["load_pid"] != nil {
            await client.close()
            throw Failure("the launch in \(runDirectory) runs its own load (--load): its clients use the keys the bench would use")
        }
        let cluster = BenchCluster(
            membership: membership, keys: launch.keys, run: URL(fileURLWithPath: launch.directory).standardizedFileURL.path,
            direct: (status["direct"] as? Bool) ?? false, remote: (client, launch.host, launch.port, launch.runID, launch.epoch))
        do { try await cluster.waitUntilServing(seconds: 10) } catch {
            await cluster.stop()
            throw error
        }
        Output.line("using the launch in \(cluster.runDirectory) (\(membership.n) replicas\(cluster.direct ? ", direct" : ", behind its fault proxy"))")
        return cluster
    }

    static func launchStatus(_ client: ControlClient, host: String, port: Int, run: RunID, epoch: Epoch) async throws -> [String: Any] {
        let argument = try JSONEncoder().encode(LaunchRequest(verb: .status))
        guard let reply = try await client.sendToLauncher(Array(argument), host: host, port: port, run: run, epoch: epoch, timeoutMilliseconds: 5_000) else {
            throw Failure("the launcher at \(host):\(port) did not answer")
        }
        guard reply.accepted, let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] else {
            throw Failure("the launcher at \(host):\(port) refused status: \(String(decoding: reply.body, as: UTF8.self))")
        }
        return object
    }

    /// Every replica the launch knows, by id, with its progress if it answered.
    func replicas() async throws -> [BenchReplica] {
        let object: [String: Any]
        if let launcher {
            let (accepted, body) = await launcher.handle(LaunchRequest(verb: .status))
            guard accepted, let parsed = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
                throw Failure("the launcher's status did not parse: \(body)")
            }
            object = parsed
        } else if let remote {
            object = try await Self.launchStatus(remote.client, host: remote.host, port: remote.port, run: remote.run, epoch: remote.epoch)
        } else {
            object = [:]
        }
        return Self.parse(object)
    }

    static func parse(_ object: [String: Any]) -> [BenchReplica] {
        let entries = object["replicas"] as? [[String: Any]] ?? []
        return entries.compactMap { entry in
            guard let id = (entry["id"] as? NSNumber)?.intValue else { return nil }
            let status = entry["status"] as? [String: Any]
            var progress: ReplicaProgress?
            if let status, let requests = (status["requests_executed"] as? NSNumber)?.uint64Value, let last = (status["last_executed"] as? NSNumber)?.uint64Value {
                progress = ReplicaProgress(
                    replica: id, requestsExecuted: requests, lastExecuted: last, viewChanges: (status["view_changes"] as? NSNumber)?.uint64Value ?? 0)
            }
            return BenchReplica(
                id: id, state: entry["state"] as? String ?? "?", pid: (entry["pid"] as? NSNumber)?.int32Value, progress: progress,
                viewActive: (status?["view_active"] as? Bool) ?? false)
        }.sorted { $0.id < $1.id }
    }

    /// Waits until every replica runs and answers in an active view; a replica that ended
    /// (a port in use, a bad key) fails the bench with the last line of its log.
    func waitUntilServing(seconds: Double) async throws {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        var last: [BenchReplica] = []
        while ContinuousClock.now < deadline {
            last = try await replicas()
            if let gone = last.first(where: { $0.state != "running" && $0.state != "paused" }) {
                let log = runDirectory + "/logs/replica-\(gone.id).log"
                throw Failure("replica \(gone.id) \(gone.state): \(Self.lastLine(of: log) ?? "no log") (\(log))")
            }
            if last.count == membership.n, last.allSatisfy({ $0.viewActive && $0.pid != nil }) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let silent = last.filter { !$0.viewActive }.map { "\($0.id)" }.joined(separator: ", ")
        throw Failure("replicas \(silent) did not answer in an active view within \(Int(seconds)) s; see \(runDirectory)/logs")
    }

    static func lastLine(of path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").last.map(String.init)
    }

    /// Stops what the bench started (every replica process), or lets go of the launch.
    func stop() async {
        if let launcher { await launcher.shutdown() }
        if let remote { await remote.client.close() }
    }
}
