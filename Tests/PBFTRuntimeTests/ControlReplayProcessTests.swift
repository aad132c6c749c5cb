import Foundation
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTTestSupport
import PBFTWire
import Testing

/// Issue 19, item 1, on real replica processes: an operator command recorded off the wire and
/// replayed to another replica, to its own replica after a restart (from its data, and with
/// its data wiped), and a command for another epoch. None is obeyed, none is answered but
/// the one wrong-epoch refusal the operator needs, and a flood of replays costs the replica
/// a few log lines, not one per datagram.
@Suite(.serialized) struct ControlReplayProcessTests {
    @Test func replayedOperatorCommandsAreRefusedUnansweredAndCounted() async throws {
        let cluster = try ProcessCluster()
        for i in 0..<4 { try cluster.start(i, extra: ["--allow-byzantine"]) }
        for i in 0..<4 { #expect(eventually(within: 15) { cluster.log(i).contains("replica serving") }, "replica \(i) serves") }
        let operatorKey = try KeyFile.load(cluster.directory.file("keys/operator.key"))
        func port(_ i: UInt32) -> Int { Int(cluster.membership.replica(ReplicaID(i))!.port) }
        func now() -> Timestamp { Timestamp(UInt64(Date().timeIntervalSince1970 * 1_000_000)) }
        func datagram(_ control: Control, epoch: Epoch = Epoch(0)) -> [UInt8] {
            [DatagramKind.whole.rawValue] + Frame(envelope: Envelope.seal(.control(control), epoch: epoch, signer: operatorKey.signer)).encoded()
        }
        func replies(_ datagrams: [[UInt8]]) -> [ControlReply] {
            datagrams.compactMap { bytes in
                guard bytes.first == DatagramKind.whole.rawValue, let frame = try? Frame.decode(Array(bytes.dropFirst())),
                      case .controlReply(let reply) = frame.envelope.message else { return nil }
                return reply
            }
        }
        func serving(_ i: Int, starts: Int) -> Bool { cluster.log(i).components(separatedBy: "replica serving").count > starts }
        let wire = try UDPProbe()
        var tried = 0
        var answers: [ControlReply] = []

        // The operator's own commands, as they travel: `byzantine 1 off` and `stop 3`.
        let byzantine1 = datagram(Control(timestamp: now(), target: .replica(ReplicaID(1)), command: .byzantine, argument: Array("off".utf8)))
        wire.send(byzantine1, toPort: port(1))
        #expect(replies(wire.receive(within: 5, until: 1)).first?.accepted == true, "replica 1 obeys the command for it")
        let stop3 = datagram(Control(timestamp: now(), target: .replica(ReplicaID(3)), command: .stop))
        wire.send(stop3, toPort: port(3))
        #expect(replies(wire.receive(within: 5, until: 1)).first?.accepted == true, "replica 3 obeys the command for it")
        #expect(eventually(within: 10) { !cluster.processes[3]!.isRunning }, "and stops")

        // (a) To the other replicas.
        for i in [0, 1, 2] as [UInt32] {
            wire.send(stop3, toPort: port(i))
            tried += 1
        }
        for i in [0, 2] as [UInt32] {
            wire.send(byzantine1, toPort: port(i))
            tried += 1
        }
        answers += replies(wire.receive(within: 1))
        for i in 0..<3 { #expect(cluster.processes[i]!.isRunning, "replica \(i) did not stop") }

        // (b) To replica 3 after a restart from its data directory (the mark it synced), then
        // after a restart with its data directory wiped (no mark: the start rule).
        try cluster.start(3, extra: ["--allow-byzantine"])
        #expect(eventually(within: 15) { serving(3, starts: 2) })
        for _ in 0..<3 { wire.send(stop3, toPort: port(3)) }
        tried += 3
        answers += replies(wire.receive(within: 1))
        #expect(cluster.processes[3]!.isRunning, "the replay did not stop the restarted replica 3")
        let kept = try #require(cluster.status(3)["control"] as? [String: Any])
        #expect((kept["refused"] as? [String: Int])?["replayed"] == 3, "refused by the durable mark: \(kept)")

        cluster.stop(3)
        try FileManager.default.removeItem(atPath: cluster.dataDirectory(3))
        try cluster.start(3, extra: ["--allow-byzantine", "--lost-state"])
        #expect(eventually(within: 15) { serving(3, starts: 3) })
        for _ in 0..<3 { wire.send(stop3, toPort: port(3)) }
        tried += 3
        answers += replies(wire.receive(within: 1))
        #expect(cluster.processes[3]!.isRunning, "the replay did not stop replica 3 restarted without its data")
        let wiped = try #require(cluster.status(3)["control"] as? [String: Any])
        #expect((wiped["refused"] as? [String: Int])?["before_start"] == 3, "refused by the start rule: \(wiped)")

        // (c) A fresh command signed for epoch 1, at replica 0 (in epoch 0), sent 20 times:
        // one answer naming the epoch to use, then silence.
        let epoch1 = datagram(Control(timestamp: now(), target: .replica(ReplicaID(0)), command: .stop), epoch: Epoch(1))
        for _ in 0..<20 { wire.send(epoch1, toPort: port(0)) }
        tried += 20
        let wrongEpoch = replies(wire.receive(within: 1))
        #expect(wrongEpoch.count == 1 && wrongEpoch.first?.outcome == .wrongEpoch && wrongEpoch.first?.epoch == Epoch(0), "\(wrongEpoch)")
        answers += wrongEpoch.filter { $0.outcome != .wrongEpoch }
        #expect(cluster.processes[0]!.isRunning)

        // A flood of one recorded datagram: no answer, a few log lines.
        let linesBefore = cluster.log(0).components(separatedBy: "refused operator traffic").count
        for _ in 0..<5_000 { wire.send(stop3, toPort: port(0)) }
        tried += 5_000
        try await Task.sleep(for: .milliseconds(1_500))
        answers += replies(wire.receive(within: 0.5))
        let lines = cluster.log(0).components(separatedBy: "refused operator traffic").count - linesBefore
        #expect(lines <= 6, "\(lines) log lines for 5,000 replays (one per reason per second: wrong_target, and the wrong_epoch refusals above)")
        let status0 = try #require(cluster.status(0)["control"] as? [String: Any])
        let refused0 = status0["refused"] as? [String: Int] ?? [:]
        #expect(refused0["wrong_target"] ?? 0 >= 1 && refused0["wrong_epoch"] == 20, "\(status0)")
        for i in 0..<4 { #expect(cluster.processes[i]!.isRunning, "replica \(i) runs") }

        // The legitimate path with a stale epoch: the control client learns the epoch from
        // the one refusal and asks again.
        let client = try ControlClient(membership: cluster.membership, operatorKey: operatorKey)
        client.update(keys: EpochKeys(cluster.membership), targets: [ReplicaID(0): ControlClient.Target(host: "127.0.0.1", port: port(0), epoch: Epoch(7))])
        let reply = try await client.send(.status, to: [ReplicaID(0)], timeoutMilliseconds: 5_000)[ReplicaID(0)]
        await client.close()
        #expect(reply?.accepted == true && reply?.epoch == Epoch(0), "status after one wrong-epoch refusal: \(String(describing: reply))")

        let accepted = answers.filter(\.accepted).count
        print("replayed operator commands: \(tried) sent, \(accepted) accepted, \(answers.count) answered (besides the one wrong-epoch refusal); \(lines) log lines for 5,000 replays")
        #expect(accepted == 0 && answers.isEmpty)
    }
}
