import Foundation
import NIOCore
import NIOPosix
import PBFTCluster
public import PBFTCore
import PBFTCrypto
import PBFTRuntime
public import PBFTWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How `pbft launch` runs a cluster.
public struct LaunchOptions: Sendable {
    /// The run directory: keys (unless `keysDirectory`), per-replica cluster files, data,
    /// logs, `events.jsonl` and `launch.json`.
    public var runDirectory: String
    public var replicas: Int
    /// Client keys to generate with fresh keys.
    public var clients = 4
    /// Port of replica 0 in freshly generated keys; replica i gets base-port + i.
    public var basePort = 7000
    /// Use the keys and cluster file in this directory instead of the run directory's.
    public var keysDirectory: String?
    /// No fault proxy: replicas bind the cluster file's addresses themselves.
    public var direct = false
    /// Seeds the proxy's fault decisions.
    public var seed: UInt64 = 1
    /// Start replicas with `--allow-byzantine`.
    public var allowByzantine = false
    /// Passed to every replica (tick, timeouts, checkpoint interval, ...).
    public var replicaArguments: [String] = []
    /// Closed-loop load clients to run for the whole launch (0: none).
    public var loadClients = 0
    /// Seconds the load runs (the launch's duration, when it has one).
    public var loadSeconds: Double = 1_000_000
    /// UDP port of the launcher's control endpoint (0: any free port).
    public var controlPort = 0
    /// The `pbft` executable to start replicas and clients with.
    public var executable: String

    public init(runDirectory: String, replicas: Int, executable: String) {
        self.runDirectory = runDirectory
        self.replicas = replicas
        self.executable = executable
    }
}

/// A process the launcher started, as `status` shows it.
public enum ProcessState: String, Sendable {
    case running, paused
    /// Stopped gracefully on the operator's command.
    case stopped
    /// Killed with SIGKILL on the operator's command.
    case killed
    /// Ended on its own (crashed, or refused to start: see its log).
    case exited
    /// Removed from the membership by a reconfiguration, it left when the new epoch began.
    case retired
}

/// A started process. Foundation's `Process` is not Sendable; the launcher only touches it
/// from its own actor and its dedicated spawning thread.
final class Child: @unchecked Sendable {
    let process: Process
    let pid: Int32
    init(_ process: Process) {
        self.process = process
        pid = process.processIdentifier
    }
    var isRunning: Bool { process.isRunning }
}

