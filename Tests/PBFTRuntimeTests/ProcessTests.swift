import Foundation
import PBFTCluster
import PBFTCore
import PBFTKeyValue
import PBFTRuntime
import PBFTTestSupport
import PBFTWire
import Testing

/// A cluster of real `pbft replica` processes on 127.0.0.1 with free ports. Every process
/// it started is killed when it goes away, whatever the test did.
final class ProcessCluster: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let n: Int
    var processes: [Int: Process] = [:]
    let membership: Membership

    init(n: Int = 4, clients: Int = 4) throws {
        self.n = n
        let port = try freeUDPPortRange(count: n)
        let result = try PBFTBinary.run(["keygen", "--replicas", "\(n)", "--clients", "\(clients)", "--out", directory.file("keys"), "--base-port", "\(port)"])
        guard result.status == 0 else { throw TestFailure("keygen failed: \(result.stderr)") }
        membership = try ClusterFile.load(directory.file("keys/cluster.toml"))
    }

    deinit { for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    func dataDirectory(_ i: Int) -> String { directory.file("data/r\(i)") }
    func logPath(_ i: Int) -> String { directory.file("replica-\(i).log") }

    /// Protocol settings every replica of this cluster starts with.
    var replicaSettings = ["--tick-ms", "5", "--view-change-timeout-ticks", "100", "--checkpoint-interval", "32", "--log-window", "64"]

    func start(_ i: Int, extra: [String] = []) throws {
        processes[i] = try PBFTBinary.start([
            "replica", "--cluster", directory.file("keys/cluster.toml"), "--id", "\(i)", "--key", directory.file("keys/replica-\(i).key"),
            "--data", dataDirectory(i), "--exit-with-parent",
        ] + replicaSettings + extra, logPath: logPath(i))
    }

    func status(_ i: Int) throws -> [String: Any] {
        let keys = directory.file("keys")
        let result = try PBFTBinary.run(["ctl", "status", "--replica", "\(i)", "--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--json", "--timeout-ms", "5000"])
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    func startAll() throws { for i in 0..<n { try start(i) } }

    func kill9(_ i: Int) {
        guard let process = processes[i] else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop(_ i: Int) {
        guard let process = processes[i], process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    func clientNode(_ j: Int) throws -> ClientNode {
        try ClientNode(membership: membership, key: try KeyFile.load(directory.file("keys/client-\(j).key")), tickMilliseconds: 5, retransmitTicks: 60)
    }

    /// Runs `count` puts from each of the given clients, closed loop; returns their latencies in ms.
    func load(clients: [ClientNode], operations count: Int, tag: String, valueBytes: Int = 0) async throws -> [Double] {
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for (j, node) in clients.enumerated() {
                group.addTask {
                    var samples: [Double] = []
                    for i in 0..<count {
                        let start = Date()
                        let value = valueBytes == 0 ? Array("\(i)".utf8) : [UInt8](repeating: UInt8(truncatingIfNeeded: i &+ j), count: valueBytes)
                        let key = valueBytes == 0 ? "\(tag)-\(j)-\(i % 16)" : "\(tag)-\(j)-\(i)"
                        let result = try await node.submit(KeyValueOperation.put(key: Array(key.utf8), value: value).encoded(), timeoutMilliseconds: 30_000)
                        guard KeyValueResult.decode(result) == .ok else { throw TestFailure("put returned \(String(describing: KeyValueResult.decode(result)))") }
                        samples.append(Date().timeIntervalSince(start) * 1000)
                    }
                    return samples
                }
            }
            var all: [Double] = []
            for try await samples in group { all += samples }
            return all
        }
    }

    /// Each replica's executed batches by sequence number (a restart may execute one again, identically).
    func executions(_ i: Int) throws -> [UInt64: String] { try ExecutionLogFile.batches(at: dataDirectory(i) + "/execution.jsonl") }

    /// The highest sequence number replica `i` executed or installed by state transfer.
    func lastExecuted(_ i: Int) -> UInt64 { ExecutionLogFile.lastExecuted(at: dataDirectory(i) + "/execution.jsonl") }

    func log(_ i: Int) -> String { (try? String(contentsOfFile: logPath(i), encoding: .utf8)) ?? "" }
}

/// Real processes: the built `pbft` binary, UDP on 127.0.0.1.
@Suite(.serialized) struct ProcessTests {
    /// With one verifier thread the socket's thread checks everything (the default when
    /// replicas share a host's cores); with two, frames are spread over them.
    @Test(arguments: [1, 2])
    func fourReplicasServeAThousandOperationsAndAgree(verifierThreads: Int) async throws {
        let cluster = try ProcessCluster()
        cluster.replicaSettings += ["--verifier-threads", "\(verifierThreads)"]
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        let latencies = try await cluster.load(clients: clients, operations: 250, tag: "a")
        for client in clients { await client.close() }
        #expect(latencies.count == 1000)
        // A backup receives five votes per batch and needs three: the rest skip their check.
        let received = try cluster.status(1)["received"] as? [String: Any]
        #expect((received?["votes_unchecked"] as? Int ?? 0) > 0, "votes for complete certificates dropped unchecked: \(received ?? [:])")
        #expect((received?["checked_inline"] as? Int ?? 0) > 0, "frames checked on the socket's thread: \(received ?? [:])")
        let executed = try (0..<4).map { try cluster.executions($0) }
        let top = executed.map { $0.keys.max() ?? 0 }.max() ?? 0
        #expect(eventually(within: 10) { (0..<4).allSatisfy { cluster.lastExecuted($0) == top } }, "all replicas executed everything")
        let final = try (0..<4).map { try cluster.executions($0) }
        for i in 1..<4 {
            for (seq, batch) in final[i] { #expect(final[0][seq] == nil || final[0][seq] == batch, "replica \(i) disagrees at \(seq)") }
        }
        let requests = final[0].values.map { $0.split(separator: "|").last.map { $0.split(separator: ",").count } ?? 0 }.reduce(0, +)
        #expect(requests == 1000, "1,000 requests executed once each at replica 0")
    }

    /// Clients of one thread share a socket: a backup sends a batch's replies to them
    /// bundled, and their requests reach it bundled; each client gets its own results.
    @Test func clientsSharingAThreadGetTheirRepliesBundled() async throws {
        let cluster = try ProcessCluster(clients: 16)
        try cluster.startAll()
        let threads = ClientThreads(count: 1, tickMilliseconds: 5)
        let clients = try (0..<16).map { j in
            try ClientNode(membership: cluster.membership, key: try KeyFile.load(cluster.directory.file("keys/client-\(j).key")), retransmitTicks: 60, sharing: threads)
        }
        for client in clients { try await client.start(host: "127.0.0.1") }
        let latencies = try await cluster.load(clients: clients, operations: 30, tag: "s")
        // Each client reads back what it wrote last, through the same shared socket.
        for (j, client) in clients.enumerated() {
            let result = try await client.submit(KeyValueOperation.get(key: Array("s-\(j)-13".utf8)).encoded())
            #expect(KeyValueResult.decode(result) == .value(Array("29".utf8)), "client \(j) got its own answer")
        }
        for client in clients { await client.close() }
        await threads.shutdown()
        #expect(latencies.count == 16 * 30)
        #expect(threads.signatureChecks < 2 * 16 * 31, "reply roots checked once for the clients of a batch")
        let status = try cluster.status(1)
        let sent = status["sent"] as? [String: Any], received = status["received"] as? [String: Any]
        let framesSent = sent?["frames"] as? Int ?? 0, datagramsSent = sent?["datagrams"] as? Int ?? 0
        #expect((sent?["bundles"] as? Int ?? 0) > 0 && framesSent > datagramsSent, "replies went out bundled: \(sent ?? [:])")
        let framesReceived = received?["frames"] as? Int ?? 0, datagramsReceived = received?["datagrams"] as? Int ?? 0
        #expect(framesReceived > datagramsReceived, "requests arrived bundled: \(received ?? [:])")
    }

    @Test func killedPrimaryIsReplacedRestartedAndCatchesUp() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 50, tag: "before")
        cluster.kill9(0)
        let killed = Date()
        _ = try await cluster.load(clients: [clients[0]], operations: 1, tag: "after")
        let gap = Date().timeIntervalSince(killed)
        #expect(gap < 8, "an operation completed \(gap) s after the primary was killed")
        _ = try await cluster.load(clients: clients, operations: 50, tag: "new-view")
        #expect(clients[0].view.rawValue >= 1)

        try cluster.start(0)
        _ = try await cluster.load(clients: clients, operations: 100, tag: "rejoin")
        for client in clients { await client.close() }
        let target = (1..<4).map { cluster.lastExecuted($0) }.max() ?? 0
        #expect(eventually(within: 20) { cluster.lastExecuted(0) >= target }, "the restarted primary caught up: \(cluster.lastExecuted(0)) of \(target)")
        #expect(cluster.log(0).contains("recovered"))
        print("process test: first operation after SIGKILL of the primary took \(Int(gap * 1000)) ms")
    }

    @Test func replicaWithAnEmptyDataDirectoryCatchesUpByStateTransfer() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 40, tag: "a")
        cluster.kill9(3)
        try FileManager.default.removeItem(atPath: cluster.dataDirectory(3))
        _ = try await cluster.load(clients: clients, operations: 40, tag: "b")
        try cluster.start(3, extra: ["--lost-state"])
        _ = try await cluster.load(clients: clients, operations: 150, tag: "c")
        for client in clients { await client.close() }
        let target = (0..<3).map { cluster.lastExecuted($0) }.max() ?? 0
        #expect(eventually(within: 20) { cluster.lastExecuted(3) >= target }, "replica 3 caught up: \(cluster.lastExecuted(3)) of \(target)")
        let log = (try? String(contentsOfFile: cluster.dataDirectory(3) + "/execution.jsonl", encoding: .utf8)) ?? ""
        #expect(log.contains("\"type\":\"installed\""), "by state transfer")
        #expect(cluster.log(3).contains("rejoining after lost state"))
        #expect(eventually(within: 20) { cluster.log(3).contains("rejoined after lost state") }, "and took part again once it could not contradict its past")
    }

    @Test func garbageDatagramsAreCountedAndTheReplicaKeepsServing() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 10, tag: "warm")

        // 100,000 hostile datagrams at replica 1: random bytes, truncated and bit-flipped
        // frames, oversized ones, forged fragments, bundles of forged and truncated frames
        // (some with a broken length), validly framed requests with bad signatures.
        let target = cluster.membership.replica(ReplicaID(1))!
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(target.port.bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let client0 = try KeyFile.load(cluster.directory.file("keys/client-0.key"))
        let valid = Envelope.seal(.request(Request(timestamp: Timestamp(1), operation: [1, 2, 3])), epoch: Epoch(0), signer: client0.signer)
        let validBytes = [UInt8(0x50)] + Frame(envelope: valid).encoded()
        var generator = SystemRandomNumberGenerator()
        #expect(DatagramCodec.datagrams(bundling: [validBytes, Array(validBytes.dropFirst().prefix(80))], messageID: { 1 }).first?.first == DatagramKind.bundle.rawValue,
                "the hostile bundles below are bundles: their frames are long enough")
        var sent = 0
        for i in 0..<100_000 {
            var datagram: [UInt8]
            switch i % 7 {
            case 0: datagram = (0..<Int.random(in: 1...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            case 1: datagram = Array(validBytes.prefix(Int.random(in: 1..<validBytes.count, using: &generator)))
            case 2:
                datagram = validBytes
                datagram[Int.random(in: 1..<datagram.count, using: &generator)] ^= 1 << UInt8.random(in: 0...7, using: &generator)
            case 3: datagram = [0x50] + [UInt8](repeating: 0xAB, count: 60_000)
            case 4: datagram = [0x46] + (0..<40).map { _ in UInt8.random(in: 0...255, using: &generator) }
            case 5:
                // A bundle: sometimes well formed around forged and truncated frames, sometimes not.
                var forged = valid
                forged.message = .request(Request(timestamp: Timestamp(UInt64(i)), operation: [7]))
                let frames = [Frame(envelope: forged).encoded(), Array(validBytes.dropFirst().prefix(80))]
                datagram = DatagramCodec.datagrams(bundling: frames, messageID: { 1 })[0]
                if Bool.random(using: &generator) { datagram[Int.random(in: 1..<5, using: &generator)] ^= 0x40 }
            default:
                var forged = valid
                forged.message = .request(Request(timestamp: Timestamp(UInt64(i)), operation: [9]))
                datagram = [0x50] + Frame(envelope: forged).encoded()
            }
            let n = datagram.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            if n >= 0 { sent += 1 }
            if i % 1000 == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        #expect(sent == 100_000)
        _ = try await cluster.load(clients: clients, operations: 20, tag: "after")
        for client in clients { await client.close() }
        #expect(cluster.processes[1]!.isRunning, "replica 1 is still up")
        cluster.stop(1)
        let log = cluster.log(1)
        #expect(log.contains("counters"))
        let malformed = Int(log.firstMatch(of: /malformed=(\d+)/)?.1 ?? "0") ?? 0
        let badSignature = Int(log.firstMatch(of: /bad_signature=(\d+)/)?.1 ?? "0") ?? 0
        let dropped = Int(log.firstMatch(of: /datagrams_dropped=(\d+)/)?.1 ?? "0") ?? 0
        print("garbage test: malformed \(malformed), bad signature \(badSignature), datagrams dropped \(dropped)")
        // How much the kernel's socket buffer loses depends on how busy the machine is (a
        // sixth of the datagrams are 60 KB); what must hold is that garbage is counted, not used.
        #expect(malformed + badSignature + dropped > 10_000, "the garbage was counted (some is lost in the kernel's buffer)")
    }

    @Test func replicaWithATornLogTailRestartsCleanly() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 20, tag: "a")
        cluster.kill9(2)
        // A torn tail: half a record header and some bytes after the last complete record.
        let wal = cluster.dataDirectory(2) + "/wal.log"
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: wal))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0, 0, 1, 0, 0x12, 0x34, 0x56]))
        try handle.close()
        try cluster.start(2)
        _ = try await cluster.load(clients: clients, operations: 30, tag: "b")
        for client in clients { await client.close() }
        #expect(eventually(within: 10) { cluster.log(2).contains("truncated") })
        #expect(cluster.processes[2]!.isRunning)
        let target = [0, 1, 3].map { cluster.lastExecuted($0) }.max() ?? 0
        #expect(eventually(within: 20) { cluster.lastExecuted(2) >= target })
    }
}

