import Foundation
import PBFTCluster
import PBFTCore
import PBFTCrypto
import PBFTWire
import Testing
import PBFTTestSupport

@Suite struct ClusterFileTests {
    func keySet(_ n: Int = 4, clients: Int = 2) throws -> KeySet {
        try KeySet.generate(replicas: n, clients: clients, host: "127.0.0.1", basePort: 7000)
    }

    @Test(arguments: [4, 5, 7, 10])
    func keygenWritesFilesThatLoadBack(_ n: Int) throws {
        let dir = TemporaryDirectory()
        let set = try keySet(n, clients: 3)
        let paths = try set.write(to: dir.path + "/keys", overwrite: false)
        #expect(paths.count == n + 3 + 1 + 1)
        let membership = try ClusterFile.load(dir.path + "/keys/cluster.toml")
        #expect(membership == set.membership)
        #expect(membership.f == (n - 1) / 3)
        #expect(membership.replicas.map(\.port) == (0..<n).map { UInt16(7000 + $0) })
        for file in set.keyFiles {
            let loaded = try KeyFile.load(dir.path + "/keys/" + KeyFile.fileName(for: file.principal))
            #expect(membership.publicKey(of: loaded.principal, epoch: Epoch(0)) == loaded.key.publicKey)
        }
    }

    @Test func keygenRefusesToOverwriteWithoutForce() throws {
        let dir = TemporaryDirectory()
        let first = try keySet()
        _ = try first.write(to: dir.path, overwrite: false)
        let second = try keySet()
        expectFileError(dir.path + "/replica-0.key", containing: "refusing to overwrite") { _ = try second.write(to: dir.path, overwrite: false) }
        #expect(try ClusterFile.load(dir.path + "/cluster.toml") == first.membership)
        _ = try second.write(to: dir.path, overwrite: true)
        #expect(try ClusterFile.load(dir.path + "/cluster.toml") == second.membership)
    }

    @Test func keygenRejectsFewerThanFourReplicas() {
        for n in [0, 1, 3] {
            #expect(throws: KeySetError.tooFewReplicas(n)) { _ = try keySet(n) }
        }
        #expect(throws: KeySetError.portRange(65534, 4)) {
            _ = try KeySet.generate(replicas: 4, clients: 0, host: "h", basePort: 65534)
        }
    }

    func writeCluster(_ dir: TemporaryDirectory, _ edit: (String) -> String) throws -> String {
        let text = ClusterFile.render(try keySet().membership)
        return dir.write("cluster.toml", edit(text), mode: 0o644)
    }

    @Test func nBelow3fPlus1IsRejected() throws {
        let dir = TemporaryDirectory()
        let path = try writeCluster(dir) { $0.replacingOccurrences(of: "f = 1", with: "f = 2") }
        expectFileError(path, containing: "n >= 3f+1") { _ = try ClusterFile.load(path) }
    }

    @Test func namesTheProblem() throws {
        let dir = TemporaryDirectory()
        var path = try writeCluster(dir) { $0.replacingOccurrences(of: "n = 4", with: "n = 5") }
        expectFileError(path, containing: "field 'n' is 5 but 4 [[replicas]] are listed") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "port = 7002", with: "port = 70000") }
        expectFileError(path, containing: "field 'replicas[2].port': 70000 is out of range") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "port = 7002", with: "port = 7001") }
        expectFileError(path, containing: "address 127.0.0.1:7001 is used by two replicas") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "id = 3", with: "id = 1") }
        expectFileError(path, containing: "replica id 1 appears twice") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "n = 4", with: "n = 4\nbogus = true") }
        expectFileError(path, containing: "unknown field 'bogus'") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { text in
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let i = lines.firstIndex { $0.hasPrefix("public_key") }!
            lines[i] = "public_key = \"abcd\""
            return lines.joined(separator: "\n")
        }
        expectFileError(path, containing: "field 'replicas[0].public_key': expected 64 hex digits") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { text in
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let i = lines.firstIndex { $0.hasPrefix("public_key") }!
            lines[i] = "public_key = \"01" + String(repeating: "00", count: 31) + "\""
            return lines.joined(separator: "\n")
        }
        expectFileError(path, containing: "not a valid Ed25519 public key") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "host = \"127.0.0.1\"", with: "host = \"\"") }
        expectFileError(path, containing: "field 'replicas[0].host'") { _ = try ClusterFile.load(path) }

        path = try writeCluster(dir) { $0.replacingOccurrences(of: "[[replicas]]\nid = 1", with: "[[replicas]]\nid = \"one\"") }
        expectFileError(path, containing: "field 'replicas[1].id': expected an integer") { _ = try ClusterFile.load(path) }
    }

    @Test func syntaxErrorsNameTheLine() throws {
        let dir = TemporaryDirectory()
        let path = try writeCluster(dir) { $0.replacingOccurrences(of: "f = 1", with: "f = [1,") }
        expectFileError(path, containing: "not valid TOML") { _ = try ClusterFile.load(path) }
        let result = Result { () throws(FileError) in try ClusterFile.load(path) }
        guard case .failure(let error) = result else { Issue.record("loaded"); return }
        #expect(error.reason.hasPrefix("line "), "\(error)")
    }

    @Test func truncatedClusterFilesAreRejected() throws {
        let dir = TemporaryDirectory()
        let text = ClusterFile.render(try keySet().membership)
        let bytes = Array(text.utf8)
        // Every cut before the end of the last replica's public key leaves a file that must
        // not load (a cut among the trailing client entries can still be a valid file).
        let clientsStart = text.range(of: "[[clients]]")!.lowerBound
        let lastKeyLine = text[..<clientsStart].range(of: "public_key = \"", options: .backwards)!.upperBound
        let mustFailBelow = text.utf8.distance(from: text.startIndex, to: lastKeyLine) + 64 + 1
        for length in 0..<mustFailBelow {
            let path = dir.write("cut.toml", String(decoding: bytes[0..<length], as: UTF8.self), mode: 0o644)
            expectFileError(path, containing: "") { _ = try ClusterFile.load(path) }
        }
        let whole = dir.write("whole.toml", text, mode: 0o644)
        #expect(throws: Never.self) { _ = try ClusterFile.load(whole) }
    }

    @Test func missingClusterFile() {
        let dir = TemporaryDirectory()
        let path = dir.file("cluster.toml")
        expectFileError(path, containing: "cannot read") { _ = try ClusterFile.load(path) }
    }
}
