import ArgumentParser
import Foundation
import PBFTByzantine
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTTestbed
import PBFTWire

#if canImport(Glibc)
import Glibc
#endif

struct Ctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Operator-signed control of a running launch (or of replicas directly).",
        discussion: """
            With a launch (pbft launch), commands go to its launcher: --run DIR, or runs/latest.
            Without one, status, stop, byzantine and the reconfigurations (add-replica,
            remove-replica, replace-replica, set-f) go straight to the replicas of --cluster.
            Every command is signed with the operator's key. See docs/faults.md.
            """,
        subcommands: [
            CtlStatus.self, CtlKill.self, CtlStop.self, CtlPause.self, CtlResume.self, CtlRestart.self,
            CtlByzantine.self, CtlTwin.self,
            CtlDrop.self, CtlDelay.self, CtlDuplicate.self, CtlReorder.self, CtlCorrupt.self, CtlPartition.self, CtlHeal.self,
            CtlAddReplica.self, CtlRemoveReplica.self, CtlReplaceReplica.self, CtlSetF.self,
        ]
    )
}

/// Where a ctl command goes: a launch's launcher, or the replicas of a cluster file.
struct ControlTarget: ParsableArguments {
    @Option(help: "A launch's run directory (default: runs/latest, when it holds launch.json).") var run: String?
    @Option(help: "Talk to the replicas of this cluster file directly, without a launcher.") var cluster: String?
    @Option(help: "The operator's secret key file (default: the launch's keys/operator.key, or keys/operator.key).") var operatorKey: String?
    @Option(help: "Milliseconds to wait for replies.") var timeoutMs: Int = 5_000

    enum Resolved {
        case launch(Launch)
        case direct(cluster: String, operatorKey: String)
    }

    /// What launch.json says about a running launch.
    struct Launch {
        let directory: String
        let host: String
        let port: Int
        let cluster: String
        let keys: String
        let pid: Int32
        /// Commands for its launcher name this run and are signed for its epoch.
        let runID: RunID
        let epoch: Epoch
    }

    func resolve(launchOnly: Bool) throws -> Resolved {
        if let cluster {
            guard run == nil else { throw Failure("give --run (a launch) or --cluster (replicas directly), not both") }
            guard !launchOnly else { throw Failure("this command needs a launch: pass --run DIR (see pbft launch), not --cluster") }
            return .direct(cluster: cluster, operatorKey: operatorKey ?? "keys/operator.key")
        }
        let directory = run ?? "runs/latest"
        let file = directory + "/launch.json"
        guard FileManager.default.fileExists(atPath: file) else {
            if run == nil, !launchOnly, FileManager.default.fileExists(atPath: "keys/cluster.toml") {
                return .direct(cluster: "keys/cluster.toml", operatorKey: operatorKey ?? "keys/operator.key")
            }
            throw Failure("no launch at \(directory) (no launch.json): start one with 'pbft launch', or pass --run DIR")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any],
              let control = object["control"] as? [String: Any], let host = control["host"] as? String, let port = control["port"] as? Int,
              let cluster = object["cluster"] as? String, let keys = object["keys"] as? String, let pid = object["pid"] as? Int,
              let run = (object["run_id"] as? String).flatMap({ RunID(hex: $0) }), let epoch = object["epoch"] as? Int, epoch >= 0
        else { throw Failure("\(file): not a launch file written by this pbft launch (it needs control, cluster, keys, pid, run_id and epoch)") }
        guard kill(Int32(pid), 0) == 0 || errno == EPERM else {
            throw Failure("the launch in \(directory) is not running (launcher pid \(pid) is gone)")
        }
        return .launch(Launch(directory: directory, host: host, port: port, cluster: cluster, keys: keys, pid: Int32(pid), runID: run, epoch: Epoch(UInt64(epoch))))
    }

