public import Foundation

/// What `pbft bench` measured, as written to bench.json (docs/performance.md lists every
/// field). Latencies are in microseconds, CPU in seconds or microseconds per request.
public struct BenchReport: Codable, Sendable {
    public struct Configuration: Codable, Sendable {
        public var replicas: Int
        public var f: Int
        public var clients: Int
        /// The replicas' batch size maximum, when the bench started them.
        public var batchSizeMax: Int?
        public var payloadBytes: Int
        public var warmupSeconds: Double
        /// The measured window's length asked for (nil: run to `requestsTarget`).
        public var durationSeconds: Double?
        public var requestsTarget: Int?
        /// Replicas without the fault proxy in front.
        public var direct: Bool
        /// Whether replicas fsync their write-ahead log (nil: a launch the bench did not start).
        public var sync: Bool?
        public var runDirectory: String
        /// The cores the ceiling counts (processors online, or --cores).
        public var cores: Double

        public init(replicas: Int, f: Int, clients: Int, batchSizeMax: Int?, payloadBytes: Int, warmupSeconds: Double, durationSeconds: Double?,
                    requestsTarget: Int?, direct: Bool, sync: Bool?, runDirectory: String, cores: Double) {
            self.replicas = replicas
            self.f = f
            self.clients = clients
            self.batchSizeMax = batchSizeMax
            self.payloadBytes = payloadBytes
            self.warmupSeconds = warmupSeconds
            self.durationSeconds = durationSeconds
            self.requestsTarget = requestsTarget
            self.direct = direct
            self.sync = sync
            self.runDirectory = runDirectory
            self.cores = cores
        }
    }

    /// Ed25519 in CPU time of one thread: medians of five rounds, and the rounds' extremes.
    public struct Crypto: Codable, Sendable {
        public var messageBytes: Int
        public var iterations: Int
        public var signMicroseconds: Double
        public var verifyMicroseconds: Double
        public var signMicrosecondsMin: Double
        public var signMicrosecondsMax: Double
        public var verifyMicrosecondsMin: Double
        public var verifyMicrosecondsMax: Double

        public init(_ cost: CryptoCost) {
            messageBytes = cost.messageBytes
            iterations = cost.iterations
            signMicroseconds = cost.signMicroseconds
            verifyMicroseconds = cost.verifyMicroseconds
            signMicrosecondsMin = cost.signRangeMicroseconds.lowerBound
            signMicrosecondsMax = cost.signRangeMicroseconds.upperBound
            verifyMicrosecondsMin = cost.verifyRangeMicroseconds.lowerBound
            verifyMicrosecondsMax = cost.verifyRangeMicroseconds.upperBound
        }
    }

    public struct Throughput: Codable, Sendable {
        /// Requests completed inside the measured window.
        public var requests: Int
        public var seconds: Double
        public var requestsPerSecond: Double

        public init(requests: Int, seconds: Double, requestsPerSecond: Double) {
            self.requests = requests
            self.seconds = seconds
            self.requestsPerSecond = requestsPerSecond
        }
    }

    /// Latency percentiles in microseconds, from the merged histogram of every client.
    public struct Latency: Codable, Sendable {
        public var count: UInt64
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double

        public init(_ histogram: LatencyHistogram) {
            func micros(_ q: Double) -> Double { Double(histogram.value(atQuantile: q)) / 1_000 }
            count = histogram.count
            mean = histogram.meanNanoseconds / 1_000
            p50 = micros(0.5)
            p90 = micros(0.9)
            p99 = micros(0.99)
            p999 = micros(0.999)
            max = Double(histogram.maximum) / 1_000
        }
    }

    /// What the replicas' status reports say about the window.
    public struct ProtocolFigures: Codable, Sendable {
        /// Requests executed per sequence number executed (nil: no report at both ends).
        public var effectiveBatchSize: Double?
        /// View changes started during the window (the most any replica started).
        public var viewChanges: UInt64

        public init(effectiveBatchSize: Double?, viewChanges: UInt64) {
            self.effectiveBatchSize = effectiveBatchSize
            self.viewChanges = viewChanges
        }
    }

