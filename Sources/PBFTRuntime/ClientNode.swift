import NIOCore
import NIOPosix
public import PBFTCluster
public import PBFTCore
import PBFTCrypto
import Synchronization
public import PBFTWire

/// A client over UDP: the core `Client` on one event loop. One operation at a time; each
/// `submit` returns once f+1 replicas sent the same signed result.
///
/// It follows reconfigurations: once f+1 replicas of its epoch announce a new one, it
/// verifies with the new epoch's keys (and still the old one's, for late replies) and sends
/// to the new epoch's replicas. With the operator's key it submits reconfigurations.
public final class ClientNode: @unchecked Sendable {
    var client: Client
    var authenticator: Authenticator<Ed25519Verifier, EpochKeys>
    /// Signatures verified already, shared with the clients of the same `ClientThreads`.
    let verified: SignatureMemo?
    let endpoint: UDPEndpoint
    var reassembler = Reassembler()
    var peers: [ReplicaID: SocketAddress] = [:]
    var waiting: CheckedContinuation<[UInt8], any Error>?
    var refusals: [ReplicaID: [UInt8]] = [:]
    var deadlineTicks: UInt64 = 0
    var ticks: UInt64 = 0
    var nextMessageID: UInt64 = 0
    let tickMilliseconds: Int
    private var tickTask: RepeatedTask?
    /// With shared threads: the socket (and timer) of this client's thread, which all its
    /// clients use.
    private let shared: SharedClientSocket?

    /// `threads`: threads, sockets and timers to share with other clients of this process
    /// (default: a thread and a socket of its own); the client then ticks at their period.
    public init(
        membership: Membership, key: KeyFile, tickMilliseconds: Int = 10, retransmitTicks: Int = 50, sharing threads: ClientThreads? = nil
    ) throws {
        if case .replica = key.principal {
            throw RuntimeError.configuration("the key file holds the key of \(key.principal), not a client's or the operator's")
        }
        guard membership.publicKey(of: key.principal, epoch: membership.epoch) == key.key.publicKey else {
            throw RuntimeError.configuration("\(key.principal) with this key is not a client of the cluster file")
        }
        shared = threads?.nextSocket()
        endpoint = shared?.endpoint ?? UDPEndpoint()
        self.tickMilliseconds = threads?.tickMilliseconds ?? tickMilliseconds
        // Timestamps must grow across runs of the same client: start from the clock.
        let first = Timestamp(rawValue: WallClock.microseconds() ?? 1)
        client = Client(membership: membership, signer: key.signer, digester: SHA256Digester(), retransmitTimeoutTicks: retransmitTicks, firstTimestamp: first)
        verified = threads?.verified
        authenticator = Authenticator(verifier: Ed25519Verifier(), keys: EpochKeys(membership), memo: verified)
        nextMessageID = UInt64(truncatingIfNeeded: ContinuousClock.now.hashValue)
    }

    /// The membership the client follows (it changes when an epoch does).
    public var membership: Membership { client.membership }

    /// The epoch the client follows now, read on its event loop (safe from any thread).
    public func currentEpoch() async -> Epoch {
        (try? await endpoint.eventLoop.submit { [self] in client.membership.epoch }.get()) ?? client.membership.epoch
    }

