import ArgumentParser
import PBFTCluster
import PBFTCore
import PBFTWire

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate Ed25519 keys for replicas, clients and the operator, and the cluster file; or the key and cluster file of a replica to add.",
        discussion: """
            With --replicas N: writes replica-I.key, client-J.key and operator.key (mode 0600) and
            cluster.toml into --out. f is floor((n-1)/3).

            With --add-replica ID --cluster PATH: writes replica-ID.key (0600) and the cluster file
            the new replica starts from, cluster-epoch-E.toml (E: the next epoch, the epoch of PATH
            plus one, which it also names as the previous one), and prints its cluster entry. Start
            the replica with that file, then have the cluster add it: pbft ctl add-replica ID
            --cluster PATH --keys DIR. See docs/keys.md.

            Existing files are kept unless --force is given.
            """
    )

    @Option(help: "Number of replicas (at least 4).")
    var replicas: Int?

    @Option(help: "Number of clients.")
    var clients: Int = 4

    @Option(help: "Directory to write the keys and cluster file into.")
    var out: String = "keys"

    @Option(help: "Host every replica listens on (with --add-replica: the new replica's host; default: the host every member shares).")
    var host: String?

    @Option(help: "UDP port of replica 0; replica i gets base-port + i.")
    var basePort: Int = 7000

    @Option(help: "Generate the key of a new replica with this id, to join the cluster of --cluster.")
    var addReplica: UInt32?

    @Option(help: "With --add-replica: the cluster file of the epoch in force.")
    var cluster: String?

    @Option(help: "With --add-replica: the new replica's UDP port (default: one above the highest port on its host).")
    var port: Int?

    @Flag(help: "Overwrite existing key files.")
    var force = false

    func validate() throws {
        switch (replicas, addReplica) {
        case (nil, nil): throw ValidationError("give --replicas N (a new cluster) or --add-replica ID --cluster PATH (a replica to add)")
        case (.some, .some): throw ValidationError("give --replicas or --add-replica, not both")
        case (.some, nil):
            guard cluster == nil, port == nil else { throw ValidationError("--cluster and --port go with --add-replica") }
        case (nil, .some):
            guard cluster != nil else { throw ValidationError("--add-replica needs --cluster PATH, the cluster file of the epoch in force") }
        }
    }

    func run() async throws {
        if let id = addReplica, let cluster { return try joiner(ReplicaID(id), cluster: cluster) }
        let keySet = try KeySet.generate(replicas: replicas ?? 0, clients: clients, host: host ?? "127.0.0.1", basePort: basePort)
        let paths = try keySet.write(to: out, overwrite: force)
        let m = keySet.membership
        Output.line("generated keys for n = \(m.n) replicas (f = \(m.f), quorum \(m.quorum)), \(m.clients.count) clients and the operator")
        for (file, path) in zip(keySet.keyFiles, paths) {
            Output.line("  wrote \(path)  (\(file.principal), mode 0600, public key \(file.key.publicKey))")
        }
        Output.line("  wrote \(paths.last!)  (cluster file)")
    }

    /// `--add-replica`: the new replica's key and the cluster file it starts from.
    func joiner(_ id: ReplicaID, cluster: String) throws {
        let current: Membership
        do { current = try ClusterFile.loadContents(cluster).membership } catch { throw Failure("\(error)") }
        let hosts = Set(current.replicas.map(\.host))
        guard let host = host ?? (hosts.count == 1 ? hosts.first : nil) else {
            throw Failure("--host: the members of \(cluster) are on several hosts (\(hosts.sorted().joined(separator: ", "))); say which one the new replica is on")
        }
        let port = port ?? (current.replicas.filter { $0.host == host }.map { Int($0.port) }.max() ?? 6999) + 1
        guard (1...65535).contains(port) else { throw Failure("--port \(port): not a UDP port (1 to 65535)") }
        let joiner: Joiner
        do { joiner = try Joiner.make(id: id, host: host, port: UInt16(port), joining: current) } catch {
            throw Failure("cannot add replica \(id.rawValue) to \(current.epoch) of \(cluster): \(error)")
        }
        let paths: (key: String, cluster: String)
        do { paths = try joiner.write(to: out, overwrite: force) } catch { throw Failure("\(error)") }
        let next = joiner.membership
        Output.line("generated the key of replica \(id.rawValue), to join \(next.epoch) (n = \(next.n), f = \(next.f)) after \(current.epoch) of \(cluster)")
        Output.line("  wrote \(paths.key)  (replica \(id.rawValue), mode 0600, public key \(joiner.descriptor.publicKey))")
        Output.line("  wrote \(paths.cluster)  (the cluster file it starts from: \(next.epoch), and \(current.epoch) before it)")
        Output.line("its entry in the cluster file:")
        Output.line(joiner.clusterEntry)
        Output.line("next: pbft replica --cluster \(paths.cluster) --id \(id.rawValue) --key \(paths.key) --data DATA")
        Output.line("then: pbft ctl add-replica \(id.rawValue) --cluster \(cluster) --keys \(out)")
    }
}