/// Spawns, watches and stops the replica processes of one launch, owns their fault proxy,
/// and carries out operator-signed commands from `pbft ctl` (docs/faults.md).
///
/// Children are started from one long-lived thread (`spawner`), and each is told the
/// launcher's pid: the kernel kills them when that thread ends (`ParentWatch`), so nothing
/// is left behind even when the launcher is killed with SIGKILL, paused children included.
public actor Launcher {
    struct Slot {
        var child: Child?
        var state = ProcessState.stopped
        var starts = 0
        var byzantine = "off"
        var twin: Child?
        /// The membership its cluster file names (the epoch it joined, or the one in force
        /// when it was last restarted) and the epoch before.
        var joined: Membership
        var previous: Membership?
        /// The peers its running process reaches through their link sockets (the others at
        /// their public addresses, through the proxy's front sockets).
        var linked = Set<ReplicaID>()
        /// The epoch it last reported (its control commands are signed in it).
        var epoch: Epoch
    }

    public let options: LaunchOptions
    /// The membership of the epoch in force, as the replicas' status reports show it. Its
    /// epoch is the one commands to this launcher must be signed for.
    public internal(set) var membership: Membership {
        didSet { endpoint.withLock { $0.epoch = membership.epoch } }
    }
    /// Every membership this launch has known, by epoch (their keys verify replies).
    var memberships: [Epoch: Membership]
    /// The next epoch a reconfiguration decided, until a member reports being in it.
    var pending: PendingReconfiguration?
    /// Replicas a reconfiguration removed: their exit with status 0 is a retirement.
    var removing = Set<ReplicaID>()
    var reconfiguring = false
    public let events: EventLog
    public nonisolated let runDirectory: String
    public nonisolated let keysDirectory: String
    let operatorKey: KeyFile
    let proxy: FaultProxy?
    /// Where each replica (and its twin) listens.
    var privateAddresses: [ReplicaID: HostPort]
    var twinAddresses: [ReplicaID: HostPort]
    /// Talks to the replicas at their private addresses (past the proxy's faults) for the
    /// launcher's whole life (the runner polls status ten times a second: one socket and
    /// thread, not one per poll).
    let replicaControl: ControlClient
    let spawner = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var slots: [ReplicaID: Slot] = [:]
    var loadClient: Child?
    var faults = NetworkFaults()
    var controlSocket: DatagramSocket?
    public private(set) var controlAddress = HostPort(host: "127.0.0.1", port: 0)
    /// This launch's identity (launch.json `run_id`): commands for this launcher name it.
    public nonisolated let runID: RunID
    /// What the control endpoint decides and counts, on its socket's thread.
    nonisolated let endpoint: Mutex<ControlEndpoint>
    /// Control commands are checked against the operator's key, whatever epoch they name.
    nonisolated let operatorAuthenticator: Authenticator<Ed25519Verifier, OperatorKey>
    var endpointFlush: RepeatedTask?
    var shuttingDown = false
    /// Polls the replicas after a reconfiguration until its epoch begins.
    var watcher: Task<Void, Never>?

    // MARK: Starting

    /// Prepares the run directory (keys, per-replica cluster files), binds the proxy and the
    /// control endpoint, starts every replica and, if asked, the load, and writes `launch.json`.
    public static func start(_ options: LaunchOptions) async throws -> Launcher {
        let run = options.runDirectory
        let fm = FileManager.default
        for sub in ["", "/logs", "/data", "/cluster"] {
            try fm.createDirectory(atPath: run + sub, withIntermediateDirectories: true)
        }
        let keys = options.keysDirectory ?? run + "/keys"
        let clusterPath = keys + "/" + KeySet.clusterFileName
        let membership: Membership
        if fm.fileExists(atPath: clusterPath) {
            membership = try ClusterFile.load(clusterPath)
            guard membership.n == options.replicas else {
                throw FaultError("\(clusterPath) lists \(membership.n) replicas, not \(options.replicas); use another --dir or --replicas \(membership.n)")
            }
        } else if options.keysDirectory != nil {
            throw FaultError("\(clusterPath): no cluster file there (make one with pbft keygen)")
        } else {
            let keySet = try KeySet.generate(replicas: options.replicas, clients: options.clients, host: "127.0.0.1", basePort: options.basePort)
            _ = try keySet.write(to: keys, overwrite: false)
            membership = keySet.membership
        }
        for replica in membership.replicas where !["127.0.0.1", "localhost", "::1", "[::1]"].contains(replica.host) {
            throw FaultError("\(clusterPath): replica \(replica.id.rawValue) is at \(replica.host), not on this machine; launch runs every replica here")
        }
        let operatorKey = try KeyFile.load(keys + "/operator.key")
        guard operatorKey.principal == .operator, operatorKey.key.publicKey == membership.operatorKey else {
            throw FaultError("\(keys)/operator.key is not the operator key of \(clusterPath)")
        }
        let ids = membership.replicas.map(\.id)
        let front = Dictionary(uniqueKeysWithValues: membership.replicas.map { ($0.id, HostPort(host: $0.host, port: Int($0.port))) })

        var privateAddresses = front
        var twinAddresses: [ReplicaID: HostPort] = [:]
        var proxy: FaultProxy?
        if !options.direct {
            // Held while the proxy binds its own sockets, so none of them gets a replica's port.
            let reserved = try ReservedPorts(count: 2 * ids.count)
            for (index, id) in ids.enumerated() {
                privateAddresses[id] = HostPort(host: "127.0.0.1", port: reserved.ports[index])
                twinAddresses[id] = HostPort(host: "127.0.0.1", port: reserved.ports[ids.count + index])
            }
            proxy = try await FaultProxy.start(front: front, replicaAddresses: privateAddresses, twinAddresses: twinAddresses, seed: options.seed)
            reserved.release()
        }
        let events = try EventLog(path: run + "/events.jsonl")
        let launcher = try Launcher(
            options: options, membership: membership, events: events, keys: keys, operatorKey: operatorKey, proxy: proxy,
            privateAddresses: privateAddresses, twinAddresses: twinAddresses)
        do {
            try await launcher.begin()
        } catch {
            await launcher.shutdown()
            throw error
        }
        return launcher
    }

    init(options: LaunchOptions, membership: Membership, events: EventLog, keys: String, operatorKey: KeyFile, proxy: FaultProxy?,
         privateAddresses: [ReplicaID: HostPort], twinAddresses: [ReplicaID: HostPort]) throws {
        self.options = options
        self.membership = membership
        memberships = [membership.epoch: membership]
        self.events = events
        runDirectory = options.runDirectory
        keysDirectory = keys
        self.operatorKey = operatorKey
        self.proxy = proxy
        self.privateAddresses = privateAddresses
        self.twinAddresses = twinAddresses
        var random = SystemRandomNumberGenerator()
        let runID = RunID(high: random.next(), low: random.next())
        self.runID = runID
        operatorAuthenticator = Authenticator(verifier: Ed25519Verifier(), keys: OperatorKey(membership.operatorKey))
        endpoint = Mutex(ControlEndpoint(
            gate: ControlGate(target: .launcher(runID), startMicros: WallClock.microseconds() ?? 0, highMark: Timestamp(0)), epoch: membership.epoch))
        replicaControl = try ControlClient(membership: membership, operatorKey: operatorKey)
        for replica in membership.replicas { slots[replica.id] = Slot(joined: membership, epoch: membership.epoch) }
        replicaControl.update(keys: EpochKeys(membership), targets: Self.controlTargets(slots, privateAddresses))
    }

    /// Tells the control client every epoch's keys and where each replica is (its private
    /// address) and which epoch it is in.
    func updateControlTargets() {
        replicaControl.update(keys: EpochKeys(memberships), targets: Self.controlTargets(slots, privateAddresses))
    }

    static func controlTargets(_ slots: [ReplicaID: Slot], _ addresses: [ReplicaID: HostPort]) -> [ReplicaID: ControlClient.Target] {
        var targets: [ReplicaID: ControlClient.Target] = [:]
        for (id, slot) in slots {
            let address = addresses[id]!
            targets[id] = ControlClient.Target(host: address.host, port: address.port, epoch: slot.epoch)
        }
        return targets
    }

    func begin() async throws {
        try await bindControl()
        events.record("launch", [
            "replicas": membership.n, "f": membership.f, "direct": options.direct, "seed": options.seed,
            "allow_byzantine": options.allowByzantine, "control": controlAddress.description, "pid": Int(getpid()),
        ])
        for replica in membership.replicas { try await startReplica(replica.id, lostState: false) }
        if options.loadClients > 0 {
            let arguments = [
                "client", "--cluster", keysDirectory + "/" + KeySet.clusterFileName, "--keys", keysDirectory,
                "--clients", "\(options.loadClients)", "--duration", "\(options.loadSeconds)", "--parent-pid", "\(getpid())",
            ]
            loadClient = try await spawn(arguments, log: runDirectory + "/logs/clients.log")
            events.record("load_started", ["clients": options.loadClients, "pid": Int(loadClient!.pid)])
        }
        try writeLaunchFile()
    }

    /// The cluster file replica `id` (or its twin) reads: the membership of the epoch it
    /// joined, which every replica agrees on (public addresses: the proxy's front sockets),
    /// with routes that bind it at its private address and reach each of `linked` through
    /// the proxy's socket for their pair (any other replica at its public address). Without
    /// a proxy, the membership alone, for a replica that joined a later epoch.
    func writeClusterFile(for id: ReplicaID, twin: Bool, linked: Set<ReplicaID>) throws {
        let slot = slots[id]!
        var routes: [ReplicaID: ClusterFile.Route] = [:]
        if let proxy {
            let own = twin ? twinAddresses[id]! : privateAddresses[id]!
            routes[id] = ClusterFile.Route(host: own.host, port: UInt16(own.port))
            for peer in linked where peer != id {
                let address = proxy.linkAddress(id, peer)
                routes[peer] = ClusterFile.Route(host: address.host, port: UInt16(address.port))
            }
        }
        let path = clusterFilePath(id, twin: twin)
        try? FileManager.default.removeItem(atPath: path)
        try ClusterFile.write(slot.joined, previous: slot.previous, routes: routes, to: path, overwrite: true)
    }

    nonisolated func clusterFilePath(_ id: ReplicaID, twin: Bool) -> String {
        runDirectory + "/cluster/" + (twin ? "twin-" : "replica-") + "\(id.rawValue).toml"
    }

    /// The cluster file replica `id` starts from: its own under `cluster/`, except for the
    /// first replicas of a launch without a proxy, which read the public one.
    func startingClusterFile(_ id: ReplicaID, twin: Bool) -> String {
        options.direct && slots[id]!.previous == nil ? keysDirectory + "/" + KeySet.clusterFileName : clusterFilePath(id, twin: twin)
    }

    public nonisolated func dataDirectory(_ id: ReplicaID, twin: Bool = false) -> String {
        runDirectory + "/data/r\(id.rawValue)" + (twin ? "-twin" : "")
    }

    public nonisolated func logPath(_ id: ReplicaID, twin: Bool = false) -> String {
        runDirectory + "/logs/" + (twin ? "twin-" : "replica-") + "\(id.rawValue).log"
    }

    /// The public address of replica `id` (in the membership of the epoch it joined).
    func publicAddress(_ id: ReplicaID) -> String {
        let r = slots[id]!.joined.replica(id)!
        return "\(r.host):\(r.port)"
    }

    func writeLaunchFile() throws {
        let replicas: [[String: Any]] = slots.keys.sorted().map { id in
            [
                "id": Int(id.rawValue), "address": publicAddress(id), "private": privateAddresses[id]!.description,
                "log": logPath(id), "data": dataDirectory(id), "cluster": startingClusterFile(id, twin: false),
                "joined_epoch": Int(slots[id]!.joined.epoch.rawValue),
            ]
        }
        let object: [String: Any] = [
            "pid": Int(getpid()), "control": ["host": controlAddress.host, "port": controlAddress.port],
            "run": runDirectory, "run_id": runID.description, "keys": keysDirectory, "cluster": keysDirectory + "/" + KeySet.clusterFileName,
            "direct": options.direct, "events": events.path, "replicas": replicas,
            "epoch": Int(membership.epoch.rawValue), "members": membership.replicas.map { Int($0.id.rawValue) },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: runDirectory + "/launch.json"), options: .atomic)
    }

    // MARK: Processes

    /// Starts `pbft ARGUMENTS` from the spawning thread with output appended to `log`.
    func spawn(_ arguments: [String], log: String) async throws -> Child {
        let executable = options.executable
        let child = try await spawner.next().submit {
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try handle.seekToEnd()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
            try? handle.close()
            return Child(process)
        }.get()
        return child
    }

    func replicaArguments(_ id: ReplicaID, twin: Bool, lostState: Bool) -> [String] {
        var arguments = [
            "replica", "--cluster", startingClusterFile(id, twin: twin),
            "--id", "\(id.rawValue)", "--key", keysDirectory + "/replica-\(id.rawValue).key", "--data", dataDirectory(id, twin: twin),
            "--exit-with-parent", "--parent-pid", "\(getpid())",
        ]
        if options.allowByzantine { arguments.append("--allow-byzantine") }
        if lostState { arguments.append("--lost-state") }
        return arguments + options.replicaArguments
    }

    func startReplica(_ id: ReplicaID, lostState: Bool) async throws {
        if slots[id]!.starts > 0, membership.epoch > slots[id]!.joined.epoch, membership.replica(id) != nil,
           let previous = memberships[Epoch(membership.epoch.rawValue - 1)] {
            // Restarted after reconfigurations: it starts from the epoch in force, whose keys
            // verify what the others send it (and the stable proof it may have to fetch).
            slots[id]!.joined = membership
            slots[id]!.previous = previous
        }
        if let proxy {
            // Its file routes it to every replica the proxy has through their links.
            let linked = Set(slots.keys).subtracting([id])
            try writeClusterFile(for: id, twin: false, linked: linked)
            slots[id]!.linked = linked
            await proxy.setRoutes(of: id, linked: linked)
        } else if slots[id]!.previous != nil {
            try writeClusterFile(for: id, twin: false, linked: [])
        }
        let child = try await spawn(replicaArguments(id, twin: false, lostState: lostState), log: logPath(id))
        slots[id]!.child = child
        slots[id]!.state = .running
        slots[id]!.starts += 1
        slots[id]!.byzantine = "off"
        watch(child, replica: id, twin: false)
        events.record("start", ["replica": Int(id.rawValue), "pid": Int(child.pid), "lost_state": lostState, "start": slots[id]!.starts])
    }

    /// Records the process's end when it was not the operator's doing.
    nonisolated func watch(_ child: Child, replica id: ReplicaID, twin: Bool) {
        child.process.terminationHandler = { [weak self] process in
            let status = process.terminationStatus
            let signalled = process.terminationReason == .uncaughtSignal
            Task { await self?.ended(child.pid, replica: id, twin: twin, status: status, signalled: signalled) }
        }
    }

    func ended(_ pid: Int32, replica id: ReplicaID, twin: Bool, status: Int32, signalled: Bool) {
        guard !shuttingDown else { return }
        let how: [String: Any] = signalled ? ["signal": Int(status)] : ["status": Int(status)]
        if twin {
            guard slots[id]?.twin?.pid == pid else { return }
            slots[id]!.twin = nil
            Task { await proxy?.setTwin(id, running: false) }
            events.record("exited", how.merging(["replica": Int(id.rawValue), "twin": true, "pid": Int(pid)]) { a, _ in a })
            return
        }
        guard slots[id]?.child?.pid == pid, let state = slots[id]?.state, state == .running || state == .paused else { return }
        if removing.contains(id), !signalled, status == 0 {
            // It left by itself when the epoch that no longer has it began.
            slots[id]!.state = .retired
            events.record("replica_retired", ["replica": Int(id.rawValue), "pid": Int(pid), "epoch": Int(membership.epoch.rawValue)])
            try? writeLaunchFile()
            return
        }
        slots[id]!.state = .exited
        events.record("exited", how.merging(["replica": Int(id.rawValue), "pid": Int(pid), "log": logPath(id)]) { a, _ in a })
    }

    /// Waits up to `seconds` for the child to end; true if it did.
    func waitForExit(_ child: Child, seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        while child.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        return !child.isRunning
    }

    /// Ends a child: SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `grace` seconds.
    func terminate(_ child: Child, grace: Double) async {
        guard child.isRunning else { return }
        kill(child.pid, SIGCONT)
        kill(child.pid, SIGTERM)
        if await !waitForExit(child, seconds: grace) {
            kill(child.pid, SIGKILL)
            _ = await waitForExit(child, seconds: 5)
        }
    }

    /// Stops everything this launch started and closes the proxy and control endpoint.
    public func shutdown() async {
        guard !shuttingDown else { return }
        shuttingDown = true
        var children = slots.values.compactMap(\.child) + slots.values.compactMap(\.twin)
        if let loadClient { children.append(loadClient) }
        await withTaskGroup(of: Void.self) { group in
            for child in children { group.addTask { await self.terminate(child, grace: 5) } }
        }
        _ = try? await controlSocket?.close().get()
        endpointFlush?.cancel()
        await watcher?.value
        await replicaControl.close()
        await proxy?.close()
        try? await spawner.shutdownGracefully()
        events.record("launch_stopped")
    }

    // MARK: Commands

    /// Carries out one command and returns whether it was, with a line (or status JSON) for the operator.
    public func handle(_ request: LaunchRequest) async -> (accepted: Bool, body: String) {
        do {
            let body = try await carryOut(request)
            return (true, body)
        } catch {
            let reason = (error as? FaultError)?.description ?? "\(error)"
            events.record("refused", ["verb": request.verb.rawValue, "reason": reason])
            return (false, reason)
        }
    }

    /// The replicas commands may name: every one this launch started, except those retired.
    var ids: [ReplicaID] { slots.keys.filter { slots[$0]!.state != .retired }.sorted() }

    func carryOut(_ request: LaunchRequest) async throws -> String {
        switch request.verb {
        case .status:
            return try await statusJSON()
        case .kill, .stop, .pause, .resume, .restart:
            let id = try await resolve(request.target(replicas: ids))
            return try await process(request.verb, id, wipe: request.wipe ?? false)
        case .byzantine:
            let id = try await resolve(request.target(replicas: ids))
            guard let mode = request.mode, !mode.isEmpty else { throw FaultError("byzantine: name a mode or 'off'") }
            return try await byzantine(id, mode: mode)
        case .twin:
            let id = try await resolve(request.target(replicas: ids))
            return try await twin(id, stop: request.stopTwin ?? false, copyData: request.copyData ?? false)
        case .fault:
            let proxy = try needProxy()
            let fault = try request.packetFault()
            var scope: String
            switch (request.replica, request.from, request.to) {
            case (nil, nil, nil):
                faults.everywhere = fault.applied(to: faults.everywhere)
                scope = "all traffic"
            case (let replica?, nil, nil):
                let id = try await resolve(ReplicaTarget(replica, replicas: ids))
                faults.replicas[id] = fault.applied(to: faults.replicas[id] ?? PacketFaults())
                scope = "r\(id.rawValue) in and out"
            case (nil, let from?, let to?):
                let a = try await resolve(ReplicaTarget(from, replicas: ids))
                let b = try await resolve(ReplicaTarget(to, replicas: ids))
                guard a != b else { throw FaultError("--from and --to name the same replica \(a.rawValue)") }
                let link = Link(from: a, to: b)
                faults.links[link] = fault.applied(to: faults.links[link] ?? PacketFaults())
                scope = "\(link)"
            default:
                throw FaultError("name one replica, or both --from and --to, or neither (all traffic)")
            }
            await proxy.setFaults(faults)
            events.record("fault", ["fault": request.fault ?? "", "value": request.value ?? 0, "jitter": request.jitter ?? 0, "scope": scope, "faults": faults.summaryLines])
            return "\(scope): \(fault.applied(to: PacketFaults()).summary)"
        case .partition:
            let proxy = try needProxy()
            guard let named = request.groups, !named.isEmpty else { throw FaultError("partition: name the groups, e.g. 0,1/2,3") }
            var groups: [[ReplicaID]] = []
            for group in named {
                var resolved: [ReplicaID] = []
                for text in group { resolved.append(try await resolve(ReplicaTarget(text, replicas: ids))) }
                groups.append(resolved)
            }
            let partition = try Partition(groups: groups, oneWay: request.oneWay ?? false, replicas: ids)
            faults.partition = partition
            await proxy.setFaults(faults)
            events.record("partition", ["groups": partition.groups.map { $0.map { Int($0.rawValue) } }, "one_way": partition.oneWay])
            return "partition \(partition)"
        case .addReplica, .removeReplica, .replaceReplica, .setF:
            return try await reconfigure(request)
        case .heal:
            let proxy = try needProxy()
            let before = faults.summaryLines
            faults = NetworkFaults()
            await proxy.setFaults(faults)
            events.record("heal", ["cleared": before])
            return before.isEmpty ? "no network fault was in force" : "healed: " + before.joined(separator: "; ")
        }
    }

    func needProxy() throws -> FaultProxy {
        guard let proxy else { throw FaultError("this launch runs --direct, without the fault proxy: network faults and twins need it") }
        return proxy
    }

    func process(_ verb: LaunchRequest.Verb, _ id: ReplicaID, wipe: Bool) async throws -> String {
        let slot = slots[id]!
        let alive = slot.state == .running || slot.state == .paused
        switch verb {
        case .kill:
            guard alive, let child = slot.child else { throw FaultError("replica \(id.rawValue) is not running (\(slot.state.rawValue))") }
            slots[id]!.state = .killed
            kill(child.pid, SIGKILL)
            _ = await waitForExit(child, seconds: 5)
            events.record("kill", ["replica": Int(id.rawValue), "pid": Int(child.pid), "signal": "SIGKILL"])
            return "killed replica \(id.rawValue) (pid \(child.pid), SIGKILL)"
        case .stop:
            guard alive, let child = slot.child else { throw FaultError("replica \(id.rawValue) is not running (\(slot.state.rawValue))") }
            slots[id]!.state = .stopped
            await terminate(child, grace: 10)
            events.record("stop", ["replica": Int(id.rawValue), "pid": Int(child.pid), "signal": "SIGTERM"])
            return "stopped replica \(id.rawValue) (pid \(child.pid), SIGTERM)"
        case .pause:
            guard slot.state == .running, let child = slot.child else { throw FaultError("replica \(id.rawValue) is not running (\(slot.state.rawValue))") }
            return signal(id, child, SIGSTOP, "SIGSTOP", event: "pause", becoming: .paused, done: "paused")
        case .resume:
            guard slot.state == .paused, let child = slot.child else { throw FaultError("replica \(id.rawValue) is not paused (\(slot.state.rawValue))") }
            return signal(id, child, SIGCONT, "SIGCONT", event: "resume", becoming: .running, done: "resumed")
        case .restart:
            if alive, let child = slot.child {
                slots[id]!.state = .killed
                kill(child.pid, SIGKILL)
                guard await waitForExit(child, seconds: 5) else { throw FaultError("replica \(id.rawValue) (pid \(child.pid)) did not die on SIGKILL") }
            }
            if wipe { try? FileManager.default.removeItem(atPath: dataDirectory(id)) }
            try await startReplica(id, lostState: wipe)
            events.record("restart", ["replica": Int(id.rawValue), "wipe": wipe, "pid": Int(slots[id]!.child!.pid)])
            return "restarted replica \(id.rawValue) (pid \(slots[id]!.child!.pid))" + (wipe ? " with its data wiped (--lost-state)" : "")
        default:
            throw FaultError("\(verb.rawValue) is not a process command")
        }
    }

    /// Sends a signal that needs no waiting (pause, resume), records it and the new state.
    func signal(_ id: ReplicaID, _ child: Child, _ number: Int32, _ name: String, event: String, becoming state: ProcessState, done: String) -> String {
        kill(child.pid, number)
        slots[id]!.state = state
        events.record(event, ["replica": Int(id.rawValue), "pid": Int(child.pid), "signal": name])
        return "\(done) replica \(id.rawValue) (pid \(child.pid), \(name))"
    }

    func byzantine(_ id: ReplicaID, mode: String) async throws -> String {
        guard slots[id]!.state == .running else { throw FaultError("replica \(id.rawValue) is not running (\(slots[id]!.state.rawValue))") }
        let replies = try await replicaControl.send(.byzantine, argument: Array(mode.utf8), to: [id], timeoutMilliseconds: 3_000)
        guard let reply = replies[id] else { throw FaultError("replica \(id.rawValue) did not answer") }
        let body = String(decoding: reply.body, as: UTF8.self)
        events.record(reply.accepted ? "byzantine" : "byzantine_refused", ["replica": Int(id.rawValue), "mode": mode, "reply": body])
        guard reply.accepted else { throw FaultError("replica \(id.rawValue): \(body)") }
        slots[id]!.byzantine = mode
        return "replica \(id.rawValue): \(body)"
    }

    func twin(_ id: ReplicaID, stop: Bool, copyData: Bool) async throws -> String {
        let proxy = try needProxy()
        if stop {
            guard let twin = slots[id]!.twin else { throw FaultError("replica \(id.rawValue) has no twin running") }
            slots[id]!.twin = nil
            await proxy.setTwin(id, running: false)
            await terminate(twin, grace: 5)
            events.record("twin_stopped", ["replica": Int(id.rawValue), "pid": Int(twin.pid)])
            return "stopped the twin of replica \(id.rawValue) (pid \(twin.pid))"
        }
        guard slots[id]!.twin == nil else { throw FaultError("replica \(id.rawValue) already has a twin (pid \(slots[id]!.twin!.pid))") }
        let data = dataDirectory(id, twin: true)
        try? FileManager.default.removeItem(atPath: data)
        if copyData, FileManager.default.fileExists(atPath: dataDirectory(id)) {
            try FileManager.default.copyItem(atPath: dataDirectory(id), toPath: data)
        }
        try writeClusterFile(for: id, twin: true, linked: slots[id]!.linked)
        await proxy.setTwin(id, running: true)
        let child = try await spawn(replicaArguments(id, twin: true, lostState: false), log: logPath(id, twin: true))
        slots[id]!.twin = child
        watch(child, replica: id, twin: true)
        events.record("twin", ["replica": Int(id.rawValue), "pid": Int(child.pid), "copy_data": copyData])
        return "started a twin of replica \(id.rawValue) (pid \(child.pid), same key and id" + (copyData ? ", a copy of its data)" : ", empty data)")
    }

    // MARK: Status and the primary

    /// Each running replica's own status report (epoch, view, progress, counters), by id.
    /// Notes the epoch each reports, and whether the epoch a reconfiguration decided began.
    func replicaStatuses() async -> [ReplicaID: [String: Any]] {
        let running = ids.filter { slots[$0]!.state == .running }
        guard !running.isEmpty, let replies = try? await replicaControl.send(.status, to: running, timeoutMilliseconds: 1_000)
        else { return [:] }
        var out: [ReplicaID: [String: Any]] = [:]
        for (id, reply) in replies where reply.accepted {
            if let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] { out[id] = object }
        }
        observeEpochs(out)
        return out
    }

    /// What the running replicas report now, for runners that watch protocol events.
    public func snapshot() async -> ClusterSnapshot {
        let statuses = await replicaStatuses()
        var replicas: [ClusterSnapshot.Replica] = []
        for id in slots.keys.sorted() {
            let status = statuses[id]
            func number(_ key: String) -> UInt64? { (status?[key] as? NSNumber)?.uint64Value }
            replicas.append(ClusterSnapshot.Replica(
                id: id, state: slots[id]!.state, view: number("view"), viewActive: (status?["view_active"] as? Bool) ?? false,
                lastExecuted: number("last_executed"), stableCheckpoint: number("low_water_mark"),
                recovering: (status?["recovering"] as? Bool) ?? false, epoch: number("epoch"),
                joining: (status?["joining"] as? Bool) ?? false, member: membership.replica(id) != nil,
                members: (status?["members"] as? [NSNumber])?.map { ReplicaID($0.uint32Value) },
                retired: (status?["retired"] as? Bool) ?? false,
                nextEpoch: ((status?["next_epoch"] as? [String: Any])?["epoch"] as? NSNumber)?.uint64Value))
        }
        return ClusterSnapshot(replicas: replicas, primary: currentPrimary(statuses), epoch: membership.epoch.rawValue, f: membership.f)
    }

    /// The primary of the view most running replicas of the newest epoch are in (a replica
    /// changing views, joining or retired does not count; views restart in each epoch).
    func currentPrimary(_ statuses: [ReplicaID: [String: Any]]) -> ReplicaID? {
        let serving = statuses.values.filter { ($0["joining"] as? Bool) != true && ($0["retired"] as? Bool) != true }
        let newest = serving.compactMap { ($0["epoch"] as? NSNumber)?.uint64Value }.max() ?? 0
        var votes: [UInt64: (count: Int, primary: UInt32)] = [:]
        for status in serving where ((status["epoch"] as? NSNumber)?.uint64Value ?? 0) == newest {
            guard let view = (status["view"] as? NSNumber)?.uint64Value, (status["view_active"] as? Bool) != false,
                  let primary = (status["primary"] as? NSNumber)?.uint32Value
            else { continue }
            votes[view, default: (0, primary)].count += 1
        }
        guard let best = votes.max(by: { ($0.value.count, $0.key) < ($1.value.count, $1.key) }) else { return nil }
        return ReplicaID(best.value.primary)
    }

    func resolve(_ target: ReplicaTarget) async throws -> ReplicaID {
        switch target {
        case .id(let id): return id
        case .primary:
            guard let id = currentPrimary(await replicaStatuses()) else {
                throw FaultError("cannot tell which replica is primary: no running replica answered in an active view")
            }
            return id
        }
    }

    func statusJSON() async throws -> String {
        let statuses = await replicaStatuses()
        let replicas: [[String: Any]] = slots.keys.sorted().map { id in
            let slot = slots[id]!
            var entry: [String: Any] = [
                "id": Int(id.rawValue), "state": slot.state.rawValue, "starts": slot.starts, "byzantine": slot.byzantine,
                "address": publicAddress(id), "private": privateAddresses[id]!.description, "member": membership.replica(id) != nil,
            ]
            if let child = slot.child, slot.state == .running || slot.state == .paused { entry["pid"] = Int(child.pid) }
            if let twin = slot.twin { entry["twin_pid"] = Int(twin.pid) }
            if let status = statuses[id] { entry["status"] = status }
            return entry
        }
        var object: [String: Any] = [
            "run": runDirectory, "direct": options.direct, "replicas": replicas, "faults": faults.summaryLines,
            "rejected_controls": endpoint.withLock { $0.rejectedTotal }, "control": endpoint.withLock { $0.counts }.json,
            "epoch": Int(membership.epoch.rawValue), "n": membership.n, "f": membership.f, "members": membership.replicas.map { Int($0.id.rawValue) },
        ]
        if let pending { object["next_epoch"] = ["epoch": Int(pending.membership.epoch.rawValue), "answer": pending.answer] }
        if let primary = currentPrimary(statuses) { object["primary"] = Int(primary.rawValue) }
        if let proxy {
            let c = await proxy.currentCounters()
            object["proxy"] = [
                "received": c.received, "forwarded": c.forwarded, "dropped": c.dropped, "blocked": c.blocked, "delayed": c.delayed,
                "duplicated": c.duplicated, "reordered": c.reordered, "corrupted": c.corrupted, "unknown_source": c.unknownSource, "sessions": c.sessions,
            ]
        }
        if let loadClient { object["load_pid"] = Int(loadClient.pid) }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: The control endpoint

    /// Binds the control endpoint. Each datagram is judged on the socket's thread (no task
    /// per datagram): one that is not an operator's control command, or that the gate
    /// refuses, is counted and reported at most once per reason per second; only an accepted
    /// command reaches the actor.
    func bindControl() async throws {
        let loop = spawner.next()
        let socket = try await DatagramSocket.bind(on: loop, host: "127.0.0.1", port: options.controlPort) { [weak self] bytes, source in
            self?.received(bytes, from: source)
        }.get()
        controlSocket = socket
        controlAddress = HostPort(host: "127.0.0.1", port: socket.localAddress.port ?? 0)
        endpointFlush = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            guard let self else { return }
            let due = endpoint.withLock { $0.lines.due(nowMicros: WallClock.microseconds() ?? 0) }
            for (reason, count) in due { events.record("control_rejected", ["reason": reason, "count": count]) }
        }
    }

    /// On the socket's thread: decode, the gate's checks on the command's fields, the
    /// signature (against the operator's key, whatever epoch it names), then the epoch.
    nonisolated func received(_ bytes: [UInt8], from source: SocketAddress) {
        let now = WallClock.microseconds() ?? 0
        // Commands fit in one datagram: fragments are not reassembled here.
        guard bytes.first == DatagramKind.whole.rawValue else { return reject("not_whole_datagram", now: now) }
        let frame: Frame
        do { frame = try Frame.decode(Array(bytes.dropFirst())) } catch { return reject("malformed", now: now) }
        guard case .control(let control) = frame.envelope.message else { return reject("not_a_command", now: now) }
        if let reason = endpoint.withLock({ state -> ControlGate.Refusal? in
            let reason = state.gate.precheck(control, nowMicros: now)
            if let reason { state.gate.count(reason) }
            return reason
        }) {
            return reject(reason.rawValue, now: now, counted: true)
        }
        do { _ = try operatorAuthenticator.authenticate(frame) } catch {
            return reject("bad_signature", now: now)
        }
        let signedFor = frame.envelope.epoch
        let (verdict, epoch) = endpoint.withLock { state in
            (state.gate.admit(control, signedFor: signedFor, epoch: state.epoch, nowMicros: now), state.epoch)
        }
        switch verdict {
        case .refuse(let reason, let answer):
            reject(reason.rawValue, now: now, counted: true)
            guard answer else { return }
            let body = "refused: signed for epoch \(signedFor.rawValue); this launch is in epoch \(epoch.rawValue)"
            Task { await self.reply(control, outcome: .wrongEpoch, body: body, signedFor: signedFor, to: source) }
        case .accept:
            Task {
                let (accepted, body) = await self.onControl(control)
                await self.reply(control, outcome: accepted ? .done : .refused, body: body, signedFor: signedFor, to: source)
            }
        }
    }

    /// Counts a rejected datagram (the gate counts its own refusals) and records a
    /// `control_rejected` event if none went out for this reason in the last second.
    nonisolated func reject(_ reason: String, now: UInt64, counted: Bool = false) {
        let report = endpoint.withLock { state -> Int? in
            if !counted { state.rejected[reason, default: 0] += 1 }
            return state.lines.note(reason, nowMicros: now)
        }
        if let report { events.record("control_rejected", ["reason": reason, "count": report]) }
    }

    /// An accepted command; a refusal here (not a launcher command, one that does not parse)
    /// is answered: the command was the operator's and fresh.
    func onControl(_ control: Control) async -> (Bool, String) {
        guard control.command == .launcher else { return (false, "refused: the launcher takes 'launcher' commands; '\(control.command)' goes to a replica") }
        let request: LaunchRequest
        do { request = try JSONDecoder().decode(LaunchRequest.self, from: Data(control.argument)) } catch {
            return (false, "refused: not a launcher command (\(error))")
        }
        return await handle(request)
    }

    /// Signed with the operator's key in the epoch the command was signed for, so the sender
    /// can verify it; `epoch` in the reply is this launch's.
    func reply(_ control: Control, outcome: ControlReply.Outcome, body: String, signedFor: Epoch, to address: SocketAddress) {
        guard let socket = controlSocket else { return }
        var bytes = Array(body.utf8)
        if bytes.count > WireLimits.default.controlBytesMax { bytes = Array(bytes.prefix(WireLimits.default.controlBytesMax)) }
        let reply = ControlReply(timestamp: control.timestamp, outcome: outcome, epoch: membership.epoch, body: bytes)
        let envelope = Envelope.seal(.controlReply(reply), epoch: signedFor, signer: operatorKey.signer)
        for datagram in DatagramCodec.datagrams(for: Frame(envelope: envelope).encoded(), messageID: control.timestamp.rawValue) {
            socket.send(datagram, to: address)
        }
    }
}

