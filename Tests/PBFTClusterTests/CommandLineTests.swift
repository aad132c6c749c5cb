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