/// Messages larger than a datagram over real UDP: a view change whose VIEW-CHANGE and
/// NEW-VIEW carry a nearly full log window of large requests, and a 10 MB state transfer.
@Suite(.serialized) struct LargeMessageTests {
    @Test func viewChangeWithAFullWindowOfLargeRequests() async throws {
        let cluster = try ProcessCluster()
        // K = L = 64: nothing becomes stable before 64, so P holds every prepared entry.
        cluster.replicaSettings = ["--tick-ms", "5", "--view-change-timeout-ticks", "200", "--checkpoint-interval", "64", "--log-window", "64"]
        try cluster.startAll()
        let client = try cluster.clientNode(0)
        try await client.start(host: "127.0.0.1")
        // 60 sequence numbers, each a 12 KB request: P is ~60 certificates, about 0.8 MB.
        _ = try await cluster.load(clients: [client], operations: 60, tag: "window", valueBytes: 12_000)
        cluster.kill9(0)
        _ = try await cluster.load(clients: [client], operations: 3, tag: "after", valueBytes: 12_000)
        #expect(client.view.rawValue >= 1)
        await client.close()
        let newPrimary = try cluster.status(1)
        let sent = newPrimary["sent"] as? [String: Int] ?? [:]
        #expect((newPrimary["view"] as? Int ?? 0) >= 1)
        #expect((sent["fragments"] ?? 0) > 0, "some frames needed several datagrams: \(sent)")
        let executed = try (1..<4).map { try cluster.executions($0) }
        for seq in 1...60 as ClosedRange<UInt64> {
            #expect(executed[0][seq] != nil && executed[0][seq] == executed[1][seq] && executed[1][seq] == executed[2][seq], "seq \(seq) kept through the view change")
        }
    }