    public func start(host: String = "0.0.0.0") async throws {
        try resolvePeers()
        if let shared {
            try await shared.bind(host: host)
            try await endpoint.eventLoop.submit { [self] in shared.add(self) }.get()
        } else {
            _ = try await endpoint.bind(host: host, port: 0) { [self] bytes, address in received(bytes, from: address) }
            tickTask = endpoint.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(tickMilliseconds)), delay: .milliseconds(Int64(tickMilliseconds))) { [self] _ in tick() }
        }
    }

    /// Runs one operation; throws `ClientError.timedOut` if no f+1 matching replies came
    /// within `timeoutMilliseconds` (the request is retransmitted meanwhile).
    public func submit(_ operation: [UInt8], timeoutMilliseconds: Int = 30_000) async throws -> [UInt8] {
        try await run(timeoutMilliseconds: timeoutMilliseconds) { $0.submit(operation) }
    }

    /// Submits a reconfiguration (the key must be the operator's) and returns the replicas'
    /// answer ("ok: ..." or "error: ..."), vouched for by f+1 of them.
    public func submit(_ change: ReconfigurationChange, timeoutMilliseconds: Int = 30_000) async throws -> String {
        String(decoding: try await run(timeoutMilliseconds: timeoutMilliseconds) { $0.submit(change) }, as: UTF8.self)
    }

    /// Starts one operation on the event loop and waits for its result, refusal or timeout.
    private func run(timeoutMilliseconds: Int, _ start: @escaping @Sendable (inout Client) -> [Client.Action]) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            endpoint.eventLoop.execute { [self] in
                precondition(waiting == nil, "one operation at a time per client")
                waiting = continuation
                refusals = [:]
                deadlineTicks = ticks + UInt64(max(1, timeoutMilliseconds / tickMilliseconds))
                perform(start(&client))
            }
        }
    }

    func resolvePeers() throws {
        var resolved: [ReplicaID: SocketAddress] = [:]
        for descriptor in client.membership.replicas {
            resolved[descriptor.id] = try SocketAddress.makeAddressResolvingHost(descriptor.host, port: Int(descriptor.port))
        }
        peers = resolved
    }

    public func close() async {
        let task = tickTask
        tickTask = nil
        try? await endpoint.eventLoop.submit { [self] in
            task?.cancel()
            shared?.remove(self)
        }.get()
        // A shared socket closes with its threads.
        if shared == nil { await endpoint.close() }
    }

    public var view: ViewNumber { client.view }

    func tick() {
        ticks += 1
        _ = reassembler.expire(now: ticks)
        perform(client.step(.tick))
        if let waiting, ticks >= deadlineTicks {
            self.waiting = nil
            waiting.resume(throwing: ClientError.timedOut(f: membership.f))
        }
    }

    func received(_ bytes: [UInt8], from address: SocketAddress) {
        for frameBytes in reassembler.receive(bytes, from: SenderKey(address.description), now: ticks).completed {
            guard let decoded = try? Frame.decode(frameBytes, limits: authenticator.limits) else { continue }
            received(decoded)
        }
    }

    /// A decoded frame for this client (its own socket's, or routed by a shared one).
    func received(_ decoded: Frame) {
        // Replies the client does not await are dropped before their signatures are checked:
        // a request costs f+1 verifications, not n.
        if let proven = decoded.reply, !client.awaits(proven.reply) { return }
        guard let frame = try? authenticator.authenticate(decoded) else { return }
        if case .controlReply(let refusal) = frame.value.envelope.message, !refusal.accepted {
            return onRefusal(refusal, from: frame.value.envelope.sender)
        }
        perform(client.step(.message(frame)))
    }

    /// A replica refused what we sent before ordering it (a reconfiguration whose signature
    /// did not verify there). Once f+1 replicas refused it, at least one correct one did:
    /// the operation fails with their reason instead of waiting out its timeout.
    func onRefusal(_ refusal: ControlReply, from sender: Principal) {
        guard case .replica(let replica) = sender, membership.replica(replica) != nil,
              refusal.timestamp == client.lastTimestamp, let waiting
        else { return }
        refusals[replica] = refusal.body
        let reason = String(decoding: refusal.body, as: UTF8.self)
        guard refusals.values.filter({ $0 == refusal.body }).count >= membership.weakQuorum else { return }
        self.waiting = nil
        refusals = [:]
        waiting.resume(throwing: ClientError.refused(reason))
    }

    func perform(_ actions: [Client.Action]) {
        for action in actions {
            switch action {
            case .broadcast(let frame):
                send(frame, to: Array(peers.values))
            case .completed(_, let result):
                let waiting = self.waiting
                self.waiting = nil
                waiting?.resume(returning: result)
            case .epochChanged(let next):
                var keys = authenticator.keys.memberships.filter { $0.key.rawValue + 1 >= next.epoch.rawValue }
                keys[next.epoch] = next
                var limits = WireLimits.default
                limits.replicasMax = max(limits.replicasMax, next.n)
                authenticator = Authenticator(verifier: Ed25519Verifier(), keys: EpochKeys(keys), limits: limits, memo: verified)
                shared?.widen(to: limits)
                do { try resolvePeers() } catch { continue }
            }
        }
    }

    func send(_ frame: Frame, to addresses: [SocketAddress]) {
        if let shared { return shared.send(frame.encoded(), to: addresses) }
        nextMessageID &+= 1
        let datagrams = DatagramCodec.datagrams(for: frame.encoded(), messageID: nextMessageID)
        // One flush for every replica's copy: the kernel gets them in one sendmmsg.
        endpoint.send(addresses.flatMap { address in datagrams.map { (bytes: $0, to: address) } })
    }
}

/// Event-loop threads that many clients of one process share (one per core by default),
/// instead of a thread, a socket and a timer each: a benchmark's clients then cost what they
/// do, not what their threads' wake-ups do. Shut down after every client using it is closed.
///
/// The clients of one thread share one socket and one timer. Replicas send the replies of a
/// batch to the clients at one address bundled, a datagram per address instead of one per
/// reply; the socket hands each reply to the client it names (`Reply.requester`) and
/// anything else (an epoch announcement, a refusal) to each of its clients, which check it
/// as they would on a socket of their own.
///
/// The clients also share a memo of verified signatures. A replica signs one reply root per
/// executed batch and sends it to every client of the batch, so clients of one process (a
/// gateway's sessions, a benchmark's closed loops) check each root once, not once each: a
/// hit proves the same bytes verified under the same key in this process (`SignatureMemo`),
/// and each client still checks its own reply's Merkle path against the root.
public final class ClientThreads: Sendable {
    let group: MultiThreadedEventLoopGroup
    let verified = SignatureMemo()
    let tickMilliseconds: Int
    private let sockets: [SharedClientSocket]
    private let next = Atomic<Int>(0)