    public struct CPU: Codable, Sendable {
        /// utime + stime of every replica process over the window, summed, and each (replica order).
        public var replicaSeconds: Double
        public var replicaSecondsEach: [Double?]
        /// getrusage of the bench process (its clients) over the window.
        public var clientSeconds: Double
        public var replicaMicrosecondsPerRequest: Double
        public var clientMicrosecondsPerRequest: Double
        /// Signature checks the clients ran per request (reply roots their shared memo did not
        /// hold already); nil when not counted.
        public var clientVerificationsPerRequest: Double?

        public init(
            replicaSeconds: Double, replicaSecondsEach: [Double?], clientSeconds: Double, replicaMicrosecondsPerRequest: Double, clientMicrosecondsPerRequest: Double,
            clientVerificationsPerRequest: Double? = nil
        ) {
            self.replicaSeconds = replicaSeconds
            self.replicaSecondsEach = replicaSecondsEach
            self.clientSeconds = clientSeconds
            self.replicaMicrosecondsPerRequest = replicaMicrosecondsPerRequest
            self.clientMicrosecondsPerRequest = clientMicrosecondsPerRequest
            self.clientVerificationsPerRequest = clientVerificationsPerRequest
        }
    }

    public struct Ceiling: Codable, Sendable {
        public var cores: Double
        /// The batch size the ceiling was computed for, and where it came from: `measured`
        /// (requests executed / sequence numbers executed over the window) or `maximum`.
        public var batchSize: Double
        public var batchSource: String
        public var signsPerRequest: Double
        public var verifiesPerRequest: Double
        public var microsecondsPerRequest: Double
        /// The replicas' part of it, and the client's.
        public var replicaMicrosecondsPerRequest: Double
        public var clientMicrosecondsPerRequest: Double
        public var requestsPerSecond: Double
        /// Throughput over the ceiling.
        public var fraction: Double
        /// The ceiling at the batch size maximum too, when the bench set it.
        public var requestsPerSecondAtBatchMax: Double?
        /// The same model for what this implementation signs: one reply root per batch
        /// instead of one signature per reply (docs/protocol.md, "Replies").
        public var asSigned: AsSigned?

        public struct AsSigned: Codable, Sendable {
            public var signsPerRequest: Double
            public var microsecondsPerRequest: Double
            public var replicaMicrosecondsPerRequest: Double
            /// Nil in reports written before clients shared their checks of reply roots.
            public var clientMicrosecondsPerRequest: Double?
            public var requestsPerSecond: Double
            public var fraction: Double
        }

        public init(_ model: CryptoCeiling, source: String, throughput: Double, atBatchMax: CryptoCeiling?, asSigned: CryptoCeiling? = nil) {
            cores = model.cores
            batchSize = model.batchSize
            batchSource = source
            signsPerRequest = model.signsPerRequest
            verifiesPerRequest = model.verifiesPerRequest
            microsecondsPerRequest = model.microsecondsPerRequest
            replicaMicrosecondsPerRequest = model.replicaMicrosecondsPerRequest
            clientMicrosecondsPerRequest = model.clientMicrosecondsPerRequest
            requestsPerSecond = model.requestsPerSecond
            fraction = throughput / model.requestsPerSecond
            requestsPerSecondAtBatchMax = atBatchMax?.requestsPerSecond
            self.asSigned = asSigned.map {
                AsSigned(
                    signsPerRequest: $0.signsPerRequest, microsecondsPerRequest: $0.microsecondsPerRequest,
                    replicaMicrosecondsPerRequest: $0.replicaMicrosecondsPerRequest, clientMicrosecondsPerRequest: $0.clientMicrosecondsPerRequest,
                    requestsPerSecond: $0.requestsPerSecond,
                    fraction: throughput / $0.requestsPerSecond)
            }
        }
    }

    public struct Memory: Codable, Sendable {
        /// Once a second from the start of the load.
        public var samples: [MemorySample]
        /// Between the sample nearest 100,000 requests and the last, when the run got that far.
        public var growth: MemoryGrowth?

        public init(samples: [MemorySample], growth: MemoryGrowth?) {
            self.samples = samples
            self.growth = growth
        }
    }

    public var version = 1
    /// When the measured window began (UTC, ISO 8601).
    public var started: String
    public var configuration: Configuration
    public var crypto: Crypto
    public var throughput: Throughput
    public var latencyUs: Latency
    public var `protocol`: ProtocolFigures
    public var cpu: CPU
    public var ceiling: Ceiling
    public var memory: Memory

