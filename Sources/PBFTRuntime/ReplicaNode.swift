public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import PBFTCluster
import PBFTCore
import PBFTByzantine
import PBFTCrypto
import PBFTKeyValue
import PBFTStorage
public import PBFTWire

/// How a replica process runs: files, timing, protocol bounds.
public struct ReplicaOptions: Sendable {
    public var clusterPath: String
    public var id: ReplicaID
    public var keyPath: String
    public var dataDirectory: String
    /// One tick of the core's clock.
    public var tickMilliseconds: Int = 10
    /// Sync the write-ahead log before dependent sends (off only to measure its cost).
    public var syncLog = true
    public var checkpointInterval = 64
    public var logWindow = 128
    public var batchSizeMax = 64
    /// Sequence numbers the primary has assigned but not yet executed, at most. Requests that
    /// arrive while that many are in flight wait and go out together: the fewer, the larger
    /// the batches under load (fewer signatures per request), the more a lone request waits.
    public var sequencesInFlightMax = ReplicaOptions.defaultSequencesInFlight
    public var viewChangeTimeoutTicks = ReplicaOptions.defaultViewChangeTimeoutTicks
    public var statusIntervalTicks = 10
    /// The data directory was lost: rejoin under the amnesia rule (docs/runtime.md).
    public var lostState = false
    /// Stop when the parent process goes away (launchers and tests: no orphans).
    public var exitWithParent = false
    /// Obey `ctl byzantine` commands (experiments only).
    public var allowByzantine = false
    /// Threads that verify signatures (0: the host's cores over the replicas at this
    /// replica's address, at most 4; 1: the socket's loop verifies, no other thread). Frames
    /// from one sender always go to the same thread, so their order is kept.
    public var verifierThreads = 0

    /// The defaults the command line, the launcher and experiments share.
    public static let defaultSequencesInFlight = 1
    public static let defaultViewChangeTimeoutTicks = 80

    /// How long an incomplete fragmented frame is kept: 30 s, so that a 32 MiB VIEW-CHANGE
    /// or NEW-VIEW still completes over a slow link (3 s at 100 Mbit/s, more under loss).
    /// docs/transport.md, "In the processes".
    public static let fragmentTimeoutMilliseconds = 30_000

    /// The replica's reassembly limits: fragments come only from replicas (the shell drops
    /// any other sender's before reassembly), so at most `replicasMax` senders; an
    /// incomplete frame is kept `fragmentTimeoutMilliseconds`, and never fewer ticks than
    /// the default.
    public func reassemblyLimits(replicasMax: Int) -> ReassemblyLimits {
        let ticks = max(Int(ReassemblyLimits.default.timeoutTicks), Self.fragmentTimeoutMilliseconds / max(1, tickMilliseconds))
        return ReassemblyLimits(sendersMax: replicasMax, timeoutTicks: UInt64(ticks))
    }

    public init(clusterPath: String, id: ReplicaID, keyPath: String, dataDirectory: String) {
        self.clusterPath = clusterPath
        self.id = id
        self.keyPath = keyPath
        self.dataDirectory = dataDirectory
    }
}

/// What the replica counts about its traffic, beyond the core's own counters.
public struct TrafficCounters: Sendable {
    public var datagramsReceived = 0
    public var framesReceived = 0
    public var malformed = 0
    public var unknownSigner = 0
    public var badSignature = 0
    public var datagramsDropped = 0
    public var framesSent = 0
    public var datagramsSent = 0
    /// Of the datagrams sent: pieces of frames too large for one, and bundles of several frames.
    public var fragmentsSent = 0
    public var bundlesSent = 0
    /// Frames the socket's loop checked itself instead of handing them to a verifier thread.
    public var checkedInline = 0
    /// Votes dropped before their signatures were checked: their certificate was complete.
    public var votesUnchecked = 0
}

/// What the receiving thread owns: reassembly and the counts of what it received and
/// rejected. Guarded by a mutex because status reports read the counts from the core's thread.
struct ReceiveState {
    var reassembler: Reassembler
    /// Keys of the epochs the core accepts, and the addresses of their replicas: both change
    /// when an epoch does (the core's loop replaces them).
    var authenticator: Authenticator<Ed25519Verifier, EpochKeys>
    var peerAddresses = Set<String>()
    var ticks: UInt64 = 0
    var accepting = true
    var counters = TrafficCounters()
}

