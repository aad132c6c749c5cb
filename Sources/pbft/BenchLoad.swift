import Dispatch
import Foundation
import PBFTBench
import PBFTCluster
import PBFTKeyValue
import PBFTRuntime
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What load to run and for how long.
struct LoadPlan: Sendable {
    enum Window: Sendable {
        case duration(Duration)
        /// Until this many requests completed in the window.
        case requests(Int)
    }

    var clients: Int
    var payloadBytes: Int
    var warmup: Duration
    var window: Window
    var timeoutMilliseconds: Int
}

/// What a load measured, for the report.
struct LoadResult: Sendable {
    var histogram: LatencyHistogram
    var measuredRequests: Int
    var windowSeconds: Double
    /// When the window began (UTC, ISO 8601).
    var startedAt: String
    /// utime + stime of each replica process over the window (replica order; nil: gone).
    var replicaCPUSeconds: [Double?]
    var clientCPUSeconds: Double
    /// Signatures the clients verified over the window (their shared memo's misses).
    var clientSignatureChecks: Int
    var progressAtStart: [ReplicaProgress]
    var progressAtEnd: [ReplicaProgress]
    var memorySamples: [MemorySample]
}

/// Where the load is: warming up, measuring, or over. Clients report each completed
/// operation here; the coordinator opens and closes the window.
final class LoadWindow: Sendable {
    private struct State {
        var measuring = false
        var over = false
        var measured = 0
    }

    private let state = Mutex(State())
    /// Operations completed since the load began, warm-up included.
    let completed = Atomic<Int>(0)
    let interrupted = Atomic<Bool>(false)
    let target: Int?

    init(target: Int?) { self.target = target }

    /// A client completed an operation: whether it counts (inside the window), and whether
    /// the client should stop (the window is over).
    func complete() -> (counts: Bool, stop: Bool) {
        completed.add(1, ordering: .relaxed)
        return state.withLock { s in
            guard !s.over else { return (false, true) }
            guard s.measuring else { return (false, false) }
            s.measured += 1
            if let target, s.measured >= target { s.over = true }
            return (true, s.over)
        }
    }

    func begin() { state.withLock { $0.measuring = true } }

    /// Closes the window (if still open); returns the operations it counted.
    func end() -> Int {
        state.withLock { s in
            s.over = true
            return s.measured
        }
    }

    var isOver: Bool { state.withLock { $0.over } }
    var measured: Int { state.withLock { $0.measured } }
}

/// Closed-loop clients in this process against a `BenchCluster`, and a coordinator that
/// samples CPU, memory and progress around the measured window.
struct LoadRun {
    let plan: LoadPlan
    let cluster: BenchCluster

    enum Outcome: Sendable {
        case client(LatencyHistogram)
        case coordinator(LoadResult)
    }

    func run() async throws -> LoadResult {
        let window: LoadWindow
        if case .requests(let n) = plan.window { window = LoadWindow(target: n) } else { window = LoadWindow(target: nil) }
        let replicas = try await cluster.replicas()
        let pids = replicas.map(\.pid)
        let threads = ClientThreads()
        let nodes: [ClientNode]
        do { nodes = try await startClients(sharing: threads) } catch {
            await threads.shutdown()
            throw error
        }
        let signals = interruptions(window)
        defer {
            signals.forEach { $0.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        var histogram = LatencyHistogram()
        var result: LoadResult?
        do {
            try await withThrowingTaskGroup(of: Outcome.self) { group in
                for (j, node) in nodes.enumerated() {
                    group.addTask { .client(try await clientLoop(j, node, window)) }
                }
                group.addTask { .coordinator(try await coordinate(window, pids: pids, threads: threads)) }
                for try await outcome in group {
                    switch outcome {
                    case .client(let h): histogram.merge(h)
                    case .coordinator(let r): result = r
                    }
                }
            }
        } catch {
            for node in nodes { await node.close() }
            await threads.shutdown()
            throw error
        }
        for node in nodes { await node.close() }
        await threads.shutdown()
        if window.interrupted.load(ordering: .relaxed) { throw Failure("interrupted; every process the bench started is stopped") }
        guard var result else { throw Failure("the load ended without a measurement") }
        guard result.measuredRequests > 0 else { throw Failure("no request completed in the measured window; see \(cluster.runDirectory)/logs") }
        result.histogram = histogram
        return result
    }

    func startClients(sharing threads: ClientThreads) async throws -> [ClientNode] {
        let membership = cluster.membership
        var nodes: [ClientNode] = []
        do {
            for j in 0..<plan.clients {
                let id = membership.clients[j].id.rawValue
                let node = try ClientNode(membership: membership, key: try KeyFile.load("\(cluster.keysDirectory)/client-\(id).key"), sharing: threads)
                try await node.start(host: "127.0.0.1")
                nodes.append(node)
            }
        } catch {
            for node in nodes { await node.close() }
            throw Failure("cannot start client \(nodes.count): \(error)")
        }
        return nodes
    }

    /// SIGINT or SIGTERM ends the window early; the bench then stops what it started.
    func interruptions(_ window: LoadWindow) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { window.interrupted.store(true, ordering: .relaxed) }
            source.resume()
            return source
        }
    }