    /// Sends `request` to the launcher; returns its signed reply's verdict and body. A
    /// reconfiguration may take the launcher a while (starting a replica, waiting for an epoch).
    func send(_ request: LaunchRequest, to launch: Launch) async throws -> (accepted: Bool, body: String) {
        let membership = try ClusterFile.load(launch.cluster)
        let client = try ControlClient(membership: membership, operatorKey: try KeyFile.load(operatorKey ?? launch.keys + "/operator.key"))
        let argument = try JSONEncoder().encode(request)
        let timeout = request.verb.isReconfiguration ? max(timeoutMs, 90_000) : timeoutMs
        let answer = try await client.sendToLauncher(Array(argument), host: launch.host, port: launch.port, run: launch.runID, epoch: launch.epoch, timeoutMilliseconds: timeout)
        await client.close()
        guard let reply = answer else {
            throw Failure("the launcher at \(launch.host):\(launch.port) did not answer within \(timeout) ms" + Self.silentRefusals)
        }
        return (reply.accepted, String(decoding: reply.body, as: UTF8.self))
    }

    /// Sends a launcher command and prints its answer; a refusal exits with status 1.
    func perform(_ request: LaunchRequest) async throws {
        guard case .launch(let launch) = try resolve(launchOnly: true) else { return }
        let (accepted, body) = try await send(request, to: launch)
        if accepted {
            Output.line(body)
        } else {
            printError("refused: \(body)")
            throw ExitCode(1)
        }
    }

    /// A direct command to one replica (no launcher): prints its answer.
    func direct(_ command: Control.Command, argument: [UInt8] = [], replica: String, cluster: String, operatorKey: String) async throws {
        guard let raw = UInt32(replica) else { throw Failure("'\(replica)': without a launch, name a replica by its id") }
        let membership = try ClusterFile.load(cluster)
        guard membership.replica(ReplicaID(raw)) != nil else { throw Failure("replica \(raw) is not in \(cluster)") }
        let client = try ControlClient(membership: membership, operatorKey: try KeyFile.load(operatorKey))
        let replies = try await client.send(command, argument: argument, to: [ReplicaID(raw)], timeoutMilliseconds: timeoutMs)
        await client.close()
        guard let reply = replies[ReplicaID(raw)] else {
            printError("r\(raw): no reply within \(timeoutMs) ms" + Self.silentRefusals)
            throw ExitCode(1)
        }
        Output.line("r\(raw): \(String(decoding: reply.body, as: UTF8.self))")
        if !reply.accepted { throw ExitCode(1) }
    }
}

extension ControlTarget {
    /// What a missing reply may mean besides a target that is down: refusals that are not
    /// answered (docs/runtime.md, *Control security*).
    static let silentRefusals = " (it may be down, or it refused the command without answering: a timestamp not newer than the last command it accepted, more than 10 s from its clock, or from before it started; check the clocks, and the `control` counters in its status)"
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data(("pbft: " + text + "\n").utf8))
}

