import ArgumentParser
import Foundation
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTTestbed
import PBFTWire

/// Where a reconfiguration goes without a launch: the replicas of `--cluster FILE`, with
/// the keys (operator.key, and a new replica's key and cluster file) in `--keys DIR`.
struct DirectKeys: ParsableArguments {
    @Option(help: "Without a launch: the directory with operator.key and, to add a replica, what 'pbft keygen --add-replica' wrote (default: the cluster file's directory).")
    var keys: String?
}

/// A reconfiguration through a launch (the launcher prepares any new replica and submits
/// it), or straight to the replicas of a cluster file; either way the replicas' answer is
/// printed, and an "error: ..." answer exits with status 1.
protocol ReconfigurationCommand: AsyncParsableCommand {
    var target: ControlTarget { get }
    var direct: DirectKeys { get }
    /// The launcher's request.
    func request() throws -> LaunchRequest
    /// The change for the replicas of `cluster` (no launcher), with keys in `keys`.
    func change(current: Membership, keys: String) throws -> ReconfigurationChange
}

extension ReconfigurationCommand {
    func run() async throws {
        switch try target.resolve(launchOnly: false) {
        case .launch:
            guard direct.keys == nil else { throw Failure("--keys goes with --cluster (no launch); a launch uses its own keys") }
            try await target.perform(try request())
        case .direct(let cluster, _):
            try await submitDirectly(cluster: cluster, operatorKeyPath: target.operatorKey)
        }
    }

    func submitDirectly(cluster: String, operatorKeyPath: String?) async throws {
        let current: Membership
        do { current = try ClusterFile.loadContents(cluster).membership } catch { throw Failure("\(error)") }
        let keys = direct.keys ?? URL(fileURLWithPath: cluster).deletingLastPathComponent().path
        let keyPath = operatorKeyPath ?? keys + "/operator.key"
        let key: KeyFile
        do { key = try KeyFile.load(keyPath) } catch { throw Failure("\(error)") }
        guard key.principal == .operator, key.key.publicKey == current.operatorKey else {
            throw Failure("\(keyPath) holds the key of \(key.principal), not the operator key of \(cluster): reconfigurations must be signed by the operator")
        }
        let change = try change(current: current, keys: keys)
        let client: ClientNode
        do { client = try ClientNode(membership: current, key: key, tickMilliseconds: 10, retransmitTicks: 50) } catch { throw Failure("\(error)") }
        try await client.start()
        let timeout = max(target.timeoutMs, 20_000)
        let answer: String
        do { answer = try await client.submit(change, timeoutMilliseconds: timeout) } catch {
            await client.close()
            throw Failure("no answer from f+1 = \(current.weakQuorum) replicas of \(cluster) within \(timeout / 1000) s (\(error)); the change may still be ordered")
        }
        let epoch = await client.currentEpoch()
        await client.close()
        guard answer.hasPrefix("ok") else {
            printError(answer)
            throw ExitCode(1)
        }
        Output.line(answer)
        // The next epoch's public cluster file, for clients and the next reconfiguration.
        let base = epoch == current.epoch ? current : nil
        if let base, let next = try? base.applying(change) {
            let path = keys + "/" + Joiner.clusterFileName(epoch: next.epoch)
            if (try? ClusterFile.write(next, previous: base, to: path, overwrite: false)) != nil {
                Output.line("wrote \(path): the cluster file of \(next.epoch) (clients of \(cluster) follow the new epoch by themselves)")
            }
        }
    }

    /// The descriptor of a replica to add: its key in `keys`, its address from the cluster
    /// file 'pbft keygen --add-replica' wrote there (or --host and --port).
    func newcomer(_ id: UInt32, current: Membership, keys: String, host: String?, port: Int?) throws -> ReplicaDescriptor {
        let keyPath = keys + "/replica-\(id).key"
        let key: KeyFile
        do { key = try KeyFile.load(keyPath) } catch {
            throw Failure("\(error); make it first with: pbft keygen --add-replica \(id) --cluster CLUSTER --out \(keys)")
        }
        let joinerFile = keys + "/" + Joiner.clusterFileName(epoch: Epoch(current.epoch.rawValue + 1))
        let listed = (try? ClusterFile.loadContents(joinerFile))?.membership.replica(ReplicaID(id))
        guard let host = host ?? listed?.host, let port = port ?? listed.map({ Int($0.port) }) else {
            throw Failure("no \(joinerFile) lists replica \(id): run pbft keygen --add-replica \(id) --cluster CLUSTER --out \(keys), or give --host and --port")
        }
        guard (1...65535).contains(port) else { throw Failure("--port \(port): not a UDP port") }
        guard listed == nil || listed?.publicKey == key.key.publicKey else {
            throw Failure("\(joinerFile) lists replica \(id) with another public key than \(keyPath)")
        }
        return ReplicaDescriptor(id: ReplicaID(id), host: host, port: UInt16(port), publicKey: key.key.publicKey)
    }
}

