import NIOCore
import NIOPosix
import PBFTByzantine
import PBFTRuntime
public import PBFTWire

/// A UDP address as the testbed's files and commands name it.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// What the proxy did with the datagrams it received, since it started.
public struct ProxyCounters: Hashable, Sendable {
    public var received = 0
    public var forwarded = 0
    public var dropped = 0
    /// Lost to a partition.
    public var blocked = 0
    public var delayed = 0
    public var duplicated = 0
    public var reordered = 0
    public var corrupted = 0
    /// Arrived at a link socket from an address that is neither of the link's replicas.
    public var unknownSource = 0
    /// Client sessions open now.
    public var sessions = 0

    public init() {}
}

/// The fault proxy: every replica's traffic passes through it, so network faults need
/// neither root nor changes to replica code (docs/faults.md).
///
/// Replica `i` listens on a private address. The proxy owns the addresses the public
/// cluster file gives the replicas (the *front* sockets, for clients) and one socket per
/// pair of replicas (the *link* sockets). Each replica runs with a cluster file of its own
/// in which replica `j` is at the link socket of the pair {i, j}: what arrives there from
/// `i` goes to `j` and the other way round, so a receiver still sees each peer at one fixed
/// address, which is that peer's address in its cluster file. A client's datagrams to a
/// front socket go to the replica from a session socket kept for that client, and what the
/// replica answers on the session goes back to the client from the front socket.
///
/// A twin of replica `i` (a second process with `i`'s key) gets a copy of everything
/// addressed to `i`, and what it sends through the link and session sockets is forwarded
/// as if `i` had sent it.
///
/// All state lives on the proxy's one event-loop thread; randomness comes from a seeded
/// SplitMix64, so a seed fixes which datagrams a fault hits for a given arrival order.
public final class FaultProxy: @unchecked Sendable {
    struct Pair: Hashable {
        let low: ReplicaID
        let high: ReplicaID
        init(_ a: ReplicaID, _ b: ReplicaID) { (low, high) = a < b ? (a, b) : (b, a) }
    }

    /// Confined to the proxy's loop.
    final class Session: @unchecked Sendable {
        let client: SocketAddress
        let replica: ReplicaID
        var socket: DatagramSocket?
        var pending: [[UInt8]] = []
        var lastUsed: NIODeadline

        init(client: SocketAddress, replica: ReplicaID, now: NIODeadline) {
            self.client = client
            self.replica = replica
            lastUsed = now
        }
    }

    /// Sessions idle this long are closed.
    static let sessionIdle = TimeAmount.seconds(120)
    /// Sessions per replica at most; the least recently used goes first.
    static let sessionsPerReplicaMax = 512

    public let replicas: [ReplicaID]
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: any EventLoop
    let replicaAddresses: [ReplicaID: SocketAddress]
    let twinAddresses: [ReplicaID: SocketAddress]
    var fronts: [ReplicaID: DatagramSocket] = [:]
    var links: [Pair: DatagramSocket] = [:]
    var sessions: [ReplicaID: [String: Session]] = [:]
    var twinsRunning = Set<ReplicaID>()
    var faults = NetworkFaults()
    var rng: SplitMix64
    var counters = ProxyCounters()
    var open = true
    private var sweepTask: RepeatedTask?

    /// Binds the front sockets at `front` and a link socket per pair of replicas on
    /// `linkHost`; replicas listen at `replicaAddresses`, twins at `twinAddresses`.
    public static func start(
        front: [ReplicaID: HostPort], replicaAddresses: [ReplicaID: HostPort], twinAddresses: [ReplicaID: HostPort],
        linkHost: String = "127.0.0.1", seed: UInt64
    ) async throws -> FaultProxy {
        func resolve(_ a: HostPort) throws -> SocketAddress { try SocketAddress.makeAddressResolvingHost(a.host, port: a.port) }
        let proxy = FaultProxy(
            replicas: front.keys.sorted(), replicaAddresses: try replicaAddresses.mapValues(resolve),
            twinAddresses: try twinAddresses.mapValues(resolve), seed: seed)
        do {
            try await proxy.bind(front: front, linkHost: linkHost)
        } catch {
            await proxy.close()
            throw error
        }
        return proxy
    }