    @Test func tenMegabyteStateTransferOverUDP() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        cluster.kill9(3)
        try? FileManager.default.removeItem(atPath: cluster.dataDirectory(3))
        // 4 × 180 puts of 15,000 bytes with distinct keys: about 10.8 MB of state.
        _ = try await cluster.load(clients: clients, operations: 180, tag: "big", valueBytes: 15_000)
        try cluster.start(3)
        _ = try await cluster.load(clients: clients, operations: 40, tag: "more")
        for client in clients { await client.close() }
        let target = (0..<3).map { cluster.lastExecuted($0) }.max() ?? 0
        let started = Date()
        let caughtUp = eventually(within: 90) { cluster.lastExecuted(3) >= target }
        #expect(caughtUp, "replica 3 caught up: \(cluster.lastExecuted(3)) of \(target); its log ends: \(cluster.log(3).suffix(1500)); status: \((try? cluster.status(3)) ?? [:])")
        print("state transfer over UDP: replica 3 caught up \(Int(Date().timeIntervalSince(started) * 1000)) ms after the load ended")
        let log = (try? String(contentsOfFile: cluster.dataDirectory(3) + "/execution.jsonl", encoding: .utf8)) ?? ""
        #expect(log.contains("\"type\":\"installed\""))
        let stateFile = cluster.dataDirectory(0) + "/checkpoint.state"
        let size = (try? FileManager.default.attributesOfItem(atPath: stateFile)[.size] as? Int) ?? 0
        #expect(size >= 10_000_000, "the transferred state is \(size) bytes")
        print("state transfer over UDP: \(size) bytes of checkpointed state")
    }
}

