import Foundation
import PBFTCrypto
import PBFTWire
import Testing

private func fixture(_ name: String) throws -> Data {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    return try Data(contentsOf: directory.appendingPathComponent(name))
}

private func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

private struct RFC8032File: Decodable {
    struct Vector: Decodable {
        let name: String
        let secret_key: String
        let public_key: String
        let message: String
        let signature: String
    }
    let vectors: [Vector]
}

private struct WycheproofFile: Decodable {
    struct Group: Decodable {
        struct Key: Decodable { let pk: String }
        let publicKey: Key
        let tests: [Case]
    }
    struct Case: Decodable {
        let tcId: Int
        let comment: String
        let msg: String
        let sig: String
        let result: String
    }
    let numberOfTests: Int
    let testGroups: [Group]
}

@Suite struct RFC8032Tests {
    @Test func publicKeyFromSeedSignatureAndVerification() throws {
        let file = try JSONDecoder().decode(RFC8032File.self, from: try fixture("rfc8032-ed25519.json"))
        #expect(file.vectors.count == 2)
        for vector in file.vectors {
            let key = try #require(SigningKey(seed: hex(vector.secret_key)), "\(vector.name)")
            #expect(key.publicKey.bytes == hex(vector.public_key), "\(vector.name): public key from seed")
            let signature = key.sign(hex(vector.message))
            #expect(signature.bytes == hex(vector.signature), "\(vector.name): exact signature bytes")
            #expect(Ed25519.verify(signature, of: hex(vector.message), by: key.publicKey), "\(vector.name)")
            #expect(!Ed25519.verify(signature, of: hex(vector.message) + [0], by: key.publicKey), "\(vector.name)")
        }
    }
}

@Suite struct WycheproofTests {
    @Test func everyCaseHasTheExpectedVerdict() throws {
        let file = try JSONDecoder().decode(WycheproofFile.self, from: try fixture("wycheproof-ed25519_test.json"))
        var valid = 0, invalid = 0
        for group in file.testGroups {
            let publicKey = PublicKey(bytes: hex(group.publicKey.pk))
            for test in group.tests {
                // A signature of the wrong length cannot even be represented: rejected.
                let verified: Bool =
                    if let publicKey, let signature = Signature(bytes: hex(test.sig)) {
                        Ed25519.verify(signature, of: hex(test.msg), by: publicKey)
                    } else { false }
                switch test.result {
                case "valid":
                    valid += 1
                    #expect(verified, "tcId \(test.tcId) (\(test.comment)) should verify")
                case "invalid":
                    invalid += 1
                    #expect(!verified, "tcId \(test.tcId) (\(test.comment)) should be rejected")
                default:
                    Issue.record("tcId \(test.tcId): unexpected result \(test.result)")
                }
            }
        }
        #expect(valid + invalid == file.numberOfTests)
        #expect(valid + invalid == 151)
    }
}

@Suite struct SignatureTests {
    let key = SigningKey(seed: [UInt8](repeating: 7, count: 32))!
    let message = Array("pre-prepare v0 n1".utf8)

    @Test func anySingleBitFlipBreaksVerification() {
        let signature = key.sign(message)
        #expect(Ed25519.verify(signature, of: message, by: key.publicKey))
        for bit in 0..<(message.count * 8) {
            var flipped = message
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(!Ed25519.verify(signature, of: flipped, by: key.publicKey), "message bit \(bit)")
        }
        let signatureBytes = signature.bytes
        for bit in 0..<(signatureBytes.count * 8) {
            var flipped = signatureBytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(!Ed25519.verify(Signature(bytes: flipped)!, of: message, by: key.publicKey), "signature bit \(bit)")
        }
        let keyBytes = key.publicKey.bytes
        for bit in 0..<(keyBytes.count * 8) {
            var flipped = keyBytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(!Ed25519.verify(signature, of: message, by: PublicKey(bytes: flipped)!), "public key bit \(bit)")
        }
    }

    @Test func anotherKeyCannotVerify() {
        let other = SigningKey(seed: [UInt8](repeating: 8, count: 32))!
        #expect(!Ed25519.verify(key.sign(message), of: message, by: other.publicKey))
    }

    @Test func seedsOfTheWrongLengthAreRefused() {
        #expect(SigningKey(seed: []) == nil)
        #expect(SigningKey(seed: [UInt8](repeating: 1, count: 31)) == nil)
        #expect(SigningKey(seed: [UInt8](repeating: 1, count: 33)) == nil)
    }

    @Test func generatedKeysDifferAndSign() {
        let a = SigningKey.generate(), b = SigningKey.generate()
        #expect(a.publicKey != b.publicKey)
        #expect(Ed25519.verify(a.sign(message), of: message, by: a.publicKey))
        #expect(Ed25519.isUsablePublicKey(a.publicKey))
    }

    @Test func secretBytesNeverAppearInDescriptions() {
        let seedHex = Hex.encode(key.seedForStorage())
        for text in [String(describing: key), String(reflecting: key), "\(key)", String(describing: Mirror(reflecting: key).children.map(\.value))] {
            #expect(!text.contains(seedHex))
            #expect(!text.lowercased().contains(String(seedHex.prefix(16))))
        }
        #expect(String(describing: key).contains("redacted"))
    }

    @Test func smallOrderAndOffCurveKeysAreUnusable() {
        // The identity point (small order) and a y-coordinate that is not on the curve.
        let identity = PublicKey(bytes: [1] + [UInt8](repeating: 0, count: 31))!
        #expect(!Ed25519.isUsablePublicKey(identity))
        let allOnes = PublicKey(bytes: [UInt8](repeating: 0xff, count: 32))!
        #expect(!Ed25519.isUsablePublicKey(allOnes))
    }
}

@Suite struct DigestAndComparisonTests {
    @Test func sha256KnownAnswers() {
        // FIPS 180-2 examples.
        #expect(Crypto.sha256([]).description == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Crypto.sha256(Array("abc".utf8)).description == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Crypto.sha256(long).description == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// BLAKE2b-256 (RFC 7693 with a 32-byte output), fed in parts: the same as one input.
    @Test func blake2b256KnownAnswersAndParts() {
        #expect(Crypto.blake2b256([]).description == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        #expect(Crypto.blake2b256(Array("abc".utf8)).description == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        #expect(Crypto.blake2b256(Array("a".utf8), [], Array("bc".utf8)) == Crypto.blake2b256(Array("abc".utf8)))
        #expect(Crypto.blake2b256(Array("ab".utf8), Array("c".utf8)) != Crypto.blake2b256(Array("abcd".utf8)))
    }

    @Test func constantTimeEqual() {
        #expect(Crypto.constantTimeEqual([], []))
        #expect(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!Crypto.constantTimeEqual([0], []))
    }

    @Test func digestOrderIsByteOrder() {
        let a = Digest(bytes: [0] + [UInt8](repeating: 0xff, count: 31))!
        let b = Digest(bytes: [1] + [UInt8](repeating: 0, count: 31))!
        #expect(a < b)
        #expect(Digest(bytes: a.bytes) == a)
        #expect(Digest(bytes: [UInt8](repeating: 0, count: 31)) == nil)
    }
}
