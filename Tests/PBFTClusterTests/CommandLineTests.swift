import Foundation
import Testing
import PBFTTestSupport

/// Runs the built `pbft` executable, as a user would.
@Suite struct CommandLineTests {
    @Test func keygenWritesAndReports() throws {
        let dir = TemporaryDirectory()
        let result = try PBFTBinary.run(["keygen", "--replicas", "4", "--clients", "2", "--out", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("f = 1"))
        for name in ["replica-0.key", "replica-3.key", "client-1.key", "operator.key", "cluster.toml"] {
            #expect(result.stdout.contains(dir.path + "/" + name))
            #expect(FileManager.default.fileExists(atPath: dir.file(name)))
        }
        let seed = try String(contentsOfFile: dir.file("replica-0.key"), encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("seed") }!.split(separator: "\"")[1]
        #expect(!result.stdout.contains(seed), "the secret seed must never be printed")

        let again = try PBFTBinary.run(["keygen", "--replicas", "4", "--out", dir.path])
        #expect(again.status != 0)
        #expect(again.stderr.contains("already exists"))
        #expect(again.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(again.stderr)")

        let forced = try PBFTBinary.run(["keygen", "--replicas", "4", "--out", dir.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
    }

    @Test("keygen --add-replica writes the new replica's key and the next epoch's cluster file; mistakes get one line and a non-zero exit")
    func keygenAddReplica() throws {
        let dir = TemporaryDirectory()
        #expect(try PBFTBinary.run(["keygen", "--replicas", "4", "--base-port", "7000", "--out", dir.path]).status == 0)
        let cluster = dir.file("cluster.toml")
        let added = try PBFTBinary.run(["keygen", "--add-replica", "4", "--cluster", cluster, "--out", dir.path])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("to join e1 (n = 5, f = 1)") && added.stdout.contains("port = 7004") && added.stdout.contains("[[replicas]]"), "\(added.stdout)")
        let key = try FileManager.default.attributesOfItem(atPath: dir.file("replica-4.key"))
        #expect((key[.posixPermissions] as? Int) == 0o600)
        let joined = try String(contentsOfFile: dir.file("cluster-epoch-1.toml"), encoding: .utf8)
        #expect(joined.contains("epoch = 1") && joined.contains("n = 5") && joined.contains("previous_f = 1") && joined.contains("[[previous_replicas]]"), "\(joined)")

        for (arguments, message) in [
            (["--add-replica", "3", "--cluster", cluster], "replica id 3 is already a member of e0"),
            (["--add-replica", "9", "--port", "7001", "--cluster", cluster], "127.0.0.1:7001 is replica 1's address"),
            (["--add-replica", "9", "--cluster", dir.file("nope.toml")], "nope.toml: cannot read"),
            (["--add-replica", "4", "--cluster", cluster], "replica-4.key: already exists"),
            (["--add-replica", "9"], "--add-replica needs --cluster"),
        ] {
            let result = try PBFTBinary.run(["keygen"] + arguments + ["--out", dir.path])
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count <= 3, "\(arguments): \(result.stderr)")
        }
    }

    @Test(arguments: ["1", "3"])
    func keygenRejectsTooFewReplicas(_ n: String) throws {
        let dir = TemporaryDirectory()
        let result = try PBFTBinary.run(["keygen", "--replicas", n, "--out", dir.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("at least 4 replicas"))
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("replica-0.key")))
    }
}