struct CtlStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Processes, pids, views, progress and the faults in force.")

    @OptionGroup var target: ControlTarget
    @Option(name: .customLong("replica"), help: "Only this replica (repeatable; direct mode).") var only: [UInt32] = []
    @Flag(help: "Print raw JSON.") var json = false

    func run() async throws {
        switch try target.resolve(launchOnly: false) {
        case .launch(let launch):
            let (accepted, body) = try await target.send(LaunchRequest(verb: .status), to: launch)
            guard accepted else {
                printError("refused: \(body)")
                throw ExitCode(1)
            }
            if json { return Output.line(body) }
            try printLaunchStatus(body)
        case .direct(let cluster, let operatorKey):
            try await directStatus(cluster: cluster, operatorKey: operatorKey)
        }
    }

    func printLaunchStatus(_ body: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let replicas = object["replicas"] as? [[String: Any]]
        else { throw Failure("the launcher's status is not what this pbft expects") }
        Output.line(pad(["replica", "pid", "process", "epoch", "view", "primary", "executed", "stable h", "starts", "byzantine", "twin"]))
        for r in replicas {
            let status = r["status"] as? [String: Any]
            let view = status.map { "\($0["view"] ?? "?")" + (($0["view_active"] as? Bool) == false ? "*" : "") + (($0["recovering"] as? Bool) == true ? " (rec)" : "") } ?? "-"
            let epoch = status.map { "e\($0["epoch"] ?? "?")" + (($0["joining"] as? Bool) == true ? " (join)" : "") + (($0["retired"] as? Bool) == true ? " (ret)" : "") } ?? "-"
            Output.line(pad([
                "r\(r["id"] ?? "?")", (r["pid"] as? Int).map { "\($0)" } ?? "-", "\(r["state"] ?? "?")", epoch, view,
                status.map { "r\($0["primary"] ?? "?")" } ?? "-", status.map { "\($0["last_executed"] ?? "?")" } ?? "-",
                status.map { "\($0["low_water_mark"] ?? "?")" } ?? "-", "\(r["starts"] ?? 0)", "\(r["byzantine"] ?? "off")",
                (r["twin_pid"] as? Int).map { "pid \($0)" } ?? "-",
            ]))
        }
        if let epoch = object["epoch"] as? Int, let members = object["members"] as? [Int] {
            Output.line("epoch: e\(epoch) (n = \(object["n"] ?? "?"), f = \(object["f"] ?? "?"); members \(members.map { "r\($0)" }.joined(separator: ", ")))"
                + ((object["next_epoch"] as? [String: Any]).map { "; next: \($0["answer"] ?? "?")" } ?? ""))
        }
        Output.line("primary: " + ((object["primary"] as? Int).map { "r\($0)" } ?? "unknown (no replica in an active view answered)"))
        let faults = object["faults"] as? [String] ?? []
        Output.line("network faults: " + (faults.isEmpty ? ((object["direct"] as? Bool) == true ? "none (direct: no proxy)" : "none") : faults.joined(separator: "; ")))
        if let proxy = object["proxy"] as? [String: Int] {
            let keys = ["received", "forwarded", "dropped", "blocked", "delayed", "duplicated", "reordered", "corrupted", "unknown_source", "sessions"]
            Output.line("proxy: " + keys.map { "\($0) \(proxy[$0] ?? 0)" }.joined(separator: ", "))
        }
        if let rejected = object["rejected_controls"] as? Int, rejected > 0 { Output.line("control commands rejected: \(rejected)") }
    }

    func directStatus(cluster: String, operatorKey: String) async throws {
        let membership = try ClusterFile.load(cluster)
        let client = try ControlClient(membership: membership, operatorKey: try KeyFile.load(operatorKey))
        let ids = only.isEmpty ? membership.replicas.map(\.id) : only.map { ReplicaID(rawValue: $0) }
        for id in ids where membership.replica(id) == nil { throw Failure("--replica \(id): not in \(cluster)") }
        let replies = try await client.send(.status, to: ids, timeoutMilliseconds: target.timeoutMs)
        await client.close()
        if json {
            for id in ids { Output.line(replies[id].map { String(decoding: $0.body, as: UTF8.self) } ?? "{\"replica\":\(id.rawValue),\"error\":\"no reply\"}") }
            return
        }
        Output.line(pad(["replica", "view", "primary", "executed", "stable h", "H", "recv", "rejected", "bad sig", "unknown", "malformed", "stale view", "outside", "conflict", "sent"]))
        for id in ids {
            guard let reply = replies[id], reply.accepted,
                  let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]
            else {
                Output.line(pad(["r\(id.rawValue)", "no reply"]))
                continue
            }
            let rejected = object["rejected"] as? [String: Int] ?? [:]
            let received = object["received"] as? [String: Int] ?? [:]
            let sent = object["sent"] as? [String: Int] ?? [:]
            let view = "\(object["view"] ?? "?")" + ((object["view_active"] as? Bool) == false ? "*" : "") + ((object["recovering"] as? Bool) == true ? " (recovering)" : "")
            Output.line(pad([
                "r\(id.rawValue)", view, "r\(object["primary"] ?? "?")", "\(object["last_executed"] ?? "?")",
                "\(object["low_water_mark"] ?? "?")", "\(object["high_water_mark"] ?? "?")", "\(received["frames"] ?? 0)",
                "\(rejected.values.reduce(0, +))", "\(rejected["bad_signature"] ?? 0)", "\(rejected["unknown_sender"] ?? 0)",
                "\(rejected["malformed"] ?? 0)", "\(rejected["stale_view"] ?? 0)", "\(rejected["outside_water_marks"] ?? 0)",
                "\(rejected["conflicting"] ?? 0)", "\(sent["frames"] ?? 0)",
            ]))
        }
        if replies.count < ids.count { throw ExitCode(1) }
    }

    func pad(_ columns: [String]) -> String {
        columns.enumerated().map { index, text in
            let width = index == 0 ? 8 : 10
            return text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
        }.joined()
    }
}

