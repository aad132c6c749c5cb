import Foundation
import NIOCore
import NIOPosix
import PBFTRuntime
import PBFTTestSupport
import PBFTTestbed
import PBFTWire
import Synchronization
import Testing

/// The proxy in-process, between plain UDP sockets standing in for two replicas and a client.
@Suite(.serialized) struct FaultProxyTests {
    /// A socket that records what it receives, with the sender and the time.
    final class Inbox: Sendable {
        struct Arrival: Sendable {
            let bytes: [UInt8]
            let from: SocketAddress
            let at: ContinuousClock.Instant
        }

        let arrivals = Mutex<[Arrival]>([])
        var all: [Arrival] { arrivals.withLock { $0 } }
        func take() -> [Arrival] { arrivals.withLock { a in defer { a = [] }; return a } }
    }

    struct Rig {
        let group: MultiThreadedEventLoopGroup
        let proxy: FaultProxy
        let replicas: [DatagramSocket]
        let inboxes: [Inbox]
        let client: DatagramSocket
        let clientInbox: Inbox
        let front: [HostPort]

        func close() async {
            await proxy.close()
            try? await group.shutdownGracefully()
        }

        func link(_ a: Int, _ b: Int) throws -> SocketAddress {
            let address = proxy.linkAddress(ReplicaID(UInt32(a)), ReplicaID(UInt32(b)))
            return try SocketAddress(ipAddress: address.host, port: address.port)
        }

        /// Replica `a` sends `bytes` to replica `b` the way a replica does: to `b`'s address in its cluster file.
        func send(_ bytes: [UInt8], from a: Int, to b: Int) async throws {
            let socket = replicas[a]
            let target = try link(a, b)
            try await socket.channel.eventLoop.submit { socket.send(bytes, to: target) }.get()
        }
    }

    func rig(seed: UInt64 = 7) async throws -> Rig {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var replicas: [DatagramSocket] = []
        var inboxes: [Inbox] = []
        for _ in 0..<2 {
            let inbox = Inbox()
            replicas.append(try await DatagramSocket.bind(on: loop, host: "127.0.0.1", port: 0) { bytes, from in
                inbox.arrivals.withLock { $0.append(.init(bytes: bytes, from: from, at: .now)) }
            }.get())
            inboxes.append(inbox)
        }
        let clientInbox = Inbox()
        let client = try await DatagramSocket.bind(on: loop, host: "127.0.0.1", port: 0) { bytes, from in
            clientInbox.arrivals.withLock { $0.append(.init(bytes: bytes, from: from, at: .now)) }
        }.get()
        let base = try freeUDPPortRange(count: 2)
        let front = [HostPort(host: "127.0.0.1", port: base), HostPort(host: "127.0.0.1", port: base + 1)]
        let proxy = try await FaultProxy.start(
            front: [ReplicaID(0): front[0], ReplicaID(1): front[1]],
            replicaAddresses: [ReplicaID(0): HostPort(host: "127.0.0.1", port: replicas[0].localAddress.port!), ReplicaID(1): HostPort(host: "127.0.0.1", port: replicas[1].localAddress.port!)],
            twinAddresses: [:], seed: seed)
        return Rig(group: group, proxy: proxy, replicas: replicas, inboxes: inboxes, client: client, clientInbox: clientInbox, front: front)
    }