    private init(replicas: [ReplicaID], replicaAddresses: [ReplicaID: SocketAddress], twinAddresses: [ReplicaID: SocketAddress], seed: UInt64) {
        self.replicas = replicas
        self.replicaAddresses = replicaAddresses
        self.twinAddresses = twinAddresses
        loop = group.next()
        rng = SplitMix64(seed: seed)
    }

    private func bind(front: [ReplicaID: HostPort], linkHost: String) async throws {
        for id in replicas {
            let address = front[id]!
            do {
                fronts[id] = try await DatagramSocket.bind(on: loop, host: address.host, port: address.port) { [self] bytes, source in
                    fromClient(bytes, source: source, to: id)
                }.get()
            } catch {
                throw RuntimeError.bind(address.description, "\(error)")
            }
        }
        for (index, a) in replicas.enumerated() {
            for b in replicas[(index + 1)...] {
                let pair = Pair(a, b)
                links[pair] = try await DatagramSocket.bind(on: loop, host: linkHost, port: 0) { [self] bytes, source in
                    onLink(bytes, source: source, pair: pair)
                }.get()
            }
        }
        sweepTask = loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { [self] _ in sweepSessions() }
    }

    /// Where replica `a` reaches replica `b` (and `b` reaches `a`).
    public func linkAddress(_ a: ReplicaID, _ b: ReplicaID) -> HostPort {
        let local = links[Pair(a, b)]!.localAddress
        return HostPort(host: local.ipAddress ?? "127.0.0.1", port: local.port ?? 0)
    }

    /// Replaces the faults in force.
    public func setFaults(_ faults: NetworkFaults) async {
        try? await loop.submit { [self] in self.faults = faults }.get()
    }

    /// Whether the twin of `id` is running and should get copies of `id`'s traffic.
    public func setTwin(_ id: ReplicaID, running: Bool) async {
        try? await loop.submit { [self] in
            if running { twinsRunning.insert(id) } else { twinsRunning.remove(id) }
        }.get()
    }

    public func currentCounters() async -> ProxyCounters {
        (try? await loop.submit { [self] in
            var c = counters
            c.sessions = sessions.values.reduce(0) { $0 + $1.count }
            return c
        }.get()) ?? ProxyCounters()
    }

    public func close() async {
        try? await loop.submit { [self] in
            open = false
            sweepTask?.cancel()
            let sockets = Array(fronts.values) + Array(links.values) + sessions.values.flatMap { $0.values.compactMap(\.socket) }
            for socket in sockets { _ = socket.close() }
            sessions = [:]
        }.get()
        try? await group.shutdownGracefully()
    }

    // MARK: On the loop

    /// The addresses that deliver to replica `id`: its own, and its twin's while one runs.
    func destinations(_ id: ReplicaID) -> [SocketAddress] {
        var out = [replicaAddresses[id]!]
        if twinsRunning.contains(id), let twin = twinAddresses[id] { out.append(twin) }
        return out
    }

    /// Whether `source` is replica `id` (or its twin).
    func isReplica(_ id: ReplicaID, _ source: SocketAddress) -> Bool {
        source == replicaAddresses[id] || (twinsRunning.contains(id) && source == twinAddresses[id])
    }

    func onLink(_ bytes: [UInt8], source: SocketAddress, pair: Pair) {
        counters.received += 1
        let socket = links[pair]!
        if isReplica(pair.low, source) {
            forward(bytes, from: .replica(pair.low), to: .replica(pair.high), through: socket, destinations: destinations(pair.high))
        } else if isReplica(pair.high, source) {
            forward(bytes, from: .replica(pair.high), to: .replica(pair.low), through: socket, destinations: destinations(pair.low))
        } else {
            counters.unknownSource += 1
        }
    }

