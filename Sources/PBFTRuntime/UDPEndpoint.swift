package import NIOCore
import NIOPosix
import PBFTWire

/// One UDP socket on a one-thread event loop, with the settings the pitfalls call for: a
/// receive allocator as large as the largest datagram (NIO's default silently truncates
/// above 2048 bytes; with vectorised reads, as large as that many of them) and a 4 MiB
/// receive buffer so a burst is not dropped by the kernel.
/// Everything that touches the owner's state runs on `eventLoop`.
final class UDPEndpoint: @unchecked Sendable {
    /// The threads it owns (none when it runs on a loop it was given).
    let group: MultiThreadedEventLoopGroup?
    /// The loop that owns the socket: datagrams arrive here, and the owner does its own work
    /// here too (a replica steps its core on it: no thread hop between a datagram and the
    /// core, nor between the core and the socket).
    let eventLoop: any EventLoop
    private(set) var channel: (any Channel)?

    init() {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        eventLoop = group.next()
    }

    /// An endpoint on a loop it shares with others (many clients in one process, one thread
    /// per core instead of one per client).
    init(on loop: any EventLoop) {
        group = nil
        eventLoop = loop
    }

    /// Binds `host:port` (port 0 picks a free one) and calls `onDatagram` on the event loop
    /// for each datagram received, and `onReadComplete` after each burst the socket's reads
    /// returned (one datagram when idle, several under load).
    func bind(
        host: String, port: Int, onDatagram: @escaping @Sendable ([UInt8], SocketAddress) -> Void,
        onReadComplete: (@Sendable () -> Void)? = nil
    ) async throws -> SocketAddress {
        let socket = try await DatagramSocket.bind(on: eventLoop, host: host, port: port, onDatagram: onDatagram, onReadComplete: onReadComplete).get()
        channel = socket.channel
        return socket.localAddress
    }

    /// Sends datagrams; called on the event loop. A failed send (the peer's port closed, a
    /// full buffer) is the same as a lost datagram: retransmission covers it.
    func send(_ datagrams: [[UInt8]], to address: SocketAddress) {
        send(datagrams.map { ($0, address) })
    }

    /// Sends datagrams, each to its address, from any thread: one hop to the socket's loop,
    /// then one flush, so the kernel gets them in as few calls as it allows (sendmmsg).
    func send(_ datagrams: [(bytes: [UInt8], to: SocketAddress)]) {
        guard let channel, !datagrams.isEmpty else { return }
        let write: @Sendable () -> Void = {
            for datagram in datagrams {
                var buffer = channel.allocator.buffer(capacity: datagram.bytes.count)
                buffer.writeBytes(datagram.bytes)
                channel.write(AddressedEnvelope(remoteAddress: datagram.to, data: buffer), promise: nil)
            }
            channel.flush()
        }
        if channel.eventLoop.inEventLoop { write() } else { channel.eventLoop.execute(write) }
    }

    func close() async {
        try? await channel?.close()
        try? await group?.shutdownGracefully()
    }
}

/// Frames waiting to leave, by address in the order the addresses were first named: each
/// address's frames leave in order, bundled (`DatagramCodec.datagrams(bundling:)`), so a
/// burst for one receiver takes one datagram, not one per frame.
struct Outbox {
    private var order: [SocketAddress] = []
    private var frames: [SocketAddress: [[UInt8]]] = [:]

    var isEmpty: Bool { order.isEmpty }

    mutating func add(_ frame: [UInt8], to addresses: [SocketAddress]) {
        for address in addresses {
            if frames[address] == nil { order.append(address) }
            frames[address, default: []].append(frame)
        }
    }

    /// The datagrams for everything added (fragments numbered by `messageID`); empties the outbox.
    mutating func take(messageID: () -> UInt64) -> [(bytes: [UInt8], to: SocketAddress)] {
        var datagrams: [(bytes: [UInt8], to: SocketAddress)] = []
        for address in order {
            for bytes in DatagramCodec.datagrams(bundling: frames[address] ?? [], messageID: messageID) {
                datagrams.append((bytes, address))
            }
        }
        self = Outbox()
        return datagrams
    }
}

/// One bound UDP socket on a given event loop, configured as `UDPEndpoint`'s is. The fault
/// proxy binds many of these on one loop.
package final class DatagramSocket: @unchecked Sendable {
    /// Datagrams one read system call may return.
    static let vectorReads = 8

    package let channel: any Channel
    package let localAddress: SocketAddress

    private init(channel: any Channel, localAddress: SocketAddress) {
        self.channel = channel
        self.localAddress = localAddress
    }

    /// Binds `host:port` on `loop`; `onDatagram` runs on `loop` for each datagram received,
    /// `onReadComplete` after each burst of them.
    package static func bind(
        on loop: any EventLoop, host: String, port: Int, onDatagram: @escaping @Sendable ([UInt8], SocketAddress) -> Void,
        onReadComplete: (@Sendable () -> Void)? = nil
    ) -> EventLoopFuture<DatagramSocket> {
        // No SO_REUSEADDR: on Linux it lets a second UDP socket bind a port already in use
        // and quietly take its datagrams (two replicas on one address); without it the
        // second bind fails with a clear error.
        DatagramBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(ChannelOptions.socketOption(.so_sndbuf), value: 4 << 20)
            // Vectorised reads (recvmmsg): NIO splits one buffer into `vectorReads` slices, so
            // the buffer holds that many of the largest datagram.
            .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: vectorReads)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536 * vectorReads))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(InboundDatagrams(onDatagram, onReadComplete: onReadComplete))
                }
            }
            .bind(host: host, port: port)
            .flatMapThrowing { channel in
                guard let local = channel.localAddress else { throw RuntimeError.bind("\(host):\(port)", "no local address") }
                return DatagramSocket(channel: channel, localAddress: local)
            }
    }

    /// Sends one datagram; call on the socket's loop. A failed send is a lost datagram.
    package func send(_ datagram: [UInt8], to address: SocketAddress) {
        var buffer = channel.allocator.buffer(capacity: datagram.count)
        buffer.writeBytes(datagram)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
    }

    package func close() -> EventLoopFuture<Void> { channel.close() }
}

private final class InboundDatagrams: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onDatagram: @Sendable ([UInt8], SocketAddress) -> Void
    let onReadComplete: (@Sendable () -> Void)?

    init(_ onDatagram: @escaping @Sendable ([UInt8], SocketAddress) -> Void, onReadComplete: (@Sendable () -> Void)?) {
        self.onDatagram = onDatagram
        self.onReadComplete = onReadComplete
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        var buffer = envelope.data
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        onDatagram(bytes, envelope.remoteAddress)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        onReadComplete?()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like surface here; UDP loss is normal.
    }
}

public enum RuntimeError: Error, CustomStringConvertible {
    case bind(String, String)
    case address(String, String)
    case storage(String)
    case configuration(String)

    public var description: String {
        switch self {
        case .bind(let address, let reason): "cannot bind UDP \(address): \(reason)"
        case .address(let address, let reason): "cannot resolve \(address): \(reason)"
        case .storage(let reason): reason
        case .configuration(let reason): reason
        }
    }
}