/// A replica process: the core over UDP, with its write-ahead log, checkpoint store and
/// execution log in the data directory.
///
/// Threads: the socket's loop reassembles each datagram, steps the core with what checked
/// out and carries out its actions in order, syncing the log once for everything stepped
/// since the last sync before the sends that follow a `.persist` (group commit). Signature
/// checks, the costliest work per message, run on verifier loops (by sender) when the
/// replica has cores of its own: then they are spread over those cores and only small
/// frames reaching an idle replica are checked on the socket's loop (see `received`). When
/// the host runs more replicas than it has cores (a cluster on one machine), the hops
/// between threads cost more than the parallel checks gain: the socket's loop checks
/// everything itself (measured at n = 4 on two cores: 17% less replica CPU per request).
public final class ReplicaNode: @unchecked Sendable {
    public let options: ReplicaOptions
    /// The membership the cluster file names (the replica's address comes from it).
    let membership: Membership
    /// Where this process reaches replicas (or binds) when not at their membership address.
    let routes: [ReplicaID: ClusterFile.Route]
    let configuration: Configuration
    var replica: Replica<KeyValueStore>
    let log: WriteAheadLog
    let checkpoints: CheckpointStore
    let executionLog: ExecutionLog
    /// Conflicting signed messages received (evidence.jsonl), at most one pair per signer,
    /// message type and sequence number.
    let evidenceLog: ExecutionLog
    var evidenceKept = Set<String>()
    var logger: Logger
    /// The socket and its loop, which also steps the core.
    let endpoint: UDPEndpoint
    /// Where signatures are verified off the socket's loop, spread over the cores (none with
    /// one verifier thread: the socket's loop verifies).
    let verifiers: MultiThreadedEventLoopGroup?
    let verifierLoops: [any EventLoop]
    let receiving: Mutex<ReceiveState>
    /// Signatures verified already: a retransmitted VIEW-CHANGE or the VIEW-CHANGEs inside a
    /// NEW-VIEW cost a digest, not hundreds of signature checks. Shared across epochs.
    let verified: SignatureMemo
    var peers: [ReplicaID: SocketAddress] = [:]
    /// The epochs whose keys the socket's loop holds.
    var knownEpochs = Set<Epoch>()
    var retiring = false
    var lastRefusalTick: UInt64 = .max
    /// Frames at a verifier thread not yet delivered to the core, and how many more frames
    /// of the current burst of reads the socket's loop may check itself (see `received`).
    /// Both live on the socket's loop, which steps the core when there are verifier threads.
    var verifying = 0
    var inlineChecks = 1
    var clientAddresses: [Principal: SocketAddress] = [:]
    var nextMessageID: UInt64
    var ticks: UInt64 = 0
    let signer: any MessageSigner
    /// Which operator commands this replica carries out (target, epoch, freshness: see
    /// `ControlGate`), with its high mark kept in the data directory.
    var controlGate: ControlGate
    let controlMark: ControlMarkStore
    /// Control commands are verified against the operator's key alone, whatever epoch they
    /// name (the key is the same in every epoch): a command signed for an epoch this replica
    /// does not know still gets its one wrong-epoch answer instead of silence.
    let operatorAuthenticator: Authenticator<Ed25519Verifier, OperatorKey>
    /// Refused operator traffic reaches the log as one line per reason per second at most.
    var refusalLines = RateLimitedCounts<String>()
    /// The Byzantine behaviour in force, if any (only with `allowByzantine`).
    var byzantine: ByzantineLayer?
    var byzantineRNG = SplitMix64(seed: UInt64(truncatingIfNeeded: ContinuousClock.now.hashValue))
    let parentPID = getppid()
    var loggedView = (ViewNumber(0), true)
    var loggedExecuted: UInt64 = .max
    lazy var wasRecovering = replica.amnesia != nil
    public private(set) var traffic = TrafficCounters()
    /// Group commit: records appended since the last sync, and the frames that wait for that
    /// sync (every frame produced after a `.persist` until the log is synced, in order). The
    /// sync runs once the core's loop has stepped every event already queued, so one
    /// `fdatasync` covers all of them: under load, many messages per sync.
    var unsyncedRecords = false
    var held: [(frame: Frame, to: [SocketAddress])] = []
    var flushScheduled = false
    /// A stable checkpoint let the log drop its older records; done at the next flush.
    var compactPending = false
    private var tickTask: RepeatedTask?
    private var receiveTickTask: RepeatedTask?
    private var stopped: EventLoopPromise<Void>?

