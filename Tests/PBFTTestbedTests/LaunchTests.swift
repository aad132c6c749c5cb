import Foundation
import PBFTCluster
import PBFTCore
import PBFTCrypto
import PBFTRuntime
import PBFTTestSupport
import PBFTWire
import Testing

/// `pbft launch` with real replica processes behind the fault proxy.
@Suite(.serialized) struct LaunchTests {
    // MARK: No orphans

    /// Every pid the launch started: replicas, twins and the load client.
    func children(_ launch: LaunchHarness) throws -> [Int32] {
        let status = try launch.status()
        var pids = status.replicas.compactMap(\.pid)
        for replica in status.raw["replicas"] as? [[String: Any]] ?? [] {
            if let twin = replica["twin_pid"] as? Int { pids.append(Int32(twin)) }
        }
        if let load = status.raw["load_pid"] as? Int { pids.append(Int32(load)) }
        return pids
    }

    @Test("nothing is left behind after the launch ends by itself")
    func noOrphansAfterNormalExit() throws {
        let launch = try LaunchHarness(arguments: ["--duration", "4", "--load", "2"])
        let pids = try children(launch)
        #expect(pids.count == 5, "4 replicas and the load client")
        launch.launcher.waitUntilExit()
        #expect(launch.launcher.terminationStatus == 0)
        #expect(eventually(within: 10) { pids.allSatisfy(isGone) }, "still running: \(pids.filter { !isGone($0) })")
        #expect(text(launch.output).contains("--duration elapsed"))
    }

    @Test("nothing is left behind after SIGTERM to the launcher, paused replicas included")
    func noOrphansAfterSigterm() throws {
        let launch = try LaunchHarness()
        try launch.must(["pause", "2"])
        let pids = try children(launch)
        #expect(pids.count == 4)
        launch.terminate()
        #expect(launch.launcher.terminationStatus == 0)
        #expect(eventually(within: 10) { pids.allSatisfy(isGone) }, "still running: \(pids.filter { !isGone($0) })")
        #expect(launch.events.last?["event"] as? String == "launch_stopped")
    }

    @Test("nothing is left behind after SIGKILL of the launcher, paused replicas and twins included")
    func noOrphansAfterSigkill() throws {
        let launch = try LaunchHarness(arguments: ["--load", "1"])
        try launch.must(["pause", "1"])
        try launch.must(["twin", "3"])
        let pids = try children(launch)
        #expect(pids.count == 6, "4 replicas, a twin and the load client")
        kill(launch.launcher.processIdentifier, SIGKILL)
        launch.launcher.waitUntilExit()
        #expect(eventually(within: 10) { pids.allSatisfy(isGone) }, "still running: \(pids.filter { !isGone($0) })")
    }

    // MARK: Process faults

    @Test("pause and resume a backup, restart one from its data and one wiped: all catch up and agree")
    func processLifecycle() async throws {
        let launch = try LaunchHarness()
        let clients = try await launch.clients(4)
        _ = try await launch.load(clients, operations: 10, tag: "start")
        let primary = try #require(try launch.status().primary)
        let paused = (primary + 1) % 4, wiped = (primary + 2) % 4
        try launch.must(["pause", "\(paused)"])
        #expect(try launch.status().replicas[paused].state == "paused")
        _ = try await launch.load(clients, operations: 20, tag: "paused")
        try launch.must(["resume", "\(paused)"])
        try launch.must(["restart", "\(wiped)", "--wipe"])
        #expect(try launch.status().replicas[wiped].state == "running")
        #expect(eventually(within: 10) { launch.log(wiped).contains("rejoining after lost state") })
        _ = try await launch.load(clients, operations: 60, tag: "after")
        for client in clients { await client.close() }
        let top = (0..<4).map { launch.lastExecuted($0) }.max() ?? 0
        #expect(eventually(within: 20) { launch.lastExecuted(paused) >= top - 32 && launch.lastExecuted(wiped) >= top - 32 },
                "caught up to within a checkpoint interval of \(top): paused \(launch.lastExecuted(paused)), wiped \(launch.lastExecuted(wiped))")
        try launch.agree([0, 1, 2, 3])
        let kinds = launch.events.compactMap { $0["event"] as? String }
        for kind in ["pause", "resume", "restart"] { #expect(kinds.contains(kind)) }
        #expect(launch.events.contains { $0["event"] as? String == "start" && $0["lost_state"] as? Bool == true })
    }

