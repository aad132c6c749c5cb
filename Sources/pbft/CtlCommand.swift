import ArgumentParser
import Foundation
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTWire

struct Ctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Operator-signed control of running replicas.",
        subcommands: [CtlStatus.self, CtlStop.self, CtlByzantine.self]
    )
}

struct ControlTarget: ParsableArguments {
    @Option(help: "The cluster file.") var cluster: String = "keys/cluster.toml"
    @Option(help: "The operator's secret key file.") var operatorKey: String = "keys/operator.key"
    @Option(help: "Milliseconds to wait for replies.") var timeoutMs: Int = 1_500

    func client() throws -> (ControlClient, PBFTCore.Membership) {
        let membership = try ClusterFile.load(cluster)
        return (try ControlClient(membership: membership, operatorKey: try KeyFile.load(operatorKey)), membership)
    }
}

struct CtlStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show every replica's view, progress, water marks and message counts.")

    @OptionGroup var target: ControlTarget
    @Option(name: .customLong("replica"), help: "Only this replica (repeatable).") var only: [UInt32] = []
    @Flag(help: "Print each replica's raw JSON.") var json = false

    func run() async throws {
        let (client, membership) = try target.client()
        let ids = only.isEmpty ? membership.replicas.map(\.id) : only.map { ReplicaID(rawValue: $0) }
        for id in ids where membership.replica(id) == nil { throw ValidationError("--replica \(id.rawValue): not in \(target.cluster)") }
        let replies = try await client.send(.status, to: ids, timeoutMilliseconds: target.timeoutMs)
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

struct CtlStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a replica gracefully.")

    @OptionGroup var target: ControlTarget
    @Argument(help: "The replica id.") var replica: UInt32

    func run() async throws {
        let (client, membership) = try target.client()
        guard membership.replica(ReplicaID(replica)) != nil else { throw ValidationError("replica \(replica) is not in \(target.cluster)") }
        let replies = try await client.send(.stop, to: [ReplicaID(replica)], timeoutMilliseconds: target.timeoutMs)
        guard let reply = replies[ReplicaID(replica)] else {
            Output.line("r\(replica): no reply")
            throw ExitCode(1)
        }
        Output.line("r\(replica): \(String(decoding: reply.body, as: UTF8.self))")
        if !reply.accepted { throw ExitCode(1) }
    }
}

struct CtlByzantine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "byzantine",
        abstract: "Switch a Byzantine behaviour on a replica started with --allow-byzantine (or 'off').",
        discussion: "Modes: silent, mutePrimary, slowPrimary, equivocatingPrimary, wrongDigests, replayOld, viewChangeSpam, dropPreparedInNewView, wrongCheckpoints, wrongReplies; off."
    )

    @OptionGroup var target: ControlTarget
    @Argument(help: "The replica id.") var replica: UInt32
    @Argument(help: "The mode, or off.") var mode: String

    func run() async throws {
        let (client, membership) = try target.client()
        guard membership.replica(ReplicaID(replica)) != nil else { throw ValidationError("replica \(replica) is not in \(target.cluster)") }
        let replies = try await client.send(.byzantine, argument: Array(mode.utf8), to: [ReplicaID(replica)], timeoutMilliseconds: target.timeoutMs)
        guard let reply = replies[ReplicaID(replica)] else {
            Output.line("r\(replica): no reply")
            throw ExitCode(1)
        }
        Output.line("r\(replica): \(String(decoding: reply.body, as: UTF8.self))")
        if !reply.accepted { throw ExitCode(1) }
    }
}
