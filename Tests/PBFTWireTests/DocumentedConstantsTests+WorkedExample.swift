import Foundation
import PBFTCrypto
import PBFTTestSupport
import PBFTWire
import Testing

/// The worked example of docs/wire-format.md: two real datagrams, annotated field by field,
/// written by the encoder and signed by libsodium. Each annotated field is also checked
/// against the bytes it labels, so regenerating the page after a change of the encoder
/// cannot publish a label that no longer fits.
extension DocumentedConstantsTests {
    static let exampleBlock = "worked-example"

    @Test func workedExampleIsWhatTheEncoderWrites() throws {
        let page = try Document(Self.wirePage)
        let rendered = try WorkedExample().rendered()
        if ProcessInfo.processInfo.environment["PBFT_UPDATE_DOCS"] == "1" {
            try page.replacingGeneratedBlock(Self.exampleBlock, with: rendered)
            return
        }
        let block = try #require(page.generatedBlock(Self.exampleBlock), "docs/wire-format.md has no worked-example block")
        #expect(block.content == rendered, "the worked example is stale; run with PBFT_UPDATE_DOCS=1 to rewrite it. It should read:\n\(rendered)")
    }
}

/// Client 1 asks for `hi` at timestamp 1 in epoch 0; replica 0 orders it at view 0,
/// sequence number 1, in a batch of that one request.
struct WorkedExample {
    let client = SigningKey(seed: (0..<32).map { UInt8($0) })!
    let primary = SigningKey(seed: (32..<64).map { UInt8($0) })!

    func rendered() throws -> String {
        let request = Envelope.seal(
            .request(Request(timestamp: Timestamp(1), operation: Array("hi".utf8))), epoch: Epoch(0),
            signer: Ed25519Signer(principal: .client(ClientID(1)), key: client))
        let requestBytes = request.encoded()
        let batchDigest = Crypto.sha256(Self.u64(UInt64(requestBytes.count)) + requestBytes)
        let prePrepare = Envelope.seal(
            .prePrepare(PrePrepare(view: ViewNumber(0), sequence: SequenceNumber(1), batchDigest: batchDigest)), epoch: Epoch(0),
            signer: Ed25519Signer(principal: .replica(ReplicaID(0)), key: primary))
        let frame = Frame(envelope: prePrepare, batch: [request])

        var out: [String] = []
        // Datagram 1: the request, as the client sends it.
        let first = DatagramCodec.datagrams(for: Frame(envelope: request).encoded(), messageID: 1)
        try #require(first.count == 1)
        var dump = HexDump(first[0])
        dump.field(1, "datagram kind 0x50: one whole frame", [0x50])
        let signedEnd = Self.requestEnvelope(&dump, request, indent: "")
        try #require(dump.atEnd)
        out.append("Datagram 1 (\(first[0].count) bytes): client 1's request.")
        out += dump.lines
        out.append("")
        out.append("signed bytes:   datagram bytes 1 ..< \(signedEnd)")
        out.append("client 1 key:   \(client.publicKey)")
        out.append("request digest: SHA-256(datagram bytes 1 ..< \(first[0].count))  (execution.jsonl \"request\")")
        out.append("              = \(Crypto.sha256(requestBytes))")
        try #require(Ed25519.verify(request.signature, of: Array(first[0][1..<signedEnd]), by: client.publicKey))

        // Datagram 2: the pre-prepare with its batch, as the primary sends it.
        let second = DatagramCodec.datagrams(for: frame.encoded(), messageID: 1)
        try #require(second.count == 1)
        dump = HexDump(second[0])
        dump.field(1, "datagram kind 0x50: one whole frame", [0x50])
        dump.field(1, "version \(wireVersion)", [wireVersion])
        dump.field(1, "type 3: pre-prepare", [MessageType.prePrepare.rawValue])
        dump.field(1, "sender kind 0: replica", [0])
        dump.field(4, "sender id 0", Self.u32(0))
        dump.field(8, "epoch 0", Self.u64(0))
        dump.field(4, "payload length 48", Self.u32(48))
        dump.field(8, "view 0", Self.u64(0))
        dump.field(8, "sequence number 1", Self.u64(1))
        dump.field(32, "batch digest (below)", batchDigest.bytes)
        let prePrepareSigned = dump.offset
        dump.field(64, "signature: replica 0, over datagram bytes 1 ..< \(prePrepareSigned)", prePrepare.signature.bytes)
        dump.field(2, "batch: 1 request", [0, 1])
        dump.field(4, "nested envelope length \(requestBytes.count)", Self.u32(UInt32(requestBytes.count)))
        let nestedStart = dump.offset
        _ = Self.requestEnvelope(&dump, request, indent: "  ")
        try #require(dump.atEnd)
        out.append("")
        out.append("Datagram 2 (\(second[0].count) bytes): replica 0's pre-prepare with its batch.")
        out += dump.lines
        out.append("")
        out.append("replica 0 key:  \(primary.publicKey)")
        out.append("batch digest:   SHA-256(00 00 00 00 00 00 00 \(Hex.encode([UInt8(requestBytes.count)])) ‖ datagram bytes \(nestedStart) ..< \(second[0].count))")
        out.append("              = \(batchDigest)")
        try #require(Ed25519.verify(prePrepare.signature, of: Array(second[0][1..<prePrepareSigned]), by: primary.publicKey))
        try #require(try Frame.decode(Array(second[0].dropFirst())) == frame)
        return "```text\n" + out.joined(separator: "\n") + "\n```\n"
    }