    // MARK: Network faults

    @Test("a partition isolating the primary: the majority changes view and serves; after healing the primary catches up")
    func partitionIsolatingThePrimary() async throws {
        let launch = try LaunchHarness()
        let clients = try await launch.clients(4)
        _ = try await launch.load(clients, operations: 10, tag: "before")
        let old = try #require(try launch.status().primary)
        try launch.must(["partition", "primary"])
        #expect(try launch.status().faults.contains { $0.hasPrefix("partition \(old) / ") })
        let served = try await launch.load(clients, operations: 40, tag: "partitioned")
        #expect(served == 160)
        let during = try launch.status()
        let majority = during.replicas.filter { $0.id != old }
        #expect(majority.allSatisfy { ($0.view ?? 0) >= 1 && $0.primary != old }, "the majority moved to a view with another primary: \(majority)")
        let reached = majority.compactMap(\.lastExecuted).min() ?? 0
        #expect(UInt64(reached) > launch.lastExecuted(old), "the isolated primary fell behind")

        try launch.must(["heal"])
        #expect(try launch.status().faults.isEmpty)
        _ = try await launch.load(clients, operations: 40, tag: "healed")
        for client in clients { await client.close() }
        #expect(eventually(within: 20) { launch.lastExecuted(old) >= UInt64(reached) }, "the old primary caught up to \(reached): at \(launch.lastExecuted(old))")
        try launch.agree([0, 1, 2, 3])
        let kinds = launch.events.compactMap { $0["event"] as? String }
        #expect(kinds.contains("partition") && kinds.contains("heal"))
    }

    @Test("30% loss with reordering and duplication on every path still serves every operation")
    func lossyNetworkServesEveryOperation() async throws {
        let launch = try LaunchHarness()
        try launch.must(["drop", "30%"])
        try launch.must(["reorder", "0.3"])
        try launch.must(["duplicate", "0.3"])
        #expect(try launch.status().faults == ["all traffic: drop 30% duplicate 30% reorder 30%"])
        let clients = try await launch.clients(4)
        let served = try await launch.load(clients, operations: 15, tag: "lossy", timeout: 120_000)
        #expect(served == 60)
        for client in clients { await client.close() }
        let proxy = try #require(try launch.status().raw["proxy"] as? [String: Int])
        #expect((proxy["dropped"] ?? 0) > 0 && (proxy["duplicated"] ?? 0) > 0 && (proxy["reordered"] ?? 0) > 0, "\(proxy)")
        try launch.agree([0, 1, 2, 3])
    }

    @Test("corrupted datagrams are rejected and counted, never obeyed")
    func corruptionIsRejected() async throws {
        let launch = try LaunchHarness()
        try launch.must(["corrupt", "0.2"])
        let clients = try await launch.clients(2)
        _ = try await launch.load(clients, operations: 20, tag: "corrupt", timeout: 60_000)
        for client in clients { await client.close() }
        let status = try launch.status()
        let rejected = (status.raw["replicas"] as? [[String: Any]] ?? []).compactMap { ($0["status"] as? [String: Any])?["rejected"] as? [String: Int] }
        let total = rejected.reduce(0) { $0 + ($1["bad_signature"] ?? 0) + ($1["malformed"] ?? 0) + ($1["datagram_dropped"] ?? 0) }
        #expect(total > 0, "corruption showed up as rejections: \(rejected)")
        try launch.agree([0, 1, 2, 3])
    }

    // MARK: Byzantine replicas

