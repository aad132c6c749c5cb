import ArgumentParser
import Dispatch
import Logging
import PBFTRuntime
import PBFTWire

#if canImport(Glibc)
import Glibc
#endif

struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Run one replica over UDP on the address the cluster file gives it.",
        discussion: "Stops cleanly on SIGTERM or SIGINT. The data directory holds the write-ahead log, the stable checkpoint and execution.jsonl."
    )

    @Option(help: "The cluster file.") var cluster: String
    @Option(help: "This replica's id.") var id: UInt32
    @Option(help: "This replica's secret key file.") var key: String
    @Option(help: "Data directory (created if missing).") var data: String
    @Option(help: "Milliseconds per tick of the protocol clock.") var tickMs: Int = 10
    @Option(help: "Ticks a backup waits for a request before suspecting the primary.") var viewChangeTimeoutTicks: Int = ReplicaOptions.defaultViewChangeTimeoutTicks
    @Option(help: "Checkpoint interval K.") var checkpointInterval: Int = 64
    @Option(help: "Log window L (a multiple of K).") var logWindow: Int = 128
    @Option(help: "Requests per batch at most.") var batchSize: Int = 64
    @Option(help: "Sequence numbers in flight (assigned, not executed) at most: fewer means larger batches under load.") var sequencesInFlight: Int = ReplicaOptions.defaultSequencesInFlight
    @Flag(help: "Do not fsync the write-ahead log (unsafe; to measure what syncing costs).") var noSync = false
    @Flag(help: "Stop when the parent process exits (for launchers and tests).") var exitWithParent = false
    @Option(help: .hidden) var parentPid: Int32?
    @Flag(help: "Obey operator-signed 'ctl byzantine' commands (fault-injection experiments only).") var allowByzantine = false
    @Flag(help: "This replica lost its data directory: rejoin passively until it cannot contradict what it signed before.") var lostState = false
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"
    @Option(help: "Threads that verify signatures (0: the cores per replica at this address, at most 4; 1: the socket's thread only).") var verifierThreads: Int = 0

    func run() async throws {
        // A launcher passes its pid: the kernel kills this process when the launcher dies.
        if let parentPid, !ParentWatch.dieWithParent(parentPid) { throw ExitCode(1) }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical") }
        guard (1...1000).contains(tickMs) else { throw ValidationError("--tick-ms \(tickMs): use 1 to 1000") }
        guard (1...1024).contains(sequencesInFlight) else { throw ValidationError("--sequences-in-flight \(sequencesInFlight): use 1 to 1024 (and at most half the log window)") }
        guard (0...64).contains(verifierThreads) else { throw ValidationError("--verifier-threads \(verifierThreads): use 0 to 64") }
        var logger = Logger(label: "pbft.replica") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = level
        var options = ReplicaOptions(clusterPath: cluster, id: ReplicaID(id), keyPath: key, dataDirectory: data)
        options.tickMilliseconds = tickMs
        options.syncLog = !noSync
        options.lostState = lostState
        options.exitWithParent = exitWithParent
        options.allowByzantine = allowByzantine
        options.viewChangeTimeoutTicks = viewChangeTimeoutTicks
        options.checkpointInterval = checkpointInterval
        options.logWindow = logWindow
        options.batchSizeMax = batchSize
        options.verifierThreads = verifierThreads
        options.sequencesInFlightMax = sequencesInFlight
        let node = try ReplicaNode(options: options, logger: logger)
        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { node.stop() }
            source.resume()
            return source
        }
        try await node.run()
        signals.forEach { $0.cancel() }
    }
}
