import ArgumentParser
import Dispatch
import Foundation
import PBFTRuntime
import PBFTTestbed

struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Run a cluster of replica processes on localhost, each behind a fault proxy, until Ctrl-C.",
        discussion: """
            Generates keys into the run directory (or reuses the keys there, or those of --keys),
            starts the replicas as child processes and prints where everything is. Break the
            cluster with 'pbft ctl --run DIR ...' (docs/faults.md). Ctrl-C or SIGTERM stops
            everything it started; so does the launcher's death, even by SIGKILL.
            """
    )

    @Option(help: "Number of replicas (at least 4).") var replicas: Int
    @Option(help: "Client keys to generate (new keys only).") var clients: Int = 4
    @Option(help: "UDP port of replica 0 in new keys; replica i gets base-port + i.") var basePort: Int = 7000
    @Option(help: "Run directory (default: runs/launch-TIME, linked from runs/latest).") var dir: String?
    @Option(help: "Use the keys and cluster.toml in this directory.") var keys: String?
    @Flag(help: "No fault proxy: replicas bind the cluster file's addresses (no network faults, no twins).") var direct = false
    @Option(help: "Seed of the proxy's fault decisions.") var seed: UInt64 = 1
    @Flag(help: "Start replicas with --allow-byzantine so 'ctl byzantine' works.") var allowByzantine = false
    @Option(help: "Run this many closed-loop load clients for the whole launch.") var load: Int = 0
    @Option(help: "Stop after this many seconds (default: run until Ctrl-C).") var duration: Double?
    @Option(help: "UDP port of the launcher's control endpoint (default: any free port).") var controlPort: Int = 0
    @Option(help: "Replica setting: milliseconds per tick.") var tickMs: Int = 10
    @Option(help: "Replica setting: ticks before a backup suspects the primary.") var viewChangeTimeoutTicks: Int = ReplicaOptions.defaultViewChangeTimeoutTicks
    @Option(help: "Replica setting: checkpoint interval K.") var checkpointInterval: Int = 64
    @Option(help: "Replica setting: log window L.") var logWindow: Int = 128
    @Option(help: "Replica setting: requests per batch at most.") var batchSize: Int = 64
    @Flag(help: "Replica setting: do not fsync the write-ahead log.") var noSync = false
    @Option(help: "Replica setting: log level.") var logLevel: String = "info"

    func validate() throws {
        guard replicas >= 4 else { throw ValidationError("--replicas \(replicas): PBFT needs at least 4 replicas") }
        guard load >= 0 else { throw ValidationError("--load \(load): must not be negative") }
        if let duration, !(duration > 0) { throw ValidationError("--duration \(duration): must be positive") }
        guard (0...65535).contains(controlPort) else { throw ValidationError("--control-port \(controlPort): not a port") }
    }

    func run() async throws {
        let executable = try Self.executablePath()
        let runDirectory: String
        if let dir {
            runDirectory = URL(fileURLWithPath: dir).standardizedFileURL.path
        } else {
            let stamp = DateFormatter()
            stamp.dateFormat = "yyyyMMdd-HHmmss"
            stamp.timeZone = TimeZone(identifier: "UTC")
            runDirectory = FileManager.default.currentDirectoryPath + "/runs/launch-" + stamp.string(from: Date())
        }
        var options = LaunchOptions(runDirectory: runDirectory, replicas: replicas, executable: executable)
        options.clients = clients
        options.basePort = basePort
        options.keysDirectory = keys.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        options.direct = direct
        options.seed = seed
        options.allowByzantine = allowByzantine
        options.loadClients = load
        if let duration { options.loadSeconds = duration }
        options.controlPort = controlPort
        options.replicaArguments = [
            "--tick-ms", "\(tickMs)", "--view-change-timeout-ticks", "\(viewChangeTimeoutTicks)",
            "--checkpoint-interval", "\(checkpointInterval)", "--log-window", "\(logWindow)", "--batch-size", "\(batchSize)",
            "--log-level", logLevel,
        ] + (noSync ? ["--no-sync"] : [])

        let launcher: Launcher
        do { launcher = try await Launcher.start(options) } catch {
            throw Failure("launch failed: \(error)")
        }
        if dir == nil { Self.linkLatest(runDirectory) }
        let control = await launcher.controlAddress
        let run = dir == nil ? "" : " --run \(runDirectory)"
        Output.line("launched \(replicas) replicas\(direct ? " (direct, no fault proxy)" : " behind the fault proxy (seed \(seed))")\(load > 0 ? " with \(load) load clients" : "")")
        Output.line("  run directory  \(runDirectory)")
        Output.line("  cluster file   \(launcher.keysDirectory)/cluster.toml (clients use it)")
        Output.line("  logs           \(runDirectory)/logs/replica-I.log")
        Output.line("  data           \(runDirectory)/data/rI (write-ahead log, checkpoint, execution.jsonl)")
        Output.line("  events         \(runDirectory)/events.jsonl")
        Output.line("  control        \(control) (launch.json)")
        Output.line("try: pbft ctl status\(run) | pbft ctl kill primary\(run) | pbft ctl partition primary\(run) | pbft ctl heal\(run)")
        Output.line(duration.map { "running for \(Self.seconds($0)); Ctrl-C stops everything" } ?? "running; Ctrl-C stops everything")

        let (stop, continuation) = AsyncStream<String>.makeStream()
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number == SIGINT ? "SIGINT" : "SIGTERM") }
            source.resume()
            return source
        }
        if let duration {
            DispatchQueue.global().asyncAfter(deadline: .now() + duration) { continuation.yield("duration") }
        }
        var reason = "?"
        for await why in stop {
            reason = why
            break
        }
        sources.forEach { $0.cancel() }
        Output.line("stopping (\(reason == "duration" ? "--duration elapsed" : reason)): every replica and client this launch started")
        await launcher.shutdown()
        Output.line("stopped; everything is in \(runDirectory)")
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }

    /// This executable, to start replicas and clients with.
    static func executablePath() throws -> String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        let argument = CommandLine.arguments[0]
        if argument.contains("/") { return URL(fileURLWithPath: argument).standardizedFileURL.path }
        throw Failure("cannot tell where the pbft executable is; run it by its path")
    }

    /// runs/latest → the run directory, so 'pbft ctl' finds it without --run.
    static func linkLatest(_ runDirectory: String) {
        let link = FileManager.default.currentDirectoryPath + "/runs/latest"
        try? FileManager.default.removeItem(atPath: link)
        try? FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: runDirectory)
    }
}
