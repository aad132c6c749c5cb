import ArgumentParser
import Foundation
import PBFTBench
import PBFTCluster
import PBFTCore
import PBFTTestbed
import PBFTWire

#if canImport(Glibc)
import Glibc
#endif

/// `pbft bench` (= `pbft bench cluster`): throughput, latency and CPU of a cluster of
/// replica processes on this machine, read against the crypto-bound ceiling measured in the
/// same run (docs/performance.md).
struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Closed-loop clients against replica processes on localhost: throughput, latency, CPU per request, the crypto-bound ceiling.",
        discussion: """
            Measures Ed25519 first, then starts n replicas with the launcher in direct mode (no \
            fault proxy; keys generated in the run directory), or uses a running launch (--run). \
            Clients run in this process, each with one request outstanding. Prints the figures \
            and writes them as JSON (default: bench.json in the run directory). Stops every \
            process it started. See docs/performance.md.
            """
    )

    @Option(help: "Replicas n (at least 4) the bench starts.") var replicas: Int?
    @Option(help: "Closed-loop clients, each with one request outstanding.") var clients: Int = 16
    @Option(help: "Seconds measured, after the warm-up.") var duration: Double = 10
    @Option(help: "Seconds of load before measuring (not counted).") var warmup: Double = 2
    @Option(help: "Measure until this many requests completed instead of for --duration.") var requests: Int?
    @Option(help: "Replica setting: requests per batch at most (default 64).") var batch: Int?
    @Option(help: "Bytes of each put's value.") var payload: Int = 64
    @Option(help: "Run directory for keys, data, logs and bench.json (default: runs/bench-TIME).") var dir: String?
    @Option(help: "Use the running launch in this run directory instead of starting replicas.") var run: String?
    @Option(help: "Where to write the JSON report (default: bench.json in the run directory).") var json: String?
    @Option(help: "UDP port of replica 0 (default: a free range); replica i gets base-port + i.") var basePort: Int?
    @Flag(help: "Replica setting: do not fsync the write-ahead log.") var noSync = false
    @Option(help: "Replica setting: sequence numbers in flight at most (default 1; more pipelines batches, fewer makes them larger).") var sequencesInFlight: Int?
    @Option(help: "Replica setting: threads that verify signatures (default: the cores per replica on this host, at most 4; 1: none besides the socket's thread).") var verifierThreads: Int?
    @Option(help: "Signatures made and verified to measure Ed25519 before the cluster starts.") var cryptoIterations: Int = 4_000
    @Option(help: "Cores the ceiling counts (default: processors online).") var cores: Double?
    @Option(help: "Milliseconds a client waits for f+1 matching replies before the bench fails.") var timeoutMs: Int = 10_000

    func run() async throws {
        try check()
        let setup = try run == nil ? prepare() : nil
        let crypto: CryptoCost
        do { crypto = try CryptoCost.measure(iterations: cryptoIterations) } catch { throw Failure("\(error)") }
        Output.line(String(format: "crypto: sign %.1f µs, verify %.1f µs of CPU per 64-byte message (%d each)", crypto.signMicroseconds, crypto.verifyMicroseconds, crypto.iterations))
        let cluster: BenchCluster
        if let setup { cluster = try await startCluster(setup) } else { cluster = try await BenchCluster.attach(runDirectory: run ?? "") }
        let result: LoadResult
        do {
            guard cluster.membership.clients.count >= clients else {
                throw Failure("--clients \(clients): \(cluster.keysDirectory)/cluster.toml has keys for \(cluster.membership.clients.count) clients")
            }
            let plan = LoadPlan(
                clients: clients, payloadBytes: payload, warmup: .milliseconds(Int64(warmup * 1000)),
                window: requests.map { .requests($0) } ?? .duration(.milliseconds(Int64(duration * 1000))), timeoutMilliseconds: timeoutMs)
            result = try await LoadRun(plan: plan, cluster: cluster).run()
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
        let report = makeReport(cluster: cluster, crypto: crypto, result: result)
        report.summaryLines.forEach(Output.line)
        let path = json ?? cluster.runDirectory + "/bench.json"
        do { try report.json().write(to: URL(fileURLWithPath: path)) } catch { throw Failure("\(path): cannot write the report: \(error.localizedDescription)") }
        Output.line("wrote \(path)" + (cluster.started ? "; stopped every process the bench started" : ""))
    }

    /// One line for each mistake, before anything starts.
    func check() throws {
        if let replicas, replicas < 4 { throw Failure("--replicas \(replicas): PBFT needs at least 4 replicas") }
        if let replicas, replicas > WireLimits.default.replicasMax { throw Failure("--replicas \(replicas): at most \(WireLimits.default.replicasMax)") }
        guard clients >= 1 else { throw Failure("--clients \(clients): use 1 or more") }
        guard duration > 0, duration <= 86_400 else { throw Failure("--duration \(duration): use more than 0 and at most 86400 seconds") }
        guard warmup >= 0, warmup <= 3_600 else { throw Failure("--warmup \(warmup): use 0 to 3600 seconds") }
        if let requests, requests < 1 { throw Failure("--requests \(requests): use 1 or more") }
        if let batch, !(1...WireLimits.default.batchRequestsMax).contains(batch) { throw Failure("--batch \(batch): use 1 to \(WireLimits.default.batchRequestsMax)") }
        if let sequencesInFlight, !(1...1024).contains(sequencesInFlight) { throw Failure("--sequences-in-flight \(sequencesInFlight): use 1 to 1024") }
        if let verifierThreads, !(0...64).contains(verifierThreads) { throw Failure("--verifier-threads \(verifierThreads): use 0 to 64") }
        let payloadMax = WireLimits.default.operationBytesMax - 256
        guard (0...payloadMax).contains(payload) else { throw Failure("--payload \(payload): use 0 to \(payloadMax) bytes") }
        if let basePort, !(1...(65_535 - (replicas ?? 4) + 1)).contains(basePort) { throw Failure("--base-port \(basePort): not a port for \(replicas ?? 4) replicas") }
        guard cryptoIterations >= 100 else { throw Failure("--crypto-iterations \(cryptoIterations): use at least 100") }
        if let cores, !(cores > 0) { throw Failure("--cores \(cores): must be positive") }
        guard timeoutMs >= 100 else { throw Failure("--timeout-ms \(timeoutMs): use at least 100") }
        if run != nil {
            if dir != nil { throw Failure("--dir and --run: give one (--run uses a launch's run directory)") }
            if batch != nil || noSync || basePort != nil || sequencesInFlight != nil || verifierThreads != nil {
                throw Failure("--batch, --no-sync, --sequences-in-flight, --verifier-threads and --base-port set up replicas the bench starts; a launch (--run) has its own")
            }
        }
    }

    /// Where the replicas the bench starts go: the run directory and their ports, checked free.
    struct Setup {
        let runDirectory: String
        let ports: [Int]
    }

    func prepare() throws -> Setup {
        let n = replicas ?? 4
        let runDirectory = dir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Self.defaultRunDirectory()
        let existing = runDirectory + "/keys/" + KeySet.clusterFileName
        let ports: [Int]
        if FileManager.default.fileExists(atPath: existing) {
            let membership: Membership
            do { membership = try ClusterFile.load(existing) } catch { throw Failure("\(error)") }
            guard membership.n == n else { throw Failure("\(existing) lists \(membership.n) replicas, not \(n); use another --dir or --replicas \(membership.n)") }
            guard basePort == nil else { throw Failure("--base-port: \(runDirectory) already has keys, with their ports; use another --dir") }
            guard membership.clients.count >= clients else { throw Failure("--clients \(clients): \(existing) has keys for \(membership.clients.count) clients; use another --dir") }
            ports = membership.replicas.map { Int($0.port) }
        } else if let basePort {
            ports = Array(basePort..<(basePort + n))
        } else {
            let base: Int
            do { base = try consecutiveFreeUDPPorts(count: n) } catch { throw Failure("\(error)") }
            ports = Array(base..<(base + n))
        }
        for (i, port) in ports.enumerated() where !Self.isFreeUDPPort(port) {
            throw Failure("UDP port \(port) on 127.0.0.1 (replica \(i)) is in use: choose another --base-port" + (basePort == nil && dir != nil ? " or --dir" : ""))
        }
        return Setup(runDirectory: runDirectory, ports: ports)
    }

    /// Starts n replicas in direct mode and waits until every one answers.
    func startCluster(_ setup: Setup) async throws -> BenchCluster {
        let n = replicas ?? 4
        let runDirectory = setup.runDirectory
        let ports = setup.ports
        var options = LaunchOptions(runDirectory: runDirectory, replicas: n, executable: try LaunchCommand.executablePath())
        options.direct = true
        options.clients = clients
        options.basePort = ports[0]
        options.replicaArguments = ["--batch-size", "\(batch ?? 64)"] + (noSync ? ["--no-sync"] : [])
            + (sequencesInFlight.map { ["--sequences-in-flight", "\($0)"] } ?? [])
            + (verifierThreads.map { ["--verifier-threads", "\($0)"] } ?? [])
        let launcher: Launcher
        do { launcher = try await Launcher.start(options) } catch { throw Failure("cannot start the replicas: \(error)") }
        let cluster = BenchCluster(launcher: launcher, membership: await launcher.membership)
        do {
            try await cluster.waitUntilServing(seconds: 30)
        } catch {
            await cluster.stop()
            throw error
        }
        Output.line("started \(n) replicas (direct, batch ≤ \(batch ?? 64)\(noSync ? ", no fsync" : "")) in \(runDirectory)")
        return cluster
    }

    static func defaultRunDirectory() -> String {
        let stamp = DateFormatter()
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        stamp.timeZone = TimeZone(identifier: "UTC")
        return FileManager.default.currentDirectoryPath + "/runs/bench-" + stamp.string(from: Date())
    }

    /// Whether UDP port `port` on 127.0.0.1 can be bound now.
    static func isFreeUDPPort(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func makeReport(cluster: BenchCluster, crypto: CryptoCost, result: LoadResult) -> BenchReport {
        let membership = cluster.membership
        let measured = max(result.measuredRequests, 1)
        let throughput = Double(result.measuredRequests) / result.windowSeconds
        let replicaSeconds = result.replicaCPUSeconds.compactMap { $0 }.reduce(0, +)
        let coreCount = cores ?? Double(OwnCPU.coresOnline())
        func ceiling(_ b: Double, replies: CryptoCeiling.Replies = .each) -> CryptoCeiling {
            // The bench's clients share their threads, so their checks of reply roots too.
            CryptoCeiling(cores: coreCount, signMicroseconds: crypto.signMicroseconds, verifyMicroseconds: crypto.verifyMicroseconds,
                          replicas: membership.n, batchSize: max(1, b), replies: replies, clientsShareRoots: replies == .perBatch)
        }
        let effective = ReplicaProgress.effectiveBatchSize(from: result.progressAtStart, to: result.progressAtEnd)
        let (b, source): (Double, String) = effective.map { ($0, "measured") } ?? batch.map { (Double($0), "maximum") } ?? (Double(cluster.started ? 64 : 1), cluster.started ? "maximum" : "assumed")
        return BenchReport(
            started: result.startedAt,
            configuration: .init(
                replicas: membership.n, f: membership.f, clients: clients, batchSizeMax: cluster.started ? batch ?? 64 : nil, payloadBytes: payload,
                warmupSeconds: warmup, durationSeconds: requests == nil ? duration : nil, requestsTarget: requests, direct: cluster.direct,
                sync: cluster.started ? !noSync : nil, runDirectory: cluster.runDirectory, cores: coreCount),
            crypto: .init(crypto),
            throughput: .init(requests: result.measuredRequests, seconds: result.windowSeconds, requestsPerSecond: throughput),
            latency: .init(result.histogram),
            protocol: .init(effectiveBatchSize: effective, viewChanges: ReplicaProgress.viewChanges(from: result.progressAtStart, to: result.progressAtEnd)),
            cpu: .init(
                replicaSeconds: replicaSeconds, replicaSecondsEach: result.replicaCPUSeconds, clientSeconds: result.clientCPUSeconds,
                replicaMicrosecondsPerRequest: replicaSeconds * 1e6 / Double(measured), clientMicrosecondsPerRequest: result.clientCPUSeconds * 1e6 / Double(measured),
                clientVerificationsPerRequest: Double(result.clientSignatureChecks) / Double(measured)),
            ceiling: .init(ceiling(b), source: source, throughput: throughput, atBatchMax: cluster.started ? ceiling(Double(batch ?? 64)) : nil,
                           asSigned: ceiling(b, replies: .perBatch)),
            memory: .init(samples: result.memorySamples, growth: MemoryGrowth.between(result.memorySamples)))
    }
}