    public init(options: ReplicaOptions, logger: Logger) throws {
        // Commands issued before this moment (give or take the skew tolerated) are refused:
        // whatever was recorded before a restart, even with the data directory wiped.
        let startMicros = WallClock.microseconds() ?? 0
        self.options = options
        self.logger = logger
        let file = try ClusterFile.loadContents(options.clusterPath)
        membership = file.membership
        routes = file.routes
        let keyFile = try KeyFile.load(options.keyPath)
        guard keyFile.principal == .replica(options.id) else {
            throw RuntimeError.configuration("\(options.keyPath): holds the key of \(keyFile.principal), not of replica \(options.id.rawValue)")
        }
        guard let me = membership.replica(options.id) else {
            throw RuntimeError.configuration("\(options.clusterPath): replica \(options.id.rawValue) is not in the cluster")
        }
        guard me.publicKey == keyFile.key.publicKey else {
            throw RuntimeError.configuration("\(options.keyPath): its public key is not replica \(options.id.rawValue)'s in \(options.clusterPath)")
        }
        configuration = Configuration(
            membership: membership, checkpointInterval: options.checkpointInterval, logWindow: options.logWindow,
            batchSizeMax: options.batchSizeMax, sequencesInFlightMax: min(options.sequencesInFlightMax, options.logWindow / 2),
            viewChangeTimeoutTicks: options.viewChangeTimeoutTicks, statusIntervalTicks: options.statusIntervalTicks)
        try configuration.validate()

        let opened: (log: WriteAheadLog, records: [[UInt8]], recovery: RecoveryReport)
        do { opened = try WriteAheadLog.open(directory: options.dataDirectory, syncEnabled: options.syncLog) } catch {
            throw RuntimeError.storage(error.description)
        }
        log = opened.log
        if opened.recovery.truncatedBytes > 0 {
            logger.warning("write-ahead log had a damaged tail; truncated", metadata: ["recovery": "\(opened.recovery)"])
        }
        var records: [DurableRecord] = []
        for (index, bytes) in opened.records.enumerated() {
            guard let record = DurableRecord.decode(bytes) else {
                throw RuntimeError.storage(
                    "\(log.path): record \(index) passed its checksum but is not a replica record this build reads (wire version \(wireVersion)): "
                        + "a log written by another version of pbft, or a damaged one; refusing to start (use the build that wrote it, or an empty data directory with --lost-state)")
            }
            records.append(record)
        }
        checkpoints = CheckpointStore(directory: options.dataDirectory, syncEnabled: options.syncLog)
        var stored: (sequence: SequenceNumber, digest: Digest, state: [UInt8])?
        do {
            if let c = try checkpoints.load(), let digest = Digest(bytes: c.digest) {
                stored = (SequenceNumber(c.sequence), digest, c.state)
            }
        } catch {
            // A damaged checkpoint file only means fetching the state; anything else (an I/O
            // error, no permission) is the operator's to fix.
            guard case .damagedCheckpoint = error else { throw RuntimeError.storage(error.description) }
            logger.warning("stable checkpoint file damaged; the state will be fetched", metadata: ["error": "\(error)"])
        }
        executionLog = try ExecutionLog(directory: options.dataDirectory)
        do { controlMark = try ControlMarkStore(directory: options.dataDirectory, syncEnabled: options.syncLog) } catch {
            throw RuntimeError.storage(error.description)
        }
        var mark: UInt64 = 0
        do { mark = try controlMark.load() ?? 0 } catch {
            guard case .damagedControlMark = error else { throw RuntimeError.storage(error.description) }
            logger.warning("control mark damaged; starting without it (commands issued before this start are refused anyway)", metadata: ["error": "\(error)"])
        }
        controlGate = ControlGate(target: .replica(options.id), startMicros: startMicros, highMark: Timestamp(mark))
        operatorAuthenticator = Authenticator(verifier: Ed25519Verifier(), keys: OperatorKey(membership.operatorKey))
        evidenceLog = try ExecutionLog(directory: options.dataDirectory, file: "evidence.jsonl")
        signer = keyFile.signer
        // Senders up to the wire limit: the membership may grow.
        let verified = SignatureMemo()
        self.verified = verified
        let threads = options.verifierThreads > 0 ? options.verifierThreads : Self.defaultVerifierThreads(membership, routes: routes, me: options.id)
        verifiers = threads > 1 ? MultiThreadedEventLoopGroup(numberOfThreads: threads) : nil
        endpoint = UDPEndpoint()
        verifierLoops = verifiers.map { Array($0.makeIterator()) } ?? []
        receiving = Mutex(ReceiveState(
            reassembler: Reassembler(limits: options.reassemblyLimits(replicasMax: configuration.limits.replicasMax)),
            authenticator: Authenticator(
                verifier: Ed25519Verifier(), keys: EpochKeys(membership), limits: configuration.receiveLimits, memo: verified)))
        replica = try Replica.recover(
            configuration: configuration, id: options.id, app: KeyValueStore(),
            signer: keyFile.signer, digester: SHA256Digester(), records: records, checkpoint: stored, previousMembership: file.previous)
        if options.lostState {
            if opened.recovery.createdLog {
                replica.beginAmnesiaRecovery()
                logger.notice("rejoining after lost state: passive until the stable checkpoint passes what 2f+1 replicas report plus the log window")
            } else {
                logger.warning("--lost-state ignored: the data directory holds a write-ahead log")
            }
        }
        if !records.isEmpty || stored != nil {
            executionLog.restart(at: replica.lastExecuted)
            logger.info("recovered", metadata: ["records": "\(records.count)", "view": "\(replica.view.rawValue)", "executed": "\(replica.lastExecuted.rawValue)"])
        }
        // Message ids must not repeat towards a receiver across restarts.
        nextMessageID = UInt64(UInt32(truncatingIfNeeded: ContinuousClock.now.hashValue)) << 32
        self.logger[metadataKey: "replica"] = "\(options.id.rawValue)"
        self.logger[metadataKey: "view"] = "\(replica.view.rawValue)"
        self.logger[metadataKey: "seq"] = "\(replica.lastExecuted.rawValue)"
    }