    func fromClient(_ bytes: [UInt8], source: SocketAddress, to id: ReplicaID) {
        counters.received += 1
        guard open else { return }
        let key = "\(source)"
        let now = NIODeadline.now()
        if let session = sessions[id]?[key] {
            session.lastUsed = now
            guard let socket = session.socket else {
                if session.pending.count < 64 { session.pending.append(bytes) }
                return
            }
            return forward(bytes, from: .client, to: .replica(id), through: socket, destinations: destinations(id))
        }
        let session = Session(client: source, replica: id, now: now)
        session.pending.append(bytes)
        if (sessions[id]?.count ?? 0) >= Self.sessionsPerReplicaMax, let oldest = sessions[id]?.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            sessions[id]?[oldest.key] = nil
            _ = oldest.value.socket?.close()
        }
        sessions[id, default: [:]][key] = session
        DatagramSocket.bind(on: loop, host: "127.0.0.1", port: 0) { [self] bytes, from in
            toClient(bytes, source: from, session: session)
        }.whenComplete { [self] result in
            switch result {
            case .success(let socket):
                guard open, sessions[id]?[key] === session else {
                    _ = socket.close()
                    return
                }
                session.socket = socket
                let pending = session.pending
                session.pending = []
                for datagram in pending {
                    forward(datagram, from: .client, to: .replica(id), through: socket, destinations: destinations(id))
                }
            case .failure:
                sessions[id]?[key] = nil
            }
        }
    }

    func toClient(_ bytes: [UInt8], source: SocketAddress, session: Session) {
        counters.received += 1
        guard isReplica(session.replica, source), let front = fronts[session.replica] else {
            counters.unknownSource += 1
            return
        }
        session.lastUsed = .now()
        forward(bytes, from: .replica(session.replica), to: .client, through: front, destinations: [session.client])
    }

    func sweepSessions() {
        let cutoff = NIODeadline.now() - Self.sessionIdle
        for (id, byClient) in sessions {
            for (key, session) in byClient where session.lastUsed < cutoff {
                sessions[id]?[key] = nil
                _ = session.socket?.close()
            }
        }
    }

    /// Applies the faults of the path to one datagram and sends what survives.
    func forward(_ bytes: [UInt8], from: Endpoint, to: Endpoint, through socket: DatagramSocket, destinations: [SocketAddress]) {
        guard let path = faults.effective(from: from, to: to) else {
            counters.blocked += 1
            return
        }
        if path.isNone {
            counters.forwarded += 1
            for destination in destinations { socket.send(bytes, to: destination) }
            return
        }
        if rng.chance(path.drop) {
            counters.dropped += 1
            return
        }
        var datagram = bytes
        if !datagram.isEmpty, rng.chance(path.corrupt) {
            counters.corrupted += 1
            for _ in 0...Int.random(in: 0...2, using: &rng) {
                datagram[Int.random(in: 0..<datagram.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
        }
        var waitMs = path.delayMs
        if path.jitterMs > 0 { waitMs += Double.random(in: -path.jitterMs...path.jitterMs, using: &rng) }
        if rng.chance(path.reorder) {
            counters.reordered += 1
            waitMs += Double.random(in: 1...max(10, 2 * path.delayMs), using: &rng)
        }
        var waits = [max(0, waitMs)]
        if rng.chance(path.duplicate) {
            counters.duplicated += 1
            waits.append(max(0, waitMs) + Double.random(in: 0...5, using: &rng))
        }
        counters.forwarded += 1
        let faulty = datagram
        for wait in waits {
            if wait < 0.05 {
                for destination in destinations { socket.send(faulty, to: destination) }
            } else {
                counters.delayed += 1
                loop.scheduleTask(in: .nanoseconds(Int64(wait * 1_000_000))) { [self] in
                    guard open else { return }
                    for destination in destinations { socket.send(faulty, to: destination) }
                }
            }
        }
    }
}