    /// Runs load with a Byzantine mode on the primary (or a twin of a backup) and checks the
    /// correct replicas agree and serve.
    func byzantine(_ setup: (LaunchHarness, Int) throws -> Void, faulty: (Int) -> Int) async throws -> LaunchHarness {
        let launch = try LaunchHarness(arguments: ["--allow-byzantine"])
        let clients = try await launch.clients(4)
        _ = try await launch.load(clients, operations: 5, tag: "warm")
        let primary = try #require(try launch.status().primary)
        try setup(launch, primary)
        let served = try await launch.load(clients, operations: 30, tag: "byzantine", timeout: 60_000)
        #expect(served == 120)
        for client in clients { await client.close() }
        let bad = faulty(primary)
        let correct = (0..<4).filter { $0 != bad }
        try launch.agree(correct)
        return launch
    }

    @Test("an equivocating primary leaves the correct replicas in agreement and serving")
    func equivocatingPrimary() async throws {
        var equivocator = -1
        let launch = try await byzantine({ launch, primary in
            equivocator = primary
            try launch.must(["byzantine", "\(primary)", "equivocatingPrimary"])
        }, faulty: { $0 })
        #expect(launch.events.contains { $0["event"] as? String == "byzantine" && $0["mode"] as? String == "equivocatingPrimary" })
        let conflicting = (try launch.status().raw["replicas"] as? [[String: Any]] ?? []).filter { $0["id"] as? Int != equivocator }
            .compactMap { (($0["status"] as? [String: Any])?["rejected"] as? [String: Int])?["conflicting"] }.reduce(0, +)
        #expect(conflicting > 0, "the correct replicas saw the conflicting pre-prepares and votes")
    }

    @Test("a mute primary is replaced")
    func mutePrimary() async throws {
        var muted = -1
        let launch = try await byzantine({ launch, primary in
            muted = primary
            try launch.must(["byzantine", "primary", "mutePrimary"])
        }, faulty: { $0 })
        let status = try launch.status()
        #expect(status.primary != nil && status.primary != muted, "a new primary took over from r\(muted)")
    }

    @Test("a twin of a backup (same key, same id) leaves the correct replicas in agreement and serving")
    func twinBackup() async throws {
        var twinned = -1
        let launch = try await byzantine({ launch, primary in
            twinned = (primary + 1) % 4
            try launch.must(["twin", "\(twinned)"])
        }, faulty: { ($0 + 1) % 4 })
        #expect(try launch.status().raw["replicas"].flatMap { ($0 as? [[String: Any]])?[twinned]["twin_pid"] } != nil, "the twin still runs")
        #expect(text(launch.run + "/logs/twin-\(twinned).log").contains("replica serving"))
    }