@Suite(.serialized) struct ControlEndpointTests {
    @Test func statusAndStopAcceptOnlyTheOperator() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 20, tag: "a")
        for client in clients { await client.close() }

        let keys = cluster.directory.file("keys")
        let status = try PBFTBinary.run(["ctl", "status", "--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--json", "--timeout-ms", "5000"])
        #expect(status.status == 0, "\(status.stderr)")
        let lines = status.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect((object["last_executed"] as? Int ?? 0) >= 1)
            #expect(object["rejected"] is [String: Int])
        }

        // A control command signed with a client's key, claiming to be the operator's: refused.
        let client0 = try KeyFile.load(keys + "/client-0.key")
        var forged = Envelope.seal(.control(Control(timestamp: Timestamp(UInt64(Date().timeIntervalSince1970 * 1_000_000)), target: .replica(ReplicaID(2)), command: .stop)), epoch: Epoch(0), signer: client0.signer)
        forged.sender = .operator
        let target = cluster.membership.replica(ReplicaID(2))!
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(target.port.bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let datagram = [UInt8(0x50)] + Frame(envelope: forged).encoded()
        _ = datagram.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        close(fd)
        try await Task.sleep(for: .milliseconds(300))
        #expect(cluster.processes[2]!.isRunning, "a forged stop is not obeyed")

        let stop = try PBFTBinary.run(["ctl", "stop", "2", "--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--timeout-ms", "5000"])
        #expect(stop.status == 0, "\(stop.stdout) \(stop.stderr)")
        #expect(eventually(within: 5) { !cluster.processes[2]!.isRunning }, "the operator's stop is")
        #expect(cluster.log(2).contains("bad_signature=1"), "and the forgery was counted")
    }
}

