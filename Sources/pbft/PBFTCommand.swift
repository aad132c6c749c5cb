import ArgumentParser

/// `pbft`: one executable, a subcommand per job.
@main
struct PBFTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pbft",
        abstract: "PBFT replicas, clients and a fault-injection testbed, with Ed25519-signed messages.",
        version: "0.1.0",
        subcommands: [Keygen.self, ReplicaCommand.self, ClientCommand.self, LaunchCommand.self, Ctl.self, RunCommand.self, CheckCommand.self, Sim.self, Bench.self]
    )
}