    /// Binds the replica's address, starts the tick timer, and returns when `stop()` is called.
    public func run() async throws {
        try learnEpochs()
        let member = membership.replica(options.id)!
        let me = routes[options.id] ?? ClusterFile.Route(host: member.host, port: member.port)
        do {
            _ = try await endpoint.bind(
                host: me.host, port: Int(me.port), onDatagram: { [self] bytes, address in received(bytes, from: address) },
                onReadComplete: { [self] in inlineChecks = 1 })
        } catch {
            throw RuntimeError.bind("\(me.host):\(me.port)", "\(error)")
        }
        let loop = endpoint.eventLoop
        let tick = TimeAmount.milliseconds(Int64(options.tickMilliseconds))
        let stopped = try await loop.submit { [self] in
            let promise = loop.makePromise(of: Void.self)
            self.stopped = promise
            tickTask = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in self.tick() }
            return promise
        }.get()
        receiveTickTask = endpoint.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in
            receiving.withLock { state in
                state.ticks += 1
                _ = state.reassembler.expire(now: state.ticks)
            }
        }
        let current = replica.configuration.membership
        logger.info("replica serving", metadata: [
            "address": "\(me.host):\(me.port)", "epoch": "\(current.epoch.rawValue)", "n": "\(current.n)", "f": "\(current.f)",
            "view": "\(replica.view.rawValue)", "joining": "\(replica.epochStart == nil)",
        ])
        try await stopped.futureResult.get()
        await endpoint.close()
        try? await verifiers?.shutdownGracefully()
        logger.info("replica stopped")
    }

    /// Stops serving: no further datagram is handled; `run()` returns. Safe from any thread.
    public func stop() {
        endpoint.eventLoop.execute { [self] in
            receiving.withLock { $0.accepting = false }
            receiveTickTask?.cancel()
            tickTask?.cancel()
            logger.info("replica stopping", metadata: ["view": "\(replica.view.rawValue)", "executed": "\(replica.lastExecuted.rawValue)"])
            logger.info("counters", metadata: countersMetadata)
            log.close()
            stopped?.succeed(())
            stopped = nil
        }
    }

    // MARK: On the event loop

    func tick() {
        ticks += 1
        if ticks % 10 == 0 { logRefusals(refusalLines.due(nowMicros: WallClock.microseconds() ?? 0)) }
        if options.exitWithParent, ticks % 20 == 0, getppid() != parentPID {
            logger.notice("parent process gone; stopping")
            return stop()
        }
        perform(replica.step(.tick))
        sendGarbage()
    }

    /// A garbage flood's junk datagrams, straight to the socket: they bypass the frame
    /// encoder and the datagram codec on purpose.
    func sendGarbage() {
        guard var layer = byzantine, layer.behaviour == .garbageFlood else { return }
        let junk = layer.garbage(rng: &byzantineRNG)
        byzantine = layer
        guard !junk.isEmpty else { return }
        for peer in membership.replicas {
            let datagrams = junk.filter { $0.to == peer.id }.map(\.bytes)
            guard !datagrams.isEmpty, let address = peers[peer.id] else { continue }
            traffic.datagramsSent += datagrams.count
            endpoint.send(datagrams, to: address)
        }
    }

    /// On the socket's loop: reassemble, decode, verify (here or on a verifier thread), and
    /// step the core with what checks out.
    func received(_ bytes: [UInt8], from address: SocketAddress) {
        // Only replicas send frames larger than a datagram (clients' requests fit in one), so
        // fragments from any other address are dropped before they can take buffer space:
        // reassembly memory is bounded by n senders, not by whoever sends.
        let inbound: (frames: [[UInt8]], authenticator: Authenticator<Ed25519Verifier, EpochKeys>)? = receiving.withLock { state in
            guard state.accepting else { return nil }
            state.counters.datagramsReceived += 1
            if bytes.first == DatagramKind.fragment.rawValue, !state.peerAddresses.contains(Self.key(address)) {
                state.counters.datagramsDropped += 1
                return nil
            }
            let result = state.reassembler.receive(bytes, from: SenderKey(address.description), now: state.ticks)
            if case .dropped = result { state.counters.datagramsDropped += 1 }
            return (result.completed, state.authenticator)
        }
        guard let inbound else { return }
        for frame in inbound.frames { received(frame: frame, with: inbound.authenticator, from: address) }
    }

    /// One whole frame, in the order it came.
    private func received(frame bytes: [UInt8], with authenticator: Authenticator<Ed25519Verifier, EpochKeys>, from address: SocketAddress) {
        // This loop steps the core, so it may ask the core about a frame before anyone checks
        // its signatures: a vote the core can no longer use (its certificate is complete) is
        // dropped unchecked. Without verifier threads this loop decodes and checks every
        // frame itself. With them it decodes small frames (a few signatures) and checks the
        // first of a burst of reads while no frame waits at a verifier: a message to an idle
        // replica then crosses no thread (two hops and two wake-ups less; what one client's
        // latency is made of), and it cannot overtake a frame still being checked. The rest
        // of a burst and large frames go to the verifier threads, so under load the checks
        // are spread over the cores and this thread keeps stepping the core.
        var decoded: Frame?
        if verifierLoops.isEmpty || bytes.count <= Self.inlineFrameBytesMax {
            guard let frame = decode(bytes, limits: authenticator.limits) else { return }
            // A replayed or misdirected command is dropped on its fields, before its signature is checked.
            if case .control(let control) = frame.envelope.message, let reason = controlGate.precheck(control, nowMicros: WallClock.microseconds() ?? 0) {
                controlGate.count(reason)
                return noteRefusal(reason.rawValue)
            }
            guard replica.mayUse(frame.envelope.message) else {
                traffic.votesUnchecked += 1
                return
            }
            if verifierLoops.isEmpty || (verifying == 0 && inlineChecks > 0) {
                inlineChecks -= 1
                traffic.checkedInline += 1
                if let checked = check(frame, with: authenticator, from: address) { deliver(checked, from: address) }
                return
            }
            decoded = frame
        }
        verifying += 1
        let loop = verifierLoops[(address.port ?? 0) % verifierLoops.count]
        loop.execute { [self, decoded] in
            let checked = (decoded ?? decode(bytes, limits: authenticator.limits)).flatMap {
                check($0, with: authenticator, from: address)
            }
            endpoint.eventLoop.execute { [self] in
                verifying -= 1
                if let checked { deliver(checked, from: address) }
            }
        }
    }

    /// Frames up to this size (a few signatures) are decoded on the core's thread and may
    /// be checked there.
    static let inlineFrameBytesMax = 1_024

    /// Verifier threads when the operator did not say: the cores this replica has to itself
    /// (the host's cores over the replicas of the cluster at its address), at most 4; one
    /// means none besides the socket's loop.
    static func defaultVerifierThreads(_ membership: Membership, routes: [ReplicaID: ClusterFile.Route], me: ReplicaID) -> Int {
        func host(_ replica: ReplicaDescriptor) -> String { routes[replica.id]?.host ?? replica.host }
        guard let mine = membership.replica(me).map(host) else { return 1 }
        let here = membership.replicas.filter { host($0) == mine }.count
        return min(4, max(1, System.coreCount / max(1, here)))
    }

    /// Decodes a frame; one that does not decode is counted and dropped.
    func decode(_ bytes: [UInt8], limits: WireLimits) -> Frame? {
        do { return try Frame.decode(bytes, limits: limits) } catch {
            receiving.withLock { $0.counters.malformed += 1 }
            return nil
        }
    }

    /// Verifies every signature in a frame; counts what does not check out.
    func check(_ frame: Frame, with authenticator: Authenticator<Ed25519Verifier, EpochKeys>, from address: SocketAddress) -> Authenticated<Frame>? {
        let checked: Authenticated<Frame>
        do {
            if case .control = frame.envelope.message {
                checked = try operatorAuthenticator.authenticate(frame)
            } else {
                checked = try authenticator.authenticate(frame)
            }
        } catch {
            receiving.withLock { state in
                switch error {
                case .malformed: state.counters.malformed += 1
                case .unknownSigner: state.counters.unknownSigner += 1
                case .badSignature: state.counters.badSignature += 1
                }
            }
            // A reconfiguration that does not verify is refused with the reason, so the
            // operator sees why nothing happens (rate-limited: refusals are signed).
            if case .reconfiguration(let r) = frame.envelope.message {
                let origin = ControlOrigin(address: address, epoch: frame.envelope.epoch)
                endpoint.eventLoop.execute { [self] in refuseReconfiguration(r, reason: "\(error)", to: origin) }
            }
            return nil
        }
        receiving.withLock { $0.counters.framesReceived += 1 }
        return checked
    }

    /// On the core's loop: a verified frame.
    func deliver(_ frame: Authenticated<Frame>, from address: SocketAddress) {
        guard stopped != nil else { return }
        if case .control(let control) = frame.value.envelope.message {
            return onControl(control, from: ControlOrigin(address: address, epoch: frame.value.envelope.epoch))
        }
        switch frame.value.envelope.sender {
        case .client, .operator:
            // Replies go back to where the requester's signed request came from.
            clientAddresses[frame.value.envelope.sender] = address
        case .replica:
            break
        }
        perform(replica.step(.message(frame)))
    }

    func perform(_ produced: [Action]) {
        var actions = produced
        if var layer = byzantine {
            actions = produced.flatMap { layer.rewrite($0, replica: replica, now: ticks, rng: &byzantineRNG) }
            actions += layer.release(at: ticks)
            byzantine = layer
        }
        // Every log line carries the replica's view and last executed sequence number.
        if replica.lastExecuted.rawValue != loggedExecuted {
            loggedExecuted = replica.lastExecuted.rawValue
            logger[metadataKey: "seq"] = "\(loggedExecuted)"
        }
        if wasRecovering, replica.amnesia == nil {
            wasRecovering = false
            logger.notice("rejoined after lost state", metadata: ["h": "\(replica.lowWaterMark.rawValue)", "view": "\(replica.view.rawValue)"])
        }
        if replica.view != loggedView.0 || replica.viewActive != loggedView.1 {
            loggedView = (replica.view, replica.viewActive)
            logger[metadataKey: "view"] = "\(replica.view.rawValue)\(replica.viewActive ? "" : "*")"
            if replica.viewActive {
                logger.info("new view", metadata: ["view": "\(replica.view.rawValue)", "primary": "\(replica.primary.rawValue)", "executed": "\(replica.lastExecuted.rawValue)"])
            } else {
                logger.info("view change", metadata: ["view": "\(replica.view.rawValue)", "executed": "\(replica.lastExecuted.rawValue)"])
            }
        }
        var outgoing: [(frame: Frame, to: [SocketAddress])] = []
        for action in actions {
            switch action {
            case .persist(let record):
                do { try log.append(record.encoded()) } catch { fail("write-ahead log append failed: \(error)") }
                unsyncedRecords = true
            case .send(let frame, let to):
                guard let address = peers[to] else { continue }
                transmit(frame, to: [address], now: &outgoing)
            case .broadcast(let frame):
                transmit(frame, to: replica.peers.compactMap { peers[$0.id] }, now: &outgoing)
            case .reply(let frame, let requester):
                guard let address = clientAddresses[requester] else { continue }
                transmit(frame, to: [address], now: &outgoing)
            case .executed(let batch):
                executionLog.executed(batch)
                logger.trace("executed", metadata: ["seq": "\(batch.sequence.rawValue)", "view": "\(batch.view.rawValue)", "requests": "\(batch.requests.count)"])
            case .checkpointTaken(let checkpoint):
                executionLog.checkpoint(checkpoint)
            case .evidence(let first, let second):
                let key = "\(first.sender)/\(first.message.type)/\(Self.slot(first))"
                if evidenceKept.count < 10_000, evidenceKept.insert(key).inserted {
                    evidenceLog.evidence(first, second)
                    logger.warning("evidence: conflicting signed messages", metadata: ["signer": "\(first.sender)", "message": "\(first.message.type)", "slot": "\(Self.slot(first))"])
                }
            case .checkpointStable(let checkpoint):
                if let stable = replica.stableState, stable.checkpoint == checkpoint {
                    do { try checkpoints.save(sequence: checkpoint.sequence.rawValue, digest: checkpoint.stateDigest.bytes, state: stable.state) } catch {
                        fail("cannot save the stable checkpoint: \(error)")
                    }
                }
                compactPending = true
                logger.debug("checkpoint stable", metadata: ["seq": "\(checkpoint.sequence.rawValue)", "view": "\(replica.view.rawValue)"])
            case .epochStarted(let membership, let first):
                logger.notice("epoch started", metadata: [
                    "epoch": "\(membership.epoch.rawValue)", "first_sequence": "\(first.rawValue)", "n": "\(membership.n)",
                    "f": "\(membership.f)", "replicas": "\(membership.replicas.map { String($0.id.rawValue) }.joined(separator: ","))",
                    "primary": "\(replica.primary.rawValue)",
                ])
                executionLog.epoch(membership, firstSequence: first)
            case .retired(let epoch):
                retire(epoch)
            case .stateInstalled(let checkpoint):
                executionLog.checkpoint(checkpoint, type: "installed")
                logger.info("state installed by transfer", metadata: ["seq": "\(checkpoint.sequence.rawValue)", "view": "\(replica.view.rawValue)"])
            }
        }
        if !outgoing.isEmpty { endpoint.send(datagrams(outgoing)) }
        if replica.knownMemberships.count != knownEpochs.count || !replica.knownMemberships.keys.allSatisfy(knownEpochs.contains) {
            do { try learnEpochs() } catch { logger.error("cannot resolve a replica's address", metadata: ["error": "\(error)"]) }
        }
        if (unsyncedRecords || compactPending || !held.isEmpty) && !flushScheduled {
            flushScheduled = true
            endpoint.eventLoop.execute { [self] in flush() }
        }
    }

    /// Sends `frame` at the end of this step (with the step's other frames, bundled by
    /// address), or after the next sync if a record it may depend on is not durable yet (a
    /// replica must never have sent what a restart could contradict).
    func transmit(_ frame: Frame, to addresses: [SocketAddress], now outgoing: inout [(frame: Frame, to: [SocketAddress])]) {
        guard !addresses.isEmpty else { return }
        if unsyncedRecords || !held.isEmpty {
            held.append((frame, addresses))
        } else {
            outgoing.append((frame, addresses))
        }
    }

    /// Group commit: one sync for every record appended since the last, then the frames
    /// that waited for it, in the order they were produced (handed to the socket in one go).
    func flush() {
        flushScheduled = false
        guard stopped != nil else { return }
        if unsyncedRecords {
            do { try log.sync() } catch { fail("write-ahead log sync failed: \(error)") }
            unsyncedRecords = false
        }
        if compactPending {
            compactPending = false
            do { try log.rewrite(keeping: replica.durableRecords().map { $0.encoded() }) } catch {
                fail("cannot compact the write-ahead log: \(error)")
            }
        }
        let frames = held
        held = []
        endpoint.send(datagrams(frames))
    }

    /// Gives the socket's loop the keys and replica addresses of every epoch the core
    /// accepts (at start, when a reconfiguration decides the next epoch, when one starts).
    func learnEpochs() throws {
        var addresses: [ReplicaID: SocketAddress] = [:]
        for descriptor in replica.keys.replicas where descriptor.id != options.id {
            let (host, port) = routes[descriptor.id].map { ($0.host, $0.port) } ?? (descriptor.host, descriptor.port)
            do {
                addresses[descriptor.id] = try SocketAddress.makeAddressResolvingHost(host, port: Int(port))
            } catch {
                throw RuntimeError.address("\(host):\(port)", "\(error)")
            }
        }
        peers = addresses
        knownEpochs = Set(replica.knownMemberships.keys)
        let authenticator = Authenticator(verifier: Ed25519Verifier(), keys: replica.keys, limits: replica.receiveLimits, memo: verified)
        let keys = Set(addresses.values.map(Self.key))
        receiving.withLock { state in
            state.authenticator = authenticator
            state.peerAddresses = keys
        }
    }

    /// Not a member of the epoch in force: serve state transfer a little longer (a joiner
    /// may fetch from us), then stop; the process exits with status 0.
    func retire(_ epoch: Epoch) {
        guard !retiring else { return }
        retiring = true
        let graceTicks = max(100, 3_000 / max(1, options.tickMilliseconds))
        logger.notice("retired: not a member of the new epoch; stopping after a grace period", metadata: [
            "epoch": "\(epoch.rawValue)", "grace_ms": "\(graceTicks * options.tickMilliseconds)",
        ])
        endpoint.eventLoop.scheduleTask(in: .milliseconds(Int64(graceTicks * options.tickMilliseconds))) { [self] in stop() }
    }

    /// The datagrams that carry each frame to each of its addresses (each frame encoded
    /// once), counted as sent. Frames for the same address keep their order and travel
    /// bundled: a batch's replies to clients that share a socket, or the votes of one step
    /// to a peer, take one datagram per address instead of one per frame.
    func datagrams(_ frames: [(frame: Frame, to: [SocketAddress])]) -> [(bytes: [UInt8], to: SocketAddress)] {
        var outbox = Outbox()
        for (frame, addresses) in frames where !addresses.isEmpty {
            outbox.add(frame.encoded(), to: addresses)
            traffic.framesSent += addresses.count
        }
        let datagrams = outbox.take { nextMessageID &+= 1; return nextMessageID }
        for datagram in datagrams {
            switch datagram.bytes.first {
            case DatagramKind.fragment.rawValue: traffic.fragmentsSent += 1
            case DatagramKind.bundle.rawValue: traffic.bundlesSent += 1
            default: break
            }
        }
        traffic.datagramsSent += datagrams.count
        return datagrams
    }

    /// Storage failed under us: stopping is the only safe thing (the log no longer holds
    /// what we would sign next).
    func fail(_ reason: String) -> Never {
        logger.critical("\(reason)")
        fatalError(reason)
    }

    /// The view and sequence number (or checkpoint) a message is about, for deduplicating evidence.
    static func slot(_ envelope: Envelope) -> String {
        switch envelope.message {
        case .prePrepare(let p): "\(p.view.rawValue)/\(p.sequence.rawValue)"
        case .prepare(let v), .commit(let v): "\(v.view.rawValue)/\(v.sequence.rawValue)"
        case .checkpoint(let c): "\(c.sequence.rawValue)"
        default: "?"
        }
    }

    /// An address as ip:port, without the host name NIO may attach.
    static func key(_ address: SocketAddress) -> String { "\(address.ipAddress ?? "?"):\(address.port ?? 0)" }

    /// An operator-signed command (its signature checked against the operator's key). The
    /// gate decides (`ControlGate`: this replica, its epoch, newer than the high mark, inside
    /// the window, issued after this process started); a command that changes anything waits
    /// until the raised mark is durable, so a restart cannot make a recording of it fresh again.
    func onControl(_ control: Control, from origin: ControlOrigin) {
        let epoch = replica.configuration.membership.epoch
        switch controlGate.admit(control, signedFor: origin.epoch, epoch: epoch, nowMicros: WallClock.microseconds() ?? 0) {
        case .refuse(let reason, let answer):
            noteRefusal(reason.rawValue)
            guard answer else { return }
            let body = "refused: signed for epoch \(origin.epoch.rawValue); replica \(options.id.rawValue) is in epoch \(epoch.rawValue)"
            return sendControlReply(ControlReply(timestamp: control.timestamp, outcome: .wrongEpoch, epoch: epoch, body: Array(body.utf8)), to: origin)
        case .accept:
            break
        }
        if control.command.changesState {
            do { try controlMark.save(controlGate.highMark.rawValue) } catch {
                logger.error("cannot make the control high mark durable; command refused", metadata: ["command": "\(control.command)", "error": "\(error)"])
                return replyControl(control, accepted: false, body: Array("refused: cannot make the control high mark durable: \(error)".utf8), to: origin)
            }
        }
        switch control.command {
        case .status:
            replyControl(control, accepted: true, body: Array(statusJSON().utf8), to: origin)
        case .stop:
            logger.notice("stopping on the operator's command")
            replyControl(control, accepted: true, body: Array("stopping".utf8), to: origin)
            stop()
        case .launcher:
            replyControl(control, accepted: false, body: Array("refused: this is a replica; launcher commands go to the launcher".utf8), to: origin)
        case .byzantine:
            let mode = String(decoding: control.argument, as: UTF8.self)
            guard options.allowByzantine else {
                logger.warning("refused a Byzantine mode: this replica was not started with --allow-byzantine", metadata: ["mode": "\(mode)"])
                return replyControl(control, accepted: false, body: Array("refused: not started with --allow-byzantine".utf8), to: origin)
            }
            if mode == "off" {
                byzantine = nil
                logger.notice("Byzantine behaviour off")
                return replyControl(control, accepted: true, body: Array("byzantine off".utf8), to: origin)
            }
            guard let behaviour = ByzantineBehaviour(rawValue: mode) else {
                let modes = ByzantineBehaviour.allCases.map(\.rawValue).joined(separator: ", ")
                return replyControl(control, accepted: false, body: Array("unknown mode '\(mode)'; modes: \(modes), off".utf8), to: origin)
            }
            // A slow primary stays just under the view-change timeout.
            byzantine = ByzantineLayer(behaviour: behaviour, signer: signer, membership: membership, holdTicks: UInt64(options.viewChangeTimeoutTicks * 9 / 10))
            logger.notice("Byzantine behaviour on", metadata: ["mode": "\(mode)"])
            replyControl(control, accepted: true, body: Array("byzantine \(mode)".utf8), to: origin)
        }
    }

    /// Counts a refused piece of operator traffic for the log: one line per reason per
    /// second at most (a flood of replays must not fill the disk), the rest at the next tick
    /// after the second is over.
    func noteRefusal(_ reason: String) {
        guard let count = refusalLines.note(reason, nowMicros: WallClock.microseconds() ?? 0) else { return }
        logRefusals([(reason, count)])
    }

    func logRefusals(_ counts: [(reason: String, count: Int)]) {
        for (reason, count) in counts {
            logger.warning("refused operator traffic", metadata: ["reason": "\(reason)", "count": "\(count)", "control": "\(controlGate.json)"])
        }
    }

    /// Answers a reconfiguration whose signature did not verify: a signed refusal with the
    /// reason, at most one per second (each costs a signature, and the source address may
    /// be forged; an operator's tool retransmits for longer than that, so it sees one).
    func refuseReconfiguration(_ reconfiguration: Reconfiguration, reason: String, to origin: ControlOrigin) {
        noteRefusal("reconfiguration_not_verified")
        let intervalTicks = UInt64(max(1, 1_000 / max(1, options.tickMilliseconds)))
        guard lastRefusalTick == .max || ticks >= lastRefusalTick + intervalTicks else { return }
        lastRefusalTick = ticks
        let epoch = replica.configuration.membership.epoch
        sendControlReply(ControlReply(timestamp: reconfiguration.timestamp, outcome: .refused, epoch: epoch, body: Array("refused: reconfiguration: \(reason)".utf8)), to: origin)
    }

    func replyControl(_ control: Control, accepted: Bool, body: [UInt8], to origin: ControlOrigin) {
        let reply = ControlReply(timestamp: control.timestamp, outcome: accepted ? .done : .refused, epoch: replica.configuration.membership.epoch, body: body)
        sendControlReply(reply, to: origin)
    }

    /// Signed in the epoch the command was signed in when this replica was a member of it,
    /// so an operator tool that has not followed a reconfiguration can verify the answer.
    func sendControlReply(_ reply: ControlReply, to origin: ControlOrigin) {
        let envelope = Envelope.seal(.controlReply(reply), epoch: replica.answerEpoch(to: origin.epoch), signer: signer)
        endpoint.send(datagrams([(Frame(envelope: envelope), [origin.address])]))
    }

    /// Where a control command came from and the epoch it was signed in: its answer goes
    /// there, signed in that epoch when this replica was a member of it.
    struct ControlOrigin {
        var address: SocketAddress
        var epoch: Epoch
    }

    /// Status as one JSON object: progress, water marks, and counters of messages received,
    /// rejected by reason, and sent.
    func statusJSON() -> String {
        let c = replica.counters
        let traffic = mergedTraffic
        let rejected: [(String, Int)] = [
            ("bad_signature", traffic.badSignature), ("unknown_sender", traffic.unknownSigner), ("malformed", traffic.malformed),
            ("datagram_dropped", traffic.datagramsDropped), ("stale_view", c[.staleView]), ("future_view", c[.futureView]),
            ("outside_water_marks", c[.outsideWaterMarks]), ("conflicting", c[.conflicting]), ("wrong_digest", c[.wrongDigest]),
            ("not_from_primary", c[.notFromPrimary]), ("duplicate", c[.duplicate]), ("invalid", c[.invalidBatch] + c[.invalidViewChange] + c[.invalidNewView]),
            ("stale_request", c[.staleRequest]), ("recovering", c[.recovering]),
            ("stale_epoch", c[.staleEpoch]), ("future_epoch", c[.futureEpoch]), ("joining", c[.joining]), ("retired", c[.retired]),
        ]
        let fields: [String] = [
            "\"replica\":\(options.id.rawValue)", "\"epoch\":\(replica.configuration.membership.epoch.rawValue)",
            "\"n\":\(replica.configuration.membership.n)", "\"f\":\(replica.configuration.membership.f)",
            "\"members\":[\(replica.configuration.membership.replicas.map { String($0.id.rawValue) }.joined(separator: ","))]",
            "\"epoch_start\":\(replica.epochStart?.rawValue ?? 0)", "\"joining\":\(replica.epochStart == nil)", "\"retired\":\(replica.retired)",
            "\"next_epoch\":\(replica.nextEpoch.map { "{\"epoch\":\($0.membership.epoch.rawValue),\"end\":\($0.end.rawValue)}" } ?? "null")",
            "\"view\":\(replica.view.rawValue)",
            "\"view_active\":\(replica.viewActive)", "\"primary\":\(replica.primary.rawValue)",
            "\"last_executed\":\(replica.lastExecuted.rawValue)", "\"stable_checkpoint\":\(replica.lowWaterMark.rawValue)",
            "\"low_water_mark\":\(replica.lowWaterMark.rawValue)", "\"high_water_mark\":\(replica.waterMarks.high.rawValue)",
            "\"recovering\":\(replica.amnesia != nil)", "\"requests_executed\":\(c.requestsExecuted)",
            "\"view_changes\":\(c.viewChangesStarted)", "\"state_transfers\":\(c.stateTransfersCompleted)",
            "\"received\":{\"datagrams\":\(traffic.datagramsReceived),\"frames\":\(traffic.framesReceived),\"checked_inline\":\(traffic.checkedInline),\"votes_unchecked\":\(traffic.votesUnchecked)}",
            "\"rejected\":{" + rejected.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}",
            "\"sent\":{\"frames\":\(traffic.framesSent),\"datagrams\":\(traffic.datagramsSent),\"fragments\":\(traffic.fragmentsSent),\"bundles\":\(traffic.bundlesSent)}",
            "\"signatures_remembered\":{\"hits\":\(verified.counts.hits),\"misses\":\(verified.counts.misses)}",
            "\"wal_bytes\":\(log.bytes)",
            "\"control\":\(controlGate.json)",
        ]
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// What was received (counted on the socket's loop) and sent (counted here).
    var mergedTraffic: TrafficCounters {
        var merged = receiving.withLock { $0.counters }
        merged.framesSent = traffic.framesSent
        merged.datagramsSent = traffic.datagramsSent
        merged.fragmentsSent = traffic.fragmentsSent
        merged.bundlesSent = traffic.bundlesSent
        merged.checkedInline = traffic.checkedInline
        merged.votesUnchecked = traffic.votesUnchecked
        return merged
    }

    /// Traffic and the core's drop counters, for the log and status.
    var countersMetadata: Logger.Metadata {
        let traffic = mergedTraffic
        var metadata: Logger.Metadata = [
            "datagrams_received": "\(traffic.datagramsReceived)", "frames_received": "\(traffic.framesReceived)",
            "datagrams_dropped": "\(traffic.datagramsDropped)", "malformed": "\(traffic.malformed)",
            "unknown_signer": "\(traffic.unknownSigner)", "bad_signature": "\(traffic.badSignature)",
            "frames_sent": "\(traffic.framesSent)", "datagrams_sent": "\(traffic.datagramsSent)", "bundles_sent": "\(traffic.bundlesSent)",
            "signatures_remembered": "\(verified.counts.hits)",
            "control_accepted": "\(controlGate.acceptedCount)", "control_refused": "\(controlGate.refusedTotal)",
        ]
        for reason in DropReason.allCases where replica.counters[reason] > 0 {
            let name = "\(reason)".map { $0 == " " || $0 == "-" ? "_" : $0 }
            metadata["dropped_" + String(name)] = "\(replica.counters[reason])"
        }
        return metadata
    }

    /// A snapshot of the replica's state for status reports; call on the event loop.
    public var summary: String {
        "r\(options.id.rawValue) view=\(replica.view.rawValue)\(replica.viewActive ? "" : "(changing)") primary=r\(replica.primary.rawValue) executed=\(replica.lastExecuted.rawValue) h=\(replica.lowWaterMark.rawValue) H=\(replica.waterMarks.high.rawValue)"
    }
}
