public import Foundation
public import PBFTByzantine
import PBFTCheck
import PBFTTestbed

/// A fresh directory per test, removed afterwards.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init() {
        path = NSTemporaryDirectory() + "pbft-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func write(_ name: String, _ text: String, mode: Int = 0o600) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        return p
    }
}

public struct MissingBinary: Error, CustomStringConvertible {
    public var description: String { "the pbft executable was not built next to the test bundle" }
}

/// The built `pbft` executable, as a user would run it.
public enum PBFTBinary {
    public static let url: URL? = {
        // `swift test` runs the test bundle from the products directory, beside `pbft`.
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
        ]
        return candidates.map { $0.appendingPathComponent("pbft") }.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `pbft` to completion.
    public static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        guard let url else { throw MissingBinary() }
        process.executableURL = url
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Starts `pbft` in the background with its output going to `logPath`.
    public static func start(_ arguments: [String], logPath: String) throws -> Process {
        guard let url else { throw MissingBinary() }
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }
}

/// Waits for `condition` with a deadline, polling; returns whether it held in time.
public func eventually(within seconds: Double, every interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return try condition()
}

/// The tests' seeded generator is the sources' own (PBFTByzantine's SplitMix64).
public typealias SplitMix64 = PBFTByzantine.SplitMix64

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A base port whose next `count` UDP ports on 127.0.0.1 are free now (the testbed's own
/// choice, below the ephemeral range).
public func freeUDPPortRange(count: Int) throws -> Int { try consecutiveFreeUDPPorts(count: count) }

/// Sends one UDP datagram to 127.0.0.1:`port` from a fresh socket.
public func sendDatagram(_ bytes: [UInt8], toPort port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    sendDatagram(bytes, from: fd, toPort: port)
}

/// Sends one UDP datagram from socket `fd` to 127.0.0.1:`port`.
func sendDatagram(_ bytes: [UInt8], from fd: Int32, toPort port: Int) {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = bytes.withUnsafeBytes { buffer in
        withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
}

/// A replica's execution.jsonl (docs/runtime.md), read with the checkers' own reader
/// (`PBFTCheck.ExecutionRecord`), in the shape the process tests compare.
public enum ExecutionLogFile {
    /// Executed batches by sequence number, each as "batch|requester/timestamp/result,...";
    /// throws if the replica executed one sequence number twice differently.
    public static func batches(at path: String) throws -> [UInt64: String] {
        let record = try ExecutionRecord.read(path)
        if let seq = record.reexecutedDifferently.first { throw TestFailure("\(path): sequence number \(seq) executed twice differently") }
        return record.batches.mapValues { executed in
            executed.batch + "|" + executed.requests.map { "\($0.requester)/\($0.timestamp)/\($0.result)" }.joined(separator: ",")
        }
    }

    /// The highest sequence number executed or installed by state transfer.
    public static func lastExecuted(at path: String) -> UInt64 {
        guard let record = try? ExecutionRecord.read(path) else { return 0 }
        return max(record.batches.keys.max() ?? 0, record.installed.max() ?? 0)
    }

    /// Sequence numbers at which two replicas' logs hold different batches.
    public static func disagreements(_ a: [UInt64: String], _ b: [UInt64: String]) -> [UInt64] {
        a.compactMap { seq, batch in b[seq].map { $0 == batch ? nil : seq } ?? nil }.sorted()
    }
}

/// A UDP socket on 127.0.0.1 that sends datagrams and collects what comes back: an outsider
/// on the wire, replaying what it captured and counting the answers.
public final class UDPProbe: @unchecked Sendable {
    let fd: Int32

    public init() throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind: \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8], toPort port: Int) {
        sendDatagram(bytes, from: fd, toPort: port)
    }

    /// Every datagram that arrives within `seconds` (or until `until` of them did).
    public func receive(within seconds: Double, until count: Int = .max) -> [[UInt8]] {
        var received: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline, received.count < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { received.append(Array(buffer[0..<n])) }
        }
        return received
    }
}
