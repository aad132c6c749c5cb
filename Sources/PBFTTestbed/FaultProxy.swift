import NIOCore
import NIOPosix
import PBFTByzantine
import PBFTRuntime
public import PBFTWire
import Synchronization

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
/// Replicas added while the cluster runs (`addReplica`) get a front socket and a link
/// socket per pair too. The new replica's own cluster file routes it through the links,
/// but a replica already running read its file before the newcomer existed: it sends to
/// the newcomer's public address, the front socket. So a front socket forwards what comes
/// from a replica's address to its own replica through their link (the newcomer sees the
/// peer at the link, as its file says), and for such a pair the newcomer's datagrams to the
/// old replica leave through the front socket (the old replica sees the newcomer at its
/// public address, as its membership says). `setRoutes` tells the proxy when a replica
/// restarts with a file that routes it through the link instead.
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

    /// A direction of a pair: `from` reaches `to` at `to`'s front socket, not through their link.
    struct Directed: Hashable {
        let from: ReplicaID
        let to: ReplicaID
    }

    /// Confined to the loop (replicas are added on it).
    var replicas: [ReplicaID]
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: any EventLoop
    var replicaAddresses: [ReplicaID: SocketAddress]
    var twinAddresses: [ReplicaID: SocketAddress]
    var fronts: [ReplicaID: DatagramSocket] = [:]
    var links: [Pair: DatagramSocket] = [:]
    /// Pairs one side of which reaches the other at its front socket (it started before the other was added).
    var viaFront = Set<Directed>()
    /// The link sockets' addresses, readable from any thread.
    private let linkAddresses = Mutex<[Pair: HostPort]>([:])
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
                    fromFront(bytes, source: source, to: id)
                }.get()
            } catch {
                throw RuntimeError.bind(address.description, "\(error)")
            }
        }
        for (index, a) in replicas.enumerated() {
            for b in replicas[(index + 1)...] {
                links[Pair(a, b)] = try await bindLink(Pair(a, b), host: linkHost)
            }
        }
        sweepTask = loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { [self] _ in sweepSessions() }
    }

    private func bindLink(_ pair: Pair, host: String) async throws -> DatagramSocket {
        let socket = try await DatagramSocket.bind(on: loop, host: host, port: 0) { [self] bytes, source in
            onLink(bytes, source: source, pair: pair)
        }.get()
        let local = socket.localAddress
        linkAddresses.withLock { $0[pair] = HostPort(host: local.ipAddress ?? host, port: local.port ?? 0) }
        return socket
    }

    /// Where replica `a` reaches replica `b` (and `b` reaches `a`) through their link.
    public func linkAddress(_ a: ReplicaID, _ b: ReplicaID) -> HostPort {
        linkAddresses.withLock { $0[Pair(a, b)]! }
    }

    /// Adds replica `id` while the cluster runs: a front socket at its public address `front`
    /// and a link socket per pair with every replica the proxy has. It listens at `address`
    /// (its twin at `twin`). The replicas there already reach it at the front socket until
    /// `setRoutes` says otherwise.
    public func addReplica(_ id: ReplicaID, front: HostPort, address: HostPort, twin: HostPort, linkHost: String = "127.0.0.1") async throws {
        let resolved = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        let twinResolved = try SocketAddress.makeAddressResolvingHost(twin.host, port: twin.port)
        let existing = try await loop.submit { [self] in
            guard !replicas.contains(id) else { throw FaultError("the proxy already has replica \(id.rawValue)") }
            return replicas
        }.get()
        var bound: [DatagramSocket] = []
        do {
            let frontSocket: DatagramSocket
            do {
                frontSocket = try await DatagramSocket.bind(on: loop, host: front.host, port: front.port) { [self] bytes, source in
                    fromFront(bytes, source: source, to: id)
                }.get()
            } catch {
                throw RuntimeError.bind(front.description, "\(error)")
            }
            bound.append(frontSocket)
            var newLinks: [Pair: DatagramSocket] = [:]
            for other in existing {
                let socket = try await bindLink(Pair(other, id), host: linkHost)
                bound.append(socket)
                newLinks[Pair(other, id)] = socket
            }
            let added = newLinks
            try await loop.submit { [self] in
                fronts[id] = frontSocket
                links.merge(added) { a, _ in a }
                replicaAddresses[id] = resolved
                twinAddresses[id] = twinResolved
                for other in existing { viaFront.insert(Directed(from: other, to: id)) }
                replicas.append(id)
            }.get()
        } catch {
            for socket in bound { _ = try? await socket.close().get() }
            throw error
        }
    }

    /// Replica `id` now runs with a cluster file that routes it to each of `linked` through
    /// their link socket, and to every other replica at its front socket.
    public func setRoutes(of id: ReplicaID, linked: Set<ReplicaID>) async {
        try? await loop.submit { [self] in
            for other in replicas where other != id {
                if linked.contains(other) {
                    viaFront.remove(Directed(from: id, to: other))
                } else {
                    viaFront.insert(Directed(from: id, to: other))
                }
            }
        }.get()
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
        if isReplica(pair.low, source) {
            forward(bytes, from: .replica(pair.low), to: .replica(pair.high), through: socket(from: pair.low, to: pair.high), destinations: destinations(pair.high))
        } else if isReplica(pair.high, source) {
            forward(bytes, from: .replica(pair.high), to: .replica(pair.low), through: socket(from: pair.high, to: pair.low), destinations: destinations(pair.low))
        } else {
            counters.unknownSource += 1
        }
    }

    /// The socket `to` sees `from` at: their link, or `from`'s front socket when `to`
    /// started before `from` was added and knows only its public address.
    func socket(from: ReplicaID, to: ReplicaID) -> DatagramSocket {
        viaFront.contains(Directed(from: to, to: from)) ? fronts[from]! : links[Pair(from, to)]!
    }

    /// What a replica sends to `id`'s front socket (it knows `id` only by its public
    /// address) goes on to `id` through their link; anything else is a client's.
    func fromFront(_ bytes: [UInt8], source: SocketAddress, to id: ReplicaID) {
        if let peer = replicas.first(where: { $0 != id && isReplica($0, source) }), let link = links[Pair(peer, id)] {
            counters.received += 1
            return forward(bytes, from: .replica(peer), to: .replica(id), through: link, destinations: destinations(id))
        }
        fromClient(bytes, source: source, to: id)
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