/// The launcher's control endpoint: the gate (this run, the launcher's epoch, fresh and
/// newer than the last accepted; docs/faults.md, *Control security*) and the counts of
/// what it rejected. The launcher needs no durable high mark: a launcher started again draws
/// a new run id, which every command recorded before names wrongly.
struct ControlEndpoint: Sendable {
    var gate: ControlGate
    /// The epoch in force as the launcher knows it (`Launcher.membership`).
    var epoch: Epoch
    /// Datagrams rejected before the gate, by reason.
    var rejected: [String: Int] = [:]
    var lines = RateLimitedCounts<String>()

    var rejectedTotal: Int { rejected.values.reduce(0, +) + gate.refusedTotal }

    /// Reasons the endpoint rejects a datagram for before the gate sees a command.
    static let reasons = ["not_whole_datagram", "malformed", "not_a_command", "bad_signature"]

    /// What status reports: commands accepted, and refusals by every reason (the endpoint's
    /// and the gate's).
    struct Counts: Sendable {
        var accepted: Int
        var refused: [String: Int]
        var highMark: UInt64
        /// `{"accepted":N,"refused":{reason:N,...},"high_mark":T}`.
        var json: [String: Any] { ["accepted": accepted, "refused": refused, "high_mark": highMark] }
    }