    /// Annotates the request envelope at the dump's offset; returns where its signed bytes end.
    static func requestEnvelope(_ dump: inout HexDump, _ request: Envelope, indent: String) -> Int {
        dump.field(1, indent + "version \(wireVersion)", [wireVersion])
        dump.field(1, indent + "type 1: request", [MessageType.request.rawValue])
        dump.field(1, indent + "sender kind 1: client", [1])
        dump.field(4, indent + "sender id 1", u32(1))
        dump.field(8, indent + "epoch 0", u64(0))
        dump.field(4, indent + "payload length 14", u32(14))
        dump.field(8, indent + "timestamp 1", u64(1))
        dump.field(4, indent + "operation: length 2", u32(2))
        dump.field(2, indent + "operation: \"hi\"", Array("hi".utf8))
        let signedEnd = dump.offset
        let start = signedEnd - 33
        dump.field(64, indent + "signature: client 1, over datagram bytes \(start) ..< \(signedEnd)", request.signature.bytes)
        return signedEnd
    }

    static func u32(_ value: UInt32) -> [UInt8] { (0..<4).reversed().map { UInt8(truncatingIfNeeded: value >> UInt32(8 * $0)) } }
    static func u64(_ value: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) } }
}

/// Lines of `offset  hex bytes  note`, at most 16 bytes a line.
struct HexDump {
    let bytes: [UInt8]
    private(set) var offset = 0
    private(set) var lines: [String] = []

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset == bytes.count }

    /// The next `width` bytes, labelled `note`; they must equal `expected`.
    mutating func field(_ width: Int, _ note: String, _ expected: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        guard offset + width <= bytes.count else {
            Issue.record("\(note): \(width) bytes at \(offset) run past \(bytes.count)", sourceLocation: sourceLocation)
            return
        }
        let slice = Array(bytes[offset..<(offset + width)])
        #expect(slice == expected, "\(note) at \(offset)", sourceLocation: sourceLocation)
        var start = 0
        while start < width {
            let chunk = slice[start..<min(start + 16, width)]
            let hex = chunk.map { Hex.encode([$0]) }.joined(separator: " ")
            let position = String(offset + start)
            let label = start == 0 ? note : ""
            let line = String(repeating: " ", count: max(0, 5 - position.count)) + position + "  " + hex
                + (label.isEmpty ? "" : String(repeating: " ", count: 47 - hex.count) + "  " + label)
            lines.append(line)
            start += 16
        }
        offset += width
    }
}