    /// One client: a put of `payloadBytes` to one of 64 keys of its own, one at a time,
    /// until the window is over. The store stays the same size, so replica memory that
    /// grows is not the application's data.
    func clientLoop(_ j: Int, _ node: ClientNode, _ window: LoadWindow) async throws -> LatencyHistogram {
        let clock = ContinuousClock()
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: plan.payloadBytes)
        var histogram = LatencyHistogram()
        var i = 0
        while !window.isOver {
            let operation = KeyValueOperation.put(key: Array("bench-\(j)-\(i % 64)".utf8), value: value).encoded()
            let start = clock.now
            do {
                _ = try await node.submit(operation, timeoutMilliseconds: plan.timeoutMilliseconds)
            } catch {
                _ = window.end()
                throw Failure("client \(j): \(error) (waited \(plan.timeoutMilliseconds) ms, --timeout-ms); see \(cluster.runDirectory)/logs")
            }
            let elapsed = clock.now - start
            let (counts, stop) = window.complete()
            if counts { histogram.record(elapsed) }
            if stop { break }
            i += 1
        }
        return histogram
    }

    /// Warm-up, then the window: CPU of every replica and of this process and the replicas'
    /// progress at both ends; their resident memory once a second from the start.
    func coordinate(_ window: LoadWindow, pids: [Int32?], threads: ClientThreads) async throws -> LoadResult {
        let clock = ContinuousClock()
        let loadStart = clock.now
        var samples: [MemorySample] = []
        var nextSample = loadStart
        func sampleMemory() {
            samples.append(MemorySample(
                seconds: seconds(clock.now - loadStart), requests: window.completed.load(ordering: .relaxed),
                residentKilobytes: pids.map { $0.flatMap { ProcFS.residentKilobytes(pid: $0) } }))
            nextSample = nextSample.advanced(by: .seconds(1))
        }
        func stopping() -> Bool { window.isOver || window.interrupted.load(ordering: .relaxed) }

        let measureAt = loadStart.advanced(by: plan.warmup)
        while clock.now < measureAt, !stopping() {
            if clock.now >= nextSample { sampleMemory() }
            try await Task.sleep(until: min(measureAt, nextSample), clock: clock)
        }
        let progressAtStart = (try? await cluster.replicas())?.compactMap(\.progress) ?? []
        let cpuAtStart = pids.map { $0.flatMap { ProcFS.cpuSeconds(pid: $0) } }
        let ownAtStart = OwnCPU.seconds()
        let checksAtStart = threads.signatureChecks
        let windowStart = clock.now
        window.begin()
        let startedAt = ISO8601DateFormatter().string(from: Date())
        Output.line("warm-up over after \(window.completed.load(ordering: .relaxed)) requests; measuring " + {
            switch plan.window {
            case .duration(let d): "for \(Int(seconds(d))) s"
            case .requests(let n): "until \(n) requests completed"
            }
        }())

        var nextProgress = windowStart.advanced(by: .seconds(10))
        while !stopping() {
            let now = clock.now
            if case .duration(let d) = plan.window, now >= windowStart.advanced(by: d) { break }
            if now >= nextSample { sampleMemory() }
            if now >= nextProgress {
                let measured = window.measured
                Output.line(String(format: "  %4.0f s: %d requests measured, %.0f/s", seconds(now - windowStart), measured, Double(measured) / seconds(now - windowStart)))
                nextProgress = nextProgress.advanced(by: .seconds(10))
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let measured = window.end()
        let windowEnd = clock.now
        let ownAtEnd = OwnCPU.seconds()
        let checksAtEnd = threads.signatureChecks
        let cpuAtEnd = pids.map { $0.flatMap { ProcFS.cpuSeconds(pid: $0) } }
        sampleMemory()
        let progressAtEnd = (try? await cluster.replicas())?.compactMap(\.progress) ?? []
        return LoadResult(
            histogram: LatencyHistogram(), measuredRequests: measured, windowSeconds: seconds(windowEnd - windowStart), startedAt: startedAt,
            replicaCPUSeconds: zip(cpuAtStart, cpuAtEnd).map { a, b in a.flatMap { a in b.map { $0 - a } } },
            clientCPUSeconds: ownAtEnd - ownAtStart, clientSignatureChecks: checksAtEnd - checksAtStart, progressAtStart: progressAtStart, progressAtEnd: progressAtEnd, memorySamples: samples)
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}
