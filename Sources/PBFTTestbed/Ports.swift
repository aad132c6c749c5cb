#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket bound to 127.0.0.1:`port` (0: any free port), or nil when that fails.
private func bindLoopbackUDP(port: Int) -> (fd: Int32, port: Int)? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else {
        close(fd)
        return nil
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// UDP ports on 127.0.0.1 held open until `release()`: while held, nothing else (the
/// proxy's own sockets, say) can be given them; released just before the replicas bind them.
final class ReservedPorts {
    let ports: [Int]
    private var sockets: [Int32]

    init(count: Int) throws {
        var held: [(fd: Int32, port: Int)] = []
        for _ in 0..<count {
            guard let socket = bindLoopbackUDP(port: 0) else {
                held.forEach { close($0.fd) }
                throw FaultError("cannot find a free UDP port: \(String(cString: strerror(errno)))")
            }
            held.append(socket)
        }
        ports = held.map(\.port)
        sockets = held.map(\.fd)
    }

    func release() {
        sockets.forEach { close($0) }
        sockets = []
    }

    deinit { release() }
}

/// A base port such that `count` consecutive UDP ports on 127.0.0.1 are free now, below the
/// kernel's ephemeral range (32768 and up on Linux), so sockets bound to port 0 elsewhere
/// cannot be handed one of them later.
public func consecutiveFreeUDPPorts(count: Int) throws -> Int {
    for _ in 0..<100 {
        let base = Int.random(in: 20_000...(32_000 - count))
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for port in base..<(base + count) {
            guard let socket = bindLoopbackUDP(port: port) else { break }
            held.append(socket.fd)
        }
        if held.count == count { return base }
    }
    throw FaultError("no \(count) consecutive free UDP ports between 20000 and 32000")
}

/// Whether UDP port `port` on 127.0.0.1 is free now.
func isFreeUDPPort(_ port: Int) -> Bool {
    guard let socket = bindLoopbackUDP(port: port) else { return false }
    close(socket.fd)
    return true
}
