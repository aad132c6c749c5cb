import Foundation
import PBFTCluster
import PBFTCore
import PBFTCrypto
import PBFTWire
import Testing
import PBFTTestSupport

func expectFileError(_ path: String, containing fragment: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected an error naming \(path) containing '\(fragment)'", sourceLocation: sourceLocation)
    } catch let error as FileError {
        let line = error.description
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(line.hasPrefix(path + ": "), "\(line)", sourceLocation: sourceLocation)
        if !fragment.isEmpty { #expect(line.contains(fragment), "\(line)", sourceLocation: sourceLocation) }
        #expect(!line.contains("\n"), "one line: \(line)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct KeyFileTests {
    let seed = [UInt8](repeating: 0x42, count: 32)

    func validText(role: String = "replica", id: Int? = 2) -> String {
        let key = SigningKey(seed: seed)!
        var lines = ["role = \"\(role)\""]
        if let id { lines.append("id = \(id)") }
        lines.append("seed = \"\(Hex.encode(seed))\"")
        lines.append("public_key = \"\(key.publicKey)\"")
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func writeThenLoadRoundTrips() throws {
        let dir = TemporaryDirectory()
        for principal in [Principal.replica(ReplicaID(3)), .client(ClientID(9)), .operator] {
            let file = KeyFile(principal: principal, key: SigningKey(seed: seed)!)
            let path = dir.file(KeyFile.fileName(for: principal))
            try file.write(to: path, overwrite: false)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let loaded = try KeyFile.load(path)
            #expect(loaded.principal == principal)
            #expect(loaded.key.publicKey == file.key.publicKey)
        }
    }

    @Test func writeRefusesToOverwriteUnlessAsked() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("replica-0.key")
        let first = KeyFile(principal: .replica(ReplicaID(0)), key: SigningKey(seed: seed)!)
        try first.write(to: path, overwrite: false)
        let second = KeyFile(principal: .replica(ReplicaID(0)), key: SigningKey.generate())
        expectFileError(path, containing: "already exists") { try second.write(to: path, overwrite: false) }
        #expect(try KeyFile.load(path).key.publicKey == first.key.publicKey)
        try second.write(to: path, overwrite: true)
        #expect(try KeyFile.load(path).key.publicKey == second.key.publicKey)
    }

    @Test func missingFile() {
        let dir = TemporaryDirectory()
        let path = dir.file("nope.key")
        expectFileError(path, containing: "No such file") { _ = try KeyFile.load(path) }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o606])
    func wrongPermissions(_ mode: Int) {
        let dir = TemporaryDirectory()
        let path = dir.write("replica-2.key", validText(), mode: mode)
        try? FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        expectFileError(path, containing: "chmod 600") { _ = try KeyFile.load(path) }
    }

    @Test func validFileWithMode0400Loads() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("replica-2.key", validText(), mode: 0o400)
        #expect(try KeyFile.load(path).principal == .replica(ReplicaID(2)))
    }

    @Test func truncatedAtEveryLength() {
        let dir = TemporaryDirectory()
        let text = validText()
        let bytes = Array(text.utf8)
        // Every proper prefix that still has the role line's start is malformed one way or
        // another: unterminated string, missing field, or a short hex string.
        for length in 0..<(bytes.count - 1) {
            let path = dir.write("cut-\(length).key", String(decoding: bytes[0..<length], as: UTF8.self))
            do {
                _ = try KeyFile.load(path)
                Issue.record("a file truncated to \(length) of \(bytes.count) bytes loaded")
            } catch {
                #expect(error.path == path)
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test func namesTheProblem() {
        let dir = TemporaryDirectory()
        let shortSeed = validText().replacingOccurrences(of: Hex.encode(seed), with: Hex.encode(seed.prefix(20)))
        var path = dir.write("short.key", shortSeed)
        expectFileError(path, containing: "field 'seed': expected 64 hex digits (32 bytes), got 40") { _ = try KeyFile.load(path) }

        let badHex = validText().replacingOccurrences(of: Hex.encode(seed), with: String(repeating: "zz", count: 32))
        path = dir.write("badhex.key", badHex)
        expectFileError(path, containing: "field 'seed'") { _ = try KeyFile.load(path) }

        let otherKey = SigningKey(seed: [UInt8](repeating: 1, count: 32))!
        let mismatch = validText().replacingOccurrences(of: SigningKey(seed: seed)!.publicKey.description, with: otherKey.publicKey.description)
        path = dir.write("mismatch.key", mismatch)
        expectFileError(path, containing: "does not match the seed") { _ = try KeyFile.load(path) }

        path = dir.write("role.key", validText(role: "king"))
        expectFileError(path, containing: "'king' is not one of replica, client, operator") { _ = try KeyFile.load(path) }

        path = dir.write("noid.key", validText(id: nil))
        expectFileError(path, containing: "missing field 'id'") { _ = try KeyFile.load(path) }

        path = dir.write("negative.key", validText(id: -1))
        expectFileError(path, containing: "field 'id': -1 is out of range") { _ = try KeyFile.load(path) }

        path = dir.write("extra.key", validText() + "colour = \"blue\"\n")
        expectFileError(path, containing: "unknown field 'colour'") { _ = try KeyFile.load(path) }

        path = dir.write("syntax.key", "role = \"replica\"\nid = = 3\n")
        expectFileError(path, containing: "line 2") { _ = try KeyFile.load(path) }

        path = dir.write("binary.key", String(decoding: [0xff, 0xfe, 0x00], as: UTF8.self))
        expectFileError(path, containing: "") { _ = try KeyFile.load(path) }
    }

    @Test func aDirectoryIsNotAKeyFile() {
        let dir = TemporaryDirectory()
        expectFileError(dir.path, containing: "not a regular file") { _ = try KeyFile.load(dir.path) }
    }
}