@Suite(.serialized) struct ByzantineProcessTests {
    @Test func byzantineModesOnlyWithTheFlagAndAMutePrimaryIsReplaced() async throws {
        let cluster = try ProcessCluster()
        let keys = cluster.directory.file("keys")
        let ctl = ["--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--timeout-ms", "5000"]
        try cluster.start(0)
        for i in 1..<4 { try cluster.start(i, extra: ["--allow-byzantine"]) }
        #expect(eventually(within: 10) { cluster.log(0).contains("replica serving") })
        let refused = try PBFTBinary.run(["ctl", "byzantine", "0", "mutePrimary"] + ctl)
        #expect(refused.status != 0)
        #expect(refused.stdout.contains("not started with --allow-byzantine") || refused.stderr.contains("not started with --allow-byzantine"))
        #expect(eventually(within: 5) { cluster.log(0).contains("refused a Byzantine mode") })

        cluster.stop(0)
        try cluster.start(0, extra: ["--allow-byzantine"])
        // The log is appended to across restarts: wait for the second start to be serving.
        #expect(eventually(within: 10) { cluster.log(0).components(separatedBy: "replica serving").count >= 3 })
        let unknown = try PBFTBinary.run(["ctl", "byzantine", "0", "grumpy"] + ctl)
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown mode"), "ctl refuses it before sending")
        // The replica refuses it too when it does arrive (a ctl of another version, a script).
        // Under a full parallel test run this was once refused as a stale timestamp for reasons
        // not understood yet (the replica logs both timestamps now); a fresh command is fresh.
        var body = ""
        for _ in 0..<3 {
            let control = try ControlClient(membership: cluster.membership, operatorKey: try KeyFile.load(keys + "/operator.key"))
            let reply = try await control.send(.byzantine, argument: Array("grumpy".utf8), to: [ReplicaID(0)], timeoutMilliseconds: 5_000)[ReplicaID(0)]
            await control.close()
            body = String(decoding: reply?.body ?? [], as: UTF8.self)
            #expect(reply?.accepted == false)
            if !body.contains("stale") { break }
            print("byzantine process test: \(body); replica 0 logged: \(cluster.log(0).split(separator: "\n").filter { $0.contains("refused a control") }.suffix(2))")
        }
        #expect(body.contains("unknown mode"), "\(body)")
        let accepted = try PBFTBinary.run(["ctl", "byzantine", "0", "mutePrimary"] + ctl)
        #expect(accepted.status == 0, "\(accepted.stdout) \(accepted.stderr)")

        let clients = try (0..<4).map { try cluster.clientNode($0) }
        for client in clients { try await client.start(host: "127.0.0.1") }
        _ = try await cluster.load(clients: clients, operations: 30, tag: "mute")
        #expect(clients.allSatisfy { $0.view.rawValue >= 1 }, "the mute primary was replaced")
        for client in clients { await client.close() }
        let executed = try (1..<4).map { try cluster.executions($0) }
        for i in 1..<3 {
            for (seq, batch) in executed[i] { #expect(executed[0][seq] == nil || executed[0][seq] == batch, "correct replicas agree at \(seq)") }
        }
    }
}

@Suite(.serialized) struct ReconfigurationProcessTests {
    /// The operator sees why a reconfiguration is refused (invalid change: ordered and
    /// answered with the reason; bad signature: refused before ordering), and a valid one
    /// starts a new epoch on real processes that clients follow.
    @Test func reconfigurationsAreAnsweredWithTheirReasonAndClientsFollowTheNewEpoch() async throws {
        let cluster = try ProcessCluster()
        try cluster.startAll()
        let keys = cluster.directory.file("keys")
        let operatorNode = try ClientNode(membership: cluster.membership, key: try KeyFile.load(keys + "/operator.key"), tickMilliseconds: 5, retransmitTicks: 60)
        try await operatorNode.start(host: "127.0.0.1")
        defer { Task { await operatorNode.close() } }

        let invalid = try await operatorNode.submit(.removeReplica(ReplicaID(9)), timeoutMilliseconds: 20_000)
        #expect(invalid == "error: replica 9 is not a member")
        let tooFew = try await operatorNode.submit(.removeReplica(ReplicaID(3)), timeoutMilliseconds: 20_000)
        #expect(tooFew.hasPrefix("error: n = 3 replicas cannot tolerate f = 1"), "\(tooFew)")

        // Signed with a client's key in the operator's name: every replica refuses it, signed.
        let client0 = try KeyFile.load(keys + "/client-0.key")
        let m = cluster.membership
        let forgedView = try Membership(
            epoch: m.epoch, f: m.f, replicas: m.replicas, clients: m.clients.filter { $0.id != ClientID(0) }, operatorKey: client0.key.publicKey)
        let forger = try ClientNode(membership: forgedView, key: KeyFile(principal: .operator, key: client0.key), tickMilliseconds: 5, retransmitTicks: 60)
        try await forger.start(host: "127.0.0.1")
        do {
            let answer = try await forger.submit(.removeReplica(ReplicaID(3)), timeoutMilliseconds: 10_000)
            Issue.record("a forged reconfiguration was answered: \(answer)")
        } catch let error as ClientError {
            #expect("\(error)".hasPrefix("refused: reconfiguration: bad signature by operator"), "\(error)")
        }
        await forger.close()

        // A valid change (the same membership as a new epoch): every replica enters epoch 1,
        // and a client that still signs for epoch 0 follows the announcements.
        let client = try cluster.clientNode(1)
        try await client.start(host: "127.0.0.1")
        _ = try await client.submit(KeyValueOperation.put(key: Array("a".utf8), value: [1]).encoded())
        let ok = try await operatorNode.submit(.setFaultTolerance(1), timeoutMilliseconds: 20_000)
        #expect(ok.hasPrefix("ok: e1 (n = 4, f = 1) starts after sequence"), "\(ok)")
        let entered = try eventually(within: 20) { try (0..<4).allSatisfy { (try cluster.status($0)["epoch"] as? Int) == 1 } }
        #expect(entered, "every replica entered epoch 1: \((0..<4).map { cluster.log($0).suffix(600) })")
        let result = try await client.submit(KeyValueOperation.get(key: Array("a".utf8)).encoded(), timeoutMilliseconds: 20_000)
        #expect(KeyValueResult.decode(result) == .value([1]))
        #expect(await client.currentEpoch() == Epoch(1), "the client follows epoch 1")
        for i in 0..<4 { #expect(cluster.log(i).contains("epoch started")) }
        await client.close()
    }
}