    @Test("a replica started without --allow-byzantine refuses byzantine modes and logs it")
    func byzantineNeedsTheFlag() throws {
        let launch = try LaunchHarness()
        let result = try launch.ctl(["byzantine", "1", "silent"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("not started with --allow-byzantine"), "\(result.stderr)")
        #expect(eventually(within: 5) { launch.log(1).contains("refused a Byzantine mode") })
        #expect(launch.events.contains { $0["event"] as? String == "byzantine_refused" })
    }

    // MARK: The operator's commands

    @Test("commands name known replicas, modes and values, or get one clear error")
    func badCommands() throws {
        let launch = try LaunchHarness()
        for (arguments, message) in [
            (["kill", "9"], "replica 9 is not in the cluster"),
            (["kill", "leader"], "'leader' is not a replica id or 'primary'"),
            (["drop", "1.5"], "a probability is 0 to 1"),
            (["byzantine", "1", "sneaky"], "unknown mode 'sneaky'"),
            (["partition", "0,9/1"], "replica 9 is not in the cluster"),
            (["resume", "2"], "replica 2 is not paused"),
        ] {
            let result = try launch.ctl(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect((result.stderr + result.stdout).contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(try launch.status().replicas.allSatisfy { $0.state == "running" })
    }

    @Test("a --direct launch serves without the proxy and refuses network faults and twins")
    func directLaunch() async throws {
        let launch = try LaunchHarness(arguments: ["--direct"])
        let clients = try await launch.clients(2)
        #expect(try await launch.load(clients, operations: 10, tag: "direct") == 20)
        for client in clients { await client.close() }
        for arguments in [["drop", "0.1"], ["partition", "primary"], ["twin", "1"]] {
            let result = try launch.ctl(arguments)
            #expect(result.status != 0 && result.stderr.contains("--direct"), "\(arguments): \(result.stderr)")
        }
        #expect(try launch.status().raw["proxy"] == nil)
        try launch.must(["kill", "primary"])
    }

    // MARK: Reconfiguration

    @Test("ctl add-replica, set-f and remove-replica primary through a launch: the new replica joins and serves, an invalid change is refused with the replicas' reason, the removed primary retires")
    func reconfigurationThroughALaunch() async throws {
        let launch = try LaunchHarness()
        let clients = try await launch.clients(4)
        _ = try await launch.load(clients, operations: 10, tag: "four")

        let added = try launch.ctl(["add-replica"])
        #expect(added.status == 0 && added.stdout.hasPrefix("ok: e1 (n = 5, f = 1) starts after sequence"), "\(added.stdout)\(added.stderr)")
        #expect(eventually(within: 20) { (try? launch.replica(4)).flatMap { $0 }.map { $0.epoch == 1 && !$0.joining } ?? false },
                "replica 4 fetched the state and entered e1")
        _ = try await launch.load(clients, operations: 20, tag: "five")
        let top = (0..<4).map { launch.lastExecuted($0) }.max() ?? 0
        #expect(eventually(within: 20) { launch.lastExecuted(4) >= top }, "replica 4 executes with the others: \(launch.lastExecuted(4)) of \(top)")

        let refused = try launch.ctl(["set-f", "2"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("n = 5 replicas cannot tolerate f = 2: PBFT needs n >= 3f+1 = 7"), "\(refused.stderr)")
        #expect(refused.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "one line: \(refused.stderr)")
        let taken = try launch.ctl(["add-replica", "2"])
        #expect(taken.status == 1 && taken.stderr.contains("replica 2 was started by this launch before"), "\(taken.stderr)")

        let old = try #require(try launch.status().primary)
        let removed = try launch.ctl(["remove-replica", "primary"])
        #expect(removed.status == 0 && removed.stdout.hasPrefix("ok: e2 (n = 4, f = 1)"), "\(removed.stdout)\(removed.stderr)")
        _ = try await launch.load(clients, operations: 20, tag: "after")
        #expect(eventually(within: 20) { (try? launch.replica(old))??.state == "retired" }, "the removed primary r\(old) retired by itself")
        for client in clients { await client.close() }
        let status = try launch.status()
        #expect(status.primary != nil && status.primary != old, "a member of e2 leads: \(String(describing: status.primary))")
        #expect(status.raw["epoch"] as? Int == 2 && (status.raw["members"] as? [Int])?.contains(old) == false, "\(status.raw)")
        let kinds = launch.events.compactMap { $0["event"] as? String }
        for kind in ["replica_added", "reconfiguration_submitted", "reconfiguration_answered", "epoch", "replica_retired"] {
            #expect(kinds.contains(kind), "\(kind)")
        }
        #expect(!kinds.contains("exited"), "the retirement is not a crash")
        #expect(launch.events.contains { $0["event"] as? String == "reconfiguration_answered" && ($0["answer"] as? String ?? "").hasPrefix("error: n = 5") })
        let launchFile = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: launch.run + "/launch.json"))) as? [String: Any]
        #expect((launchFile?["replicas"] as? [[String: Any]])?.contains { $0["id"] as? Int == 4 } == true, "launch.json lists the new replica")
        try launch.agree([0, 1, 2, 3, 4])
    }

    @Test("a --direct launch replaces a replica: the new one binds its public address itself and joins, the old one retires")
    func replaceThroughADirectLaunch() async throws {
        let launch = try LaunchHarness(arguments: ["--direct"])
        let clients = try await launch.clients(2)
        _ = try await launch.load(clients, operations: 10, tag: "before")
        let replaced = try launch.ctl(["replace-replica", "1"])
        #expect(replaced.status == 0 && replaced.stdout.hasPrefix("ok: e1 (n = 4, f = 1)"), "\(replaced.stdout)\(replaced.stderr)")
        _ = try await launch.load(clients, operations: 20, tag: "after")
        for client in clients { await client.close() }
        #expect(eventually(within: 20) { (try? launch.replica(1))??.state == "retired" }, "replica 1 retired")
        #expect(eventually(within: 20) { (try? launch.replica(4))??.epoch == 1 && launch.lastExecuted(4) >= launch.lastExecuted(0) })
        #expect(text(launch.run + "/cluster/replica-4.toml").contains("previous_f"), "it started from the next epoch's file")
        try launch.agree([0, 1, 2, 3, 4])
    }

    @Test("without a launcher: keygen --add-replica, the operator starts the replica and submits ctl add-replica --cluster --keys; a key that is not the operator's is refused")
    func reconfigurationWithoutALauncher() async throws {
        let launch = try LaunchHarness(arguments: ["--direct"])
        let keys = launch.run + "/keys"
        let joiner = launch.directory.file("joiner")
        let port = try freeUDPPortRange(count: 1)
        let generated = try PBFTBinary.run(["keygen", "--add-replica", "4", "--cluster", keys + "/cluster.toml", "--port", "\(port)", "--out", joiner])
        #expect(generated.status == 0, "\(generated.stderr)")
        let replica = try PBFTBinary.start(
            ["replica", "--cluster", joiner + "/cluster-epoch-1.toml", "--id", "4", "--key", joiner + "/replica-4.key", "--data", joiner + "/data", "--exit-with-parent"]
                + LaunchHarness.fastSettings, logPath: joiner + "/replica-4.log")
        defer { kill(replica.processIdentifier, SIGKILL) }
        #expect(eventually(within: 10) { text(joiner + "/replica-4.log").contains("replica serving") })

        let wrongKey = try PBFTBinary.run(["ctl", "add-replica", "4", "--cluster", keys + "/cluster.toml", "--keys", joiner, "--operator-key", keys + "/client-0.key"])
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("not the operator key"), "\(wrongKey.stderr)")
        let added = try PBFTBinary.run(["ctl", "add-replica", "4", "--cluster", keys + "/cluster.toml", "--keys", joiner, "--operator-key", keys + "/operator.key"])
        #expect(added.status == 0 && added.stdout.hasPrefix("ok: e1 (n = 5, f = 1)"), "\(added.stdout)\(added.stderr)")
        let invalid = try PBFTBinary.run(["ctl", "remove-replica", "9", "--cluster", joiner + "/cluster-epoch-1.toml", "--operator-key", keys + "/operator.key"])
        #expect(invalid.status == 1 && invalid.stderr.contains("error: replica 9 is not a member"), "\(invalid.stderr)")

        let clients = try await launch.clients(2)
        _ = try await launch.load(clients, operations: 20, tag: "joined")
        for client in clients { await client.close() }
        #expect(eventually(within: 20) {
            let status = try? PBFTBinary.run(["ctl", "status", "--cluster", joiner + "/cluster-epoch-1.toml", "--operator-key", keys + "/operator.key", "--replica", "4", "--json"])
            guard let line = status?.stdout, let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
            return object["epoch"] as? Int == 1 && object["joining"] as? Bool == false && (object["last_executed"] as? Int ?? 0) > 0
        }, "replica 4 entered e1 and executes: \(text(joiner + "/replica-4.log").suffix(600))")
        // The operator's epoch 0 cluster file still works: each replica refuses the command
        // signed for e0 once, with its epoch, and ctl signs it again for e1.
        let stale = try PBFTBinary.run(["ctl", "status", "--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--json"])
        #expect(stale.status == 0, "\(stale.stderr)")
        let epochs = stale.stdout.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["epoch"] as? Int }
        #expect(epochs == [1, 1, 1, 1], "\(stale.stdout)")
        let refused = try PBFTBinary.run(["ctl", "status", "--cluster", keys + "/cluster.toml", "--operator-key", keys + "/operator.key", "--replica", "0", "--json"])
        let control = (try? JSONSerialization.jsonObject(with: Data(refused.stdout.utf8)) as? [String: Any])?["control"] as? [String: Any]
        #expect((control?["refused"] as? [String: Int])?["wrong_epoch"] ?? 0 >= 2, "\(String(describing: control))")
    }

    @Test("unsigned or wrongly signed commands are rejected by the launcher and by the replicas")
    func forgedCommandsAreRejected() throws {
        let launch = try LaunchHarness()
        let before = try launch.status()
        let launchFile = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: launch.run + "/launch.json"))) as! [String: Any]
        let controlPort = (launchFile["control"] as! [String: Any])["port"] as! Int
        let replica1 = (launchFile["replicas"] as! [[String: Any]])[1]
        let replicaPort = Int((replica1["private"] as! String).split(separator: ":").last!)!
        let membership = try launch.membership
        let client = try KeyFile.load(launch.run + "/keys/client-0.key")
        let stranger = SigningKey.generate()
        let timestamp = Timestamp(UInt64(Date().timeIntervalSince1970 * 1_000_000))

        func datagram(_ envelope: Envelope) -> [UInt8] { [DatagramKind.whole.rawValue] + Frame(envelope: envelope).encoded() }
        func forged(_ control: Control) -> [[UInt8]] {
            var unsigned = Envelope(sender: .operator, epoch: membership.epoch, message: .control(control), signature: .zero)
            var wrongKey = unsigned
            wrongKey.signature = stranger.sign(wrongKey.signedBytes)
            var clientKey = unsigned
            clientKey.signature = client.key.sign(clientKey.signedBytes)
            unsigned.signature = .zero
            let asClient = Envelope.seal(.control(control), epoch: membership.epoch, signer: client.signer)
            return [datagram(unsigned), datagram(wrongKey), datagram(clientKey), datagram(asClient)]
        }
        // Well addressed (this run, replica 1), so that only the signature is wrong.
        let run = try #require(RunID(hex: launchFile["run_id"] as? String ?? ""))
        let kill1 = Control(timestamp: timestamp, target: .launcher(run), command: .launcher, argument: Array(#"{"verb":"kill","replica":"1"}"#.utf8))
        for bytes in forged(kill1) { sendDatagram(bytes, toPort: controlPort) }
        let stop = Control(timestamp: timestamp, target: .replica(ReplicaID(1)), command: .stop)
        for bytes in forged(stop) { sendDatagram(bytes, toPort: replicaPort) }

        #expect(eventually(within: 5) { ((try? launch.status().rejectedControls) ?? 0) >= 4 }, "the launcher rejected all four")
        let after = try launch.status()
        #expect(after.replicas[1].state == "running" && after.replicas[1].pid == before.replicas[1].pid, "replica 1 was neither killed nor stopped")
        #expect(after.replicas[1].badSignatures >= 3, "replica 1 counted the forged signatures: \(after.replicas[1].badSignatures)")
        #expect(eventually(within: 5) { launch.events.filter { $0["event"] as? String == "control_rejected" }.compactMap { $0["count"] as? Int }.reduce(0, +) >= 4 },
                "control_rejected events count all four (one record per reason per second)")
        #expect(!launch.log(1).contains("stopping on the operator's command"))
    }

    @Test("a recorded launcher command is refused when replayed, at another launch and for another epoch: 0 obeyed, one answer (the wrong epoch)")
    func replayedLauncherCommandsAreRefused() throws {
        let launch = try LaunchHarness()
        let launchFile = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: launch.run + "/launch.json"))) as! [String: Any]
        let controlPort = (launchFile["control"] as! [String: Any])["port"] as! Int
        let run = try #require(RunID(hex: launchFile["run_id"] as? String ?? ""), "launch.json names its run")
        let operatorKey = try KeyFile.load(launch.run + "/keys/operator.key")
        func now() -> Timestamp { Timestamp(UInt64(Date().timeIntervalSince1970 * 1_000_000)) }
        func datagram(_ control: Control, epoch: Epoch = Epoch(0)) -> [UInt8] {
            [DatagramKind.whole.rawValue] + Frame(envelope: Envelope.seal(.control(control), epoch: epoch, signer: operatorKey.signer)).encoded()
        }
        func replies(_ datagrams: [[UInt8]]) -> [ControlReply] {
            datagrams.compactMap { bytes in
                guard let frame = try? Frame.decode(Array(bytes.dropFirst())), case .controlReply(let reply) = frame.envelope.message else { return nil }
                return reply
            }
        }
        func starts(_ id: Int) throws -> Int { ((try launch.status().raw["replicas"] as? [[String: Any]])?[id]["starts"] as? Int) ?? -1 }
        let restart1 = Array(#"{"verb":"restart","replica":"1"}"#.utf8)
        let wire = try UDPProbe()

        // The operator's command as it travels: replica 1 restarts once.
        let recorded = datagram(Control(timestamp: now(), target: .launcher(run), command: .launcher, argument: restart1))
        wire.send(recorded, toPort: controlPort)
        #expect(replies(wire.receive(within: 15, until: 1)).first?.accepted == true, "the launcher obeys it")
        #expect(try starts(1) == 2)

        // (d) The same datagram again; one recorded at another launch; one for another epoch;
        // a replica's command sent to the launcher.
        for _ in 0..<20 { wire.send(recorded, toPort: controlPort) }
        let otherLaunch = datagram(Control(timestamp: now(), target: .launcher(RunID(high: run.high ^ 1, low: run.low)), command: .launcher, argument: restart1))
        for _ in 0..<5 { wire.send(otherLaunch, toPort: controlPort) }
        let epoch1 = datagram(Control(timestamp: now(), target: .launcher(run), command: .launcher, argument: restart1), epoch: Epoch(1))
        for _ in 0..<5 { wire.send(epoch1, toPort: controlPort) }
        let forReplica = datagram(Control(timestamp: now(), target: .replica(ReplicaID(1)), command: .stop))
        for _ in 0..<5 { wire.send(forReplica, toPort: controlPort) }
        let answers = replies(wire.receive(within: 2))
        #expect(answers.count == 1 && answers.first?.outcome == .wrongEpoch && answers.first?.epoch == Epoch(0), "only the wrong epoch is answered, once: \(answers)")
        #expect(try starts(1) == 2, "no replay restarted replica 1 again")

        let control = try #require(try launch.status().raw["control"] as? [String: Any])
        let refused = control["refused"] as? [String: Int] ?? [:]
        #expect(refused["replayed"] == 20 && refused["wrong_target"] == 10 && refused["wrong_epoch"] == 5, "\(control)")
        // At most one control_rejected record per reason per second, with the counts.
        #expect(eventually(within: 5) {
            launch.events.filter { $0["event"] as? String == "control_rejected" }.compactMap { $0["count"] as? Int }.reduce(0, +) == 35
        }, "\(launch.events.filter { $0["event"] as? String == "control_rejected" })")
        let records = launch.events.filter { $0["event"] as? String == "control_rejected" }.count
        #expect(records <= 6, "\(records) records for 35 refusals")
        print("launcher: 35 replayed or misdirected commands, 0 obeyed, \(answers.count) answered (wrong epoch), \(records) control_rejected records")
    }
}