    public init(started: String, configuration: Configuration, crypto: Crypto, throughput: Throughput, latency: Latency, protocol: ProtocolFigures,
                cpu: CPU, ceiling: Ceiling, memory: Memory) {
        self.started = started
        self.configuration = configuration
        self.crypto = crypto
        self.throughput = throughput
        self.latencyUs = latency
        self.protocol = `protocol`
        self.cpu = cpu
        self.ceiling = ceiling
        self.memory = memory
    }

    /// The report as JSON with snake_case keys, sorted.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> BenchReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(BenchReport.self, from: data)
    }

    /// The lines `pbft bench` prints.
    public var summaryLines: [String] {
        let c = configuration
        var lines: [String] = []
        let batch = c.batchSizeMax.map { "batch ≤ \($0)" } ?? "batch as launched"
        lines.append("n = \(c.replicas), f = \(c.f), \(c.clients) closed-loop clients, \(batch), \(c.payloadBytes)-byte values, \(c.direct ? "direct" : "through the fault proxy")\(c.sync == false ? ", no fsync" : "")")
        lines.append(String(format: "crypto     sign %.1f µs (%.1f-%.1f), verify %.1f µs (%.1f-%.1f) of CPU per %d-byte message (%d each, this run)",
                            crypto.signMicroseconds, crypto.signMicrosecondsMin, crypto.signMicrosecondsMax,
                            crypto.verifyMicroseconds, crypto.verifyMicrosecondsMin, crypto.verifyMicrosecondsMax, crypto.messageBytes, crypto.iterations))
        lines.append(String(format: "throughput %.0f requests/s (%d requests in %.1f s after %g s of warm-up)",
                            throughput.requestsPerSecond, throughput.requests, throughput.seconds, c.warmupSeconds))
        let l = latencyUs
        lines.append(String(format: "latency ms p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (mean %.2f)",
                            l.p50 / 1e3, l.p90 / 1e3, l.p99 / 1e3, l.p999 / 1e3, l.max / 1e3, l.mean / 1e3))
        let checks = cpu.clientVerificationsPerRequest.map { String(format: "; %.2f signature checks per request", $0) } ?? ""
        lines.append(String(format: "cpu        %.0f µs per request in the replicas (%.2f s over %d processes; signatures %.0f%% of it), %.0f µs in the clients (%.2f s; signatures %.0f%%",
                            cpu.replicaMicrosecondsPerRequest, cpu.replicaSeconds, cpu.replicaSecondsEach.count,
                            (ceiling.asSigned?.replicaMicrosecondsPerRequest ?? ceiling.replicaMicrosecondsPerRequest) / cpu.replicaMicrosecondsPerRequest * 100,
                            cpu.clientMicrosecondsPerRequest, cpu.clientSeconds,
                            (ceiling.asSigned?.clientMicrosecondsPerRequest ?? ceiling.clientMicrosecondsPerRequest) / cpu.clientMicrosecondsPerRequest * 100) + checks + ")")
        let batchText = self.protocol.effectiveBatchSize.map { String(format: "%.2f requests per sequence number", $0) } ?? "not reported"
        lines.append("protocol   batch \(batchText), \(self.protocol.viewChanges) view changes in the window")
        let e = ceiling
        let source = e.batchSource == "measured" ? "measured batch" : "batch maximum"
        lines.append(String(format: "ceiling    %.0f requests/s for signatures alone on %g cores at ", e.requestsPerSecond, e.cores) + source
            + String(format: " %.1f (%.0f µs of crypto per request); this run: %.1f%%", e.batchSize, e.microsecondsPerRequest, e.fraction * 100))
        if let a = e.asSigned {
            lines.append(String(format: "           %.0f requests/s for what this build signs and checks (a reply root per batch, checked once by the clients: %.0f µs per request); this run: %.1f%%",
                                a.requestsPerSecond, a.microsecondsPerRequest, a.fraction * 100))
        }
        if let last = memory.samples.last {
            let mb = last.residentKilobytes.map { $0.map { String(format: "%.1f", Double($0) / 1024) } ?? "-" }.joined(separator: " ")
            lines.append("memory     replica RSS MiB at \(last.requests) requests: \(mb)")
        }
        if let g = memory.growth {
            lines.append(String(format: "growth     replica RSS +%.1f%% at most from %d to %d requests (target: at most 10%%)", g.maxPercent, g.fromRequests, g.toRequests))
        }
        return lines
    }
}