    @Test("a link delivers each way, from the address the receiver knows the sender by")
    func linkRouting() async throws {
        let rig = try await rig()
        try await rig.send([1, 2, 3], from: 0, to: 1)
        try await rig.send([4, 5], from: 1, to: 0)
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 1 && rig.inboxes[0].all.count == 1 })
        #expect(rig.inboxes[1].all.first?.bytes == [1, 2, 3])
        #expect(rig.inboxes[1].all.first?.from == (try rig.link(0, 1)))
        #expect(rig.inboxes[0].all.first?.bytes == [4, 5])
        // A stranger writing to the link socket is not forwarded.
        let stranger = rig.client
        let target = try rig.link(0, 1)
        try await stranger.channel.eventLoop.submit { stranger.send([9], to: target) }.get()
        try await Task.sleep(for: .milliseconds(100))
        #expect(rig.inboxes[0].all.count == 1 && rig.inboxes[1].all.count == 1)
        #expect(await rig.proxy.currentCounters().unknownSource == 1)
        await rig.close()
    }

    @Test("a replica added while running: old replicas reach it at its front address and see it there; it sees them at their links; after a restart with routes, through the link both ways")
    func addedReplica() async throws {
        let rig = try await rig()
        let loop = rig.group.next()
        let inbox = Inbox()
        let newcomer = try await DatagramSocket.bind(on: loop, host: "127.0.0.1", port: 0) { bytes, from in
            inbox.arrivals.withLock { $0.append(.init(bytes: bytes, from: from, at: .now)) }
        }.get()
        let frontPort = try freeUDPPortRange(count: 1)
        let front = try SocketAddress(ipAddress: "127.0.0.1", port: frontPort)
        try await rig.proxy.addReplica(
            ReplicaID(2), front: HostPort(host: "127.0.0.1", port: frontPort),
            address: HostPort(host: "127.0.0.1", port: newcomer.localAddress.port!), twin: HostPort(host: "127.0.0.1", port: 1))
        let link = rig.proxy.linkAddress(ReplicaID(0), ReplicaID(2))
        let link02 = try SocketAddress(ipAddress: link.host, port: link.port)

        // Replica 0 started before 2 existed: it knows 2 only by its public address.
        let old = rig.replicas[0]
        try await old.channel.eventLoop.submit { old.send([1], to: front) }.get()
        #expect(eventually(within: 5) { inbox.all.count == 1 })
        #expect(inbox.all.first?.from == link02, "the newcomer sees replica 0 at their link, as its cluster file says")
        try await newcomer.channel.eventLoop.submit { newcomer.send([2], to: link02) }.get()
        #expect(eventually(within: 5) { rig.inboxes[0].all.count == 1 })
        #expect(rig.inboxes[0].all.first?.from == front, "replica 0 sees the newcomer at its public address, as its membership says")

        // Restarted with a file that routes it through the link, replica 0 sees the newcomer there.
        await rig.proxy.setRoutes(of: ReplicaID(0), linked: [ReplicaID(1), ReplicaID(2)])
        try await newcomer.channel.eventLoop.submit { newcomer.send([3], to: link02) }.get()
        #expect(eventually(within: 5) { rig.inboxes[0].all.count == 2 })
        #expect(rig.inboxes[0].all.last?.from == link02)
        // A client at the front still gets a session, not a replica's path.
        let client = rig.client
        try await client.channel.eventLoop.submit { client.send([4], to: front) }.get()
        #expect(eventually(within: 5) { inbox.all.count == 2 })
        #expect(inbox.all.last?.from != link02)
        _ = try? await newcomer.close().get()
        await rig.close()
    }

    @Test("a client's datagrams reach the replica through a session, and the answer comes back from the front address")
    func clientSessions() async throws {
        let rig = try await rig()
        let front = try SocketAddress(ipAddress: "127.0.0.1", port: rig.front[1].port)
        let client = rig.client
        try await client.channel.eventLoop.submit { client.send([7, 7], to: front) }.get()
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 1 })
        let session = try #require(rig.inboxes[1].all.first?.from)
        let replica = rig.replicas[1]
        try await replica.channel.eventLoop.submit { replica.send([8], to: session) }.get()
        #expect(eventually(within: 5) { rig.clientInbox.all.count == 1 })
        #expect(rig.clientInbox.all.first?.from == front)
        #expect(rig.clientInbox.all.first?.bytes == [8])
        #expect(await rig.proxy.currentCounters().sessions == 1)
        await rig.close()
    }

    @Test("a one-way partition loses one direction only; heal restores it")
    func oneWayPartition() async throws {
        let rig = try await rig()
        var faults = NetworkFaults()
        faults.partition = try Partition(groups: [[ReplicaID(0)]], oneWay: true, replicas: [ReplicaID(0), ReplicaID(1)])
        await rig.proxy.setFaults(faults)
        try await rig.send([1], from: 0, to: 1)
        try await rig.send([2], from: 1, to: 0)
        #expect(eventually(within: 5) { rig.inboxes[0].all.count == 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(rig.inboxes[1].all.isEmpty, "0 -> 1 is cut")
        #expect(await rig.proxy.currentCounters().blocked == 1)
        await rig.proxy.setFaults(NetworkFaults())
        try await rig.send([3], from: 0, to: 1)
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 1 })
        await rig.close()
    }

    @Test("delay, duplicate, corrupt and drop do what they say")
    func packetFaults() async throws {
        let rig = try await rig()
        let path = { (fault: PacketFault) in
            var faults = NetworkFaults()
            faults.links[Link(from: ReplicaID(0), to: ReplicaID(1))] = fault.applied(to: PacketFaults())
            return faults
        }

        await rig.proxy.setFaults(path(.delay(ms: 80, jitterMs: 0)))
        let sent = ContinuousClock.now
        try await rig.send([1], from: 0, to: 1)
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 1 })
        let waited = try #require(rig.inboxes[1].take().first).at - sent
        #expect(waited >= .milliseconds(79), "delayed \(waited)")

        await rig.proxy.setFaults(path(.duplicate(1)))
        try await rig.send([2], from: 0, to: 1)
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 2 })
        #expect(rig.inboxes[1].take().map(\.bytes) == [[2], [2]])

        await rig.proxy.setFaults(path(.corrupt(1)))
        let original = [UInt8](repeating: 0x55, count: 64)
        try await rig.send(original, from: 0, to: 1)
        #expect(eventually(within: 5) { rig.inboxes[1].all.count == 1 })
        let corrupted = try #require(rig.inboxes[1].take().first?.bytes)
        let flipped = zip(original, corrupted).filter { $0 != $1 }.count
        #expect(corrupted.count == 64 && (1...3).contains(flipped), "\(flipped) bytes flipped")

        await rig.proxy.setFaults(path(.drop(0.5)))
        for i in 0..<400 { try await rig.send([UInt8(truncatingIfNeeded: i)], from: 0, to: 1) }
        try await rig.send([1], from: 1, to: 0)
        #expect(eventually(within: 5) { rig.inboxes[0].all.count == 1 }, "the other direction is untouched")
        try await Task.sleep(for: .milliseconds(200))
        let arrived = rig.inboxes[1].take().count
        let counters = await rig.proxy.currentCounters()
        #expect(arrived + counters.dropped == 400)
        #expect((140...260).contains(arrived), "about half of 400 arrived: \(arrived)")
        await rig.close()
    }
}
