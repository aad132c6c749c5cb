import ArgumentParser
import PBFTCluster
import PBFTCore

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate Ed25519 keys for replicas, clients and the operator, and the cluster file.",
        discussion: """
            Writes replica-I.key, client-J.key and operator.key (mode 0600) and cluster.toml
            into --out. f is floor((n-1)/3). Existing files are kept unless --force is given.
            """
    )

    @Option(help: "Number of replicas (at least 4).")
    var replicas: Int

    @Option(help: "Number of clients.")
    var clients: Int = 4

    @Option(help: "Directory to write the keys and cluster.toml into.")
    var out: String = "keys"

    @Option(help: "Host every replica listens on.")
    var host: String = "127.0.0.1"

    @Option(help: "UDP port of replica 0; replica i gets base-port + i.")
    var basePort: Int = 7000

    @Flag(help: "Overwrite existing key files.")
    var force = false

    func run() async throws {
        let keySet = try KeySet.generate(replicas: replicas, clients: clients, host: host, basePort: basePort)
        let paths = try keySet.write(to: out, overwrite: force)
        let m = keySet.membership
        Output.line("generated keys for n = \(m.n) replicas (f = \(m.f), quorum \(m.quorum)), \(m.clients.count) clients and the operator")
        for (file, path) in zip(keySet.keyFiles, paths) {
            Output.line("  wrote \(path)  (\(file.principal), mode 0600, public key \(file.key.publicKey))")
        }
        Output.line("  wrote \(paths.last!)  (cluster file)")
    }
}