    /// Signatures its clients verified so far (reply roots the shared memo did not hold).
    public var signatureChecks: Int { verified.counts.misses }

    /// `count`: threads (0: one per core); the clients tick every `tickMilliseconds`.
    public init(count: Int = 0, tickMilliseconds: Int = 10) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: count > 0 ? count : System.coreCount)
        self.tickMilliseconds = tickMilliseconds
        sockets = group.makeIterator().map { SharedClientSocket(on: $0, period: .milliseconds(Int64(tickMilliseconds))) }
    }

    /// The socket of the next thread, round robin.
    func nextSocket() -> SharedClientSocket {
        sockets[next.wrappingAdd(1, ordering: .relaxed).oldValue % sockets.count]
    }

    public func shutdown() async {
        for socket in sockets { await socket.endpoint.close() }
        try? await group.shutdownGracefully()
    }
}

/// The socket and timer the clients of one thread share. Bound once, by the first client
/// that starts; its clients are touched only on its loop.
final class SharedClientSocket: @unchecked Sendable {
    let endpoint: UDPEndpoint
    let period: TimeAmount
    private let binding = Mutex<Task<Void, any Error>?>(nil)
    private var clients: [Principal: ClientNode] = [:]
    private var reassembler = Reassembler()
    private var ticks: UInt64 = 0
    private var task: RepeatedTask?
    private var limits = WireLimits.default
    /// Frames its clients sent during this pass of the loop.
    private var outbox = Outbox()
    private var nextMessageID = UInt64(truncatingIfNeeded: ContinuousClock.now.hashValue)

    init(on loop: any EventLoop, period: TimeAmount) {
        endpoint = UDPEndpoint(on: loop)
        self.period = period
    }

    /// Binds the socket unless a client did already (every caller waits for the same bind,
    /// and a bind that failed fails every later start of this thread's clients the same way).
    func bind(host: String) async throws {
        let task = binding.withLock { binding in
            if let task = binding { return task }
            let task = Task { [endpoint] in
                _ = try await endpoint.bind(host: host, port: 0) { [self] bytes, address in received(bytes, from: address) }
            }
            binding = task
            return task
        }
        try await task.value
    }

    func add(_ client: ClientNode) {
        endpoint.eventLoop.preconditionInEventLoop()
        clients[client.client.principal] = client
        widen(to: client.authenticator.limits)
        guard task == nil else { return }
        task = endpoint.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { [self] _ in
            ticks += 1
            _ = reassembler.expire(now: ticks)
            for client in clients.values { client.tick() }
        }
    }

    func remove(_ client: ClientNode) {
        endpoint.eventLoop.preconditionInEventLoop()
        clients[client.client.principal] = nil
        guard clients.isEmpty else { return }
        task?.cancel()
        task = nil
    }

    /// Sends `frame` to each address once the loop has run what is queued: the requests
    /// its clients send meanwhile go to each replica bundled.
    func send(_ frame: [UInt8], to addresses: [SocketAddress]) {
        endpoint.eventLoop.preconditionInEventLoop()
        if outbox.isEmpty { endpoint.eventLoop.execute { [self] in flush() } }
        outbox.add(frame, to: addresses)
    }

    private func flush() {
        endpoint.send(outbox.take { nextMessageID &+= 1; return nextMessageID })
    }

    private func received(_ bytes: [UInt8], from address: SocketAddress) {
        for frameBytes in reassembler.receive(bytes, from: SenderKey(address.description), now: ticks).completed {
            guard let frame = try? Frame.decode(frameBytes, limits: limits) else { continue }
            if let proven = frame.reply {
                clients[proven.reply.requester]?.received(frame)
            } else {
                for client in clients.values { client.received(frame) }
            }
        }
    }

    /// Decodes with the widest limits any of its clients has had: limits bound what decoding
    /// may hold, and the clients of one process follow the same cluster (a client's grow
    /// when it follows a larger epoch).
    func widen(to limits: WireLimits) {
        self.limits.replicasMax = max(self.limits.replicasMax, limits.replicasMax)
    }
}

public enum ClientError: Error, CustomStringConvertible {
    case timedOut(f: Int)
    /// f+1 replicas refused the request before ordering it, with this reason.
    case refused(String)

    public var description: String {
        switch self {
        case .timedOut(let f): "no f+1 = \(f + 1) matching replies in time"
        case .refused(let reason): reason
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

package enum WallClock {
    // Used by clients (timestamps) and the control endpoint (freshness).
    /// Microseconds since the epoch, for client timestamps that keep growing across restarts.
    package static func microseconds() -> UInt64? {
        var now = timespec()
        guard clock_gettime(CLOCK_REALTIME, &now) == 0 else { return nil }
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