    var counts: Counts {
        var refused: [String: Int] = [:]
        for reason in Self.reasons { refused[reason] = rejected[reason, default: 0] }
        for reason in ControlGate.Refusal.allCases { refused[reason.rawValue] = gate.refused(reason) }
        return Counts(accepted: gate.acceptedCount, refused: refused, highMark: gate.highMark.rawValue)
    }
}

/// The replicas as a runner sees them at one moment.
public struct ClusterSnapshot: Sendable {
    public struct Replica: Sendable {
        public let id: ReplicaID
        public let state: ProcessState
        /// Nil when the replica did not answer.
        public let view: UInt64?
        public let viewActive: Bool
        public let lastExecuted: UInt64?
        public let stableCheckpoint: UInt64?
        public let recovering: Bool
        /// The epoch it reports; joining: it has not yet installed the state its epoch starts from.
        public let epoch: UInt64?
        public let joining: Bool
        /// A member of the epoch in force (the launcher's view).
        public let member: Bool
        /// The members of the epoch it reports; nil when it did not answer.
        public let members: [ReplicaID]?
        /// It left the membership and stopped taking part.
        public let retired: Bool
        /// An epoch a reconfiguration decided that it has not entered yet.
        public let nextEpoch: UInt64?
    }

    /// Every replica the launch started, retired ones included.
    public let replicas: [Replica]
    /// The primary of the view most answering replicas of the newest epoch are in.
    public let primary: ReplicaID?
    /// The epoch in force and its f, as the launcher knows them.
    public let epoch: UInt64
    public let f: Int

    /// The view most answering replicas of the newest epoch are in (active), if any.
    public var view: UInt64? {
        let newest = replicas.filter { !$0.joining }.compactMap(\.epoch).max()
        let views = replicas.filter { $0.viewActive && !$0.joining && $0.epoch == newest }.compactMap(\.view)
        return Dictionary(grouping: views, by: { $0 }).max { ($0.value.count, $0.key) < ($1.value.count, $1.key) }?.key
    }

    /// The newest epoch a serving replica reports.
    public var newestEpoch: UInt64? { replicas.filter { !$0.joining }.compactMap(\.epoch).max() }
}