struct CtlAddReplica: ReconfigurationCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-replica",
        abstract: "Add a replica: through a launch, it is prepared, started and added; directly, the one 'pbft keygen --add-replica' made.",
        discussion: """
            With a launch the launcher generates the key, picks ports, starts the replica from the
            next epoch's cluster file and submits the signed change (default id: the next unused).
            Without one (--cluster FILE --keys DIR), start the replica yourself from the file
            keygen --add-replica wrote, then run this. Prints the replicas' answer.
            """)
    @OptionGroup var target: ControlTarget
    @OptionGroup var direct: DirectKeys
    @Argument(help: "The new replica's id (default with a launch: the next unused).") var replica: UInt32?
    @Option(help: "Its public host (default: 127.0.0.1 with a launch).") var host: String?
    @Option(help: "Its public UDP port (default: a free one with a launch).") var port: Int?

    func request() throws -> LaunchRequest {
        var request = LaunchRequest(verb: .addReplica)
        request.newReplica = replica.map { "\($0)" }
        request.host = host
        request.port = port
        return request
    }

    func change(current: Membership, keys: String) throws -> ReconfigurationChange {
        guard let replica else { throw Failure("without a launch, name the new replica's id (as for pbft keygen --add-replica)") }
        return .addReplica(try newcomer(replica, current: current, keys: keys, host: host, port: port))
    }
}

struct CtlReplaceReplica: ReconfigurationCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace-replica",
        abstract: "Replace a replica by a new one (new key, new address) in one reconfiguration; the old one retires.")
    @OptionGroup var target: ControlTarget
    @OptionGroup var direct: DirectKeys
    @Argument(help: "The replica to replace: an id, or 'primary' with a launch.") var old: String
    @Argument(help: "The new replica's id (default with a launch: the next unused).") var replica: UInt32?
    @Option(help: "Its public host (default: 127.0.0.1 with a launch).") var host: String?
    @Option(help: "Its public UDP port (default: a free one with a launch).") var port: Int?

    func request() throws -> LaunchRequest {
        var request = LaunchRequest(verb: .replaceReplica)
        request.replica = old
        request.newReplica = replica.map { "\($0)" }
        request.host = host
        request.port = port
        return request
    }

    func change(current: Membership, keys: String) throws -> ReconfigurationChange {
        guard let raw = UInt32(old) else { throw Failure("'\(old)': without a launch, name the replica to replace by its id") }
        guard let replica else { throw Failure("without a launch, name the new replica's id (as for pbft keygen --add-replica)") }
        return .replaceReplica(old: ReplicaID(raw), new: try newcomer(replica, current: current, keys: keys, host: host, port: port))
    }
}

struct CtlRemoveReplica: ReconfigurationCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove-replica",
        abstract: "Remove a replica from the membership: it retires (and exits) when the new epoch begins.")
    @OptionGroup var target: ControlTarget
    @OptionGroup var direct: DirectKeys
    @Argument(help: "An id, or 'primary' with a launch.") var replica: String

    func request() throws -> LaunchRequest {
        var request = LaunchRequest(verb: .removeReplica)
        request.replica = replica
        return request
    }

    func change(current: Membership, keys: String) throws -> ReconfigurationChange {
        guard let raw = UInt32(replica) else { throw Failure("'\(replica)': without a launch, name the replica by its id") }
        return .removeReplica(ReplicaID(raw))
    }
}

struct CtlSetF: ReconfigurationCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-f",
        abstract: "Set the number of faulty replicas tolerated (PBFT needs n >= 3f+1).")
    @OptionGroup var target: ControlTarget
    @OptionGroup var direct: DirectKeys
    @Argument(help: "The new f (at least 1).") var f: Int

    func validate() throws {
        guard f >= 1, f <= Int(UInt32.max) else { throw ValidationError("f = \(f): f must be at least 1") }
    }

    func request() throws -> LaunchRequest {
        var request = LaunchRequest(verb: .setF)
        request.faultTolerance = f
        return request
    }

    func change(current: Membership, keys: String) throws -> ReconfigurationChange { .setFaultTolerance(UInt32(f)) }
}