/// `kill`, `pause`, `resume`: a process fault on one replica of a launch.
protocol ProcessFaultCommand: AsyncParsableCommand {
    static var verb: LaunchRequest.Verb { get }
    var target: ControlTarget { get }
    var replica: String { get }
}

extension ProcessFaultCommand {
    func run() async throws {
        var request = LaunchRequest(verb: Self.verb)
        request.replica = replica
        try await target.perform(request)
    }
}

struct CtlKill: ProcessFaultCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "SIGKILL a replica (a crash): its data stays for a restart.")
    static let verb = LaunchRequest.Verb.kill
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id or 'primary'.") var replica: String
}

struct CtlPause: ProcessFaultCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "SIGSTOP a replica: it keeps its sockets but does nothing.")
    static let verb = LaunchRequest.Verb.pause
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id or 'primary'.") var replica: String
}

struct CtlResume: ProcessFaultCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "SIGCONT a paused replica.")
    static let verb = LaunchRequest.Verb.resume
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id or 'primary'.") var replica: String
}

struct CtlStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a replica gracefully (SIGTERM through a launch, a signed stop command directly).")
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id, or 'primary' with a launch.") var replica: String

    func run() async throws {
        switch try target.resolve(launchOnly: false) {
        case .launch:
            var request = LaunchRequest(verb: .stop)
            request.replica = replica
            try await target.perform(request)
        case .direct(let cluster, let operatorKey):
            try await target.direct(.stop, replica: replica, cluster: cluster, operatorKey: operatorKey)
        }
    }
}

struct CtlRestart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Kill a replica if it runs and start it again from its data directory (or, with --wipe, from nothing).")
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id or 'primary'.") var replica: String
    @Flag(help: "Delete its data directory first; it rejoins with --lost-state.") var wipe = false

    func run() async throws {
        var request = LaunchRequest(verb: .restart)
        request.replica = replica
        request.wipe = wipe
        try await target.perform(request)
    }
}

struct CtlByzantine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "byzantine",
        abstract: "Switch a Byzantine behaviour on a replica started with --allow-byzantine (or 'off').",
        discussion: "Modes: " + ByzantineBehaviour.allCases.map(\.rawValue).joined(separator: ", ") + "; off. See docs/faults.md."
    )

    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id, or 'primary' with a launch.") var replica: String
    @Argument(help: "The mode, or off.") var mode: String

    func validate() throws {
        guard mode == "off" || ByzantineBehaviour(rawValue: mode) != nil else {
            throw ValidationError("unknown mode '\(mode)'; modes: " + ByzantineBehaviour.allCases.map(\.rawValue).joined(separator: ", ") + ", off")
        }
    }

    func run() async throws {
        switch try target.resolve(launchOnly: false) {
        case .launch:
            var request = LaunchRequest(verb: .byzantine)
            request.replica = replica
            request.mode = mode
            try await target.perform(request)
        case .direct(let cluster, let operatorKey):
            try await target.direct(.byzantine, argument: Array(mode.utf8), replica: replica, cluster: cluster, operatorKey: operatorKey)
        }
    }
}

struct CtlTwin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twin",
        abstract: "Start (or --stop) a twin: a second process with a replica's key and id, behind the same proxy.")
    @OptionGroup var target: ControlTarget
    @Argument(help: "A replica id or 'primary'.") var replica: String
    @Flag(help: "Stop the twin.") var stop = false
    @Flag(help: "Start it from a copy of the replica's data directory (a cloned machine) instead of empty.") var copyData = false

    func run() async throws {
        var request = LaunchRequest(verb: .twin)
        request.replica = replica
        request.stopTwin = stop
        request.copyData = copyData
        try await target.perform(request)
    }
}

/// Which traffic a network fault applies to.
struct NetworkScope: ParsableArguments {
    @Option(help: "Only traffic into and out of this replica (an id or 'primary').") var replica: String?
    @Option(help: "Only one direction of one link: from this replica ...") var from: String?
    @Option(help: "... to this one.") var to: String?

    func validate() throws {
        if (from == nil) != (to == nil) { throw ValidationError("--from and --to go together") }
        if replica != nil, from != nil { throw ValidationError("give --replica or --from/--to, not both") }
    }

    func request(fault: String, value: Double, jitter: Double? = nil) -> LaunchRequest {
        var request = LaunchRequest(verb: .fault)
        request.fault = fault
        request.value = value
        request.jitter = jitter
        request.replica = replica
        request.from = from
        request.to = to
        return request
    }
}

/// `drop`, `duplicate`, `reorder`, `corrupt`: a probability on some traffic.
protocol ProbabilityFaultCommand: AsyncParsableCommand {
    static var fault: String { get }
    var target: ControlTarget { get }
    var scope: NetworkScope { get }
    var probability: String { get }
}

extension ProbabilityFaultCommand {
    func parsedProbability(_ text: String) throws -> Double {
        do { return try PacketFault.probability(text) } catch { throw Failure(error.description) }
    }

    func run() async throws {
        try await target.perform(scope.request(fault: Self.fault, value: try parsedProbability(probability)))
    }
}

struct CtlDrop: ProbabilityFaultCommand {
    static let configuration = CommandConfiguration(commandName: "drop", abstract: "Lose datagrams with probability P (0.3 or 30%; 0 clears).")
    static let fault = "drop"
    @OptionGroup var target: ControlTarget
    @OptionGroup var scope: NetworkScope
    @Argument(help: "The probability.") var probability: String
}

struct CtlDuplicate: ProbabilityFaultCommand {
    static let configuration = CommandConfiguration(commandName: "duplicate", abstract: "Deliver datagrams twice with probability P.")
    static let fault = "duplicate"
    @OptionGroup var target: ControlTarget
    @OptionGroup var scope: NetworkScope
    @Argument(help: "The probability.") var probability: String
}

struct CtlReorder: ProbabilityFaultCommand {
    static let configuration = CommandConfiguration(commandName: "reorder", abstract: "Hold datagrams back with probability P so later ones overtake them.")
    static let fault = "reorder"
    @OptionGroup var target: ControlTarget
    @OptionGroup var scope: NetworkScope
    @Argument(help: "The probability.") var probability: String
}

struct CtlCorrupt: ProbabilityFaultCommand {
    static let configuration = CommandConfiguration(commandName: "corrupt", abstract: "Flip one to three bytes of datagrams with probability P.")
    static let fault = "corrupt"
    @OptionGroup var target: ControlTarget
    @OptionGroup var scope: NetworkScope
    @Argument(help: "The probability.") var probability: String
}

struct CtlDelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delay", abstract: "Delay datagrams by MS milliseconds, give or take --jitter (0 clears).")
    @OptionGroup var target: ControlTarget
    @OptionGroup var scope: NetworkScope
    @Argument(help: "Milliseconds.") var milliseconds: Double
    @Option(help: "Milliseconds of uniform jitter.") var jitter: Double = 0

    func validate() throws {
        guard milliseconds.isFinite, (0...60_000).contains(milliseconds) else { throw ValidationError("delay \(milliseconds): milliseconds between 0 and 60000") }
        guard jitter.isFinite, (0...60_000).contains(jitter) else { throw ValidationError("--jitter \(jitter): milliseconds between 0 and 60000") }
    }

    func run() async throws {
        try await target.perform(scope.request(fault: "delay", value: milliseconds, jitter: jitter))
    }
}

struct CtlPartition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition",
        abstract: "Cut the replicas into groups, e.g. 0,1/2,3; replicas named in no group form one more (so 'primary' isolates the primary).",
        discussion: "Replaces any partition in force; 'heal' ends it. Clients reach every replica throughout.")
    @OptionGroup var target: ControlTarget
    @Argument(help: "Groups separated by '/', ids (or 'primary') by ','.") var groups: String
    @Flag(help: "Only the first group's datagrams to the others are lost.") var oneWay = false

    func run() async throws {
        let parsed = groups.split(separator: "/", omittingEmptySubsequences: false).map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        guard parsed.allSatisfy({ $0.allSatisfy { !$0.isEmpty } }) else { throw Failure("'\(groups)': write groups as 0,1/2,3") }
        var request = LaunchRequest(verb: .partition)
        request.groups = parsed
        request.oneWay = oneWay
        try await target.perform(request)
    }
}

struct CtlHeal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heal", abstract: "End every network fault and partition.")
    @OptionGroup var target: ControlTarget

    func run() async throws {
        try await target.perform(LaunchRequest(verb: .heal))
    }
}
