import Foundation
import PBFTCrypto
import PBFTTestSupport
import PBFTWire
import Testing

/// docs/wire-format.md and docs/transport.md hold the code to what they say: each test
/// reads a table or figure from the page itself and compares it with what the encoder
/// writes or the constant the code uses, so a page that drifts fails here. (Issue 19: a
/// decoder written from the pages alone must interoperate.)
@Suite struct DocumentedConstantsTests {
    static let wirePage = "docs/wire-format.md"
    static let transportPage = "docs/transport.md"

    let digest = Digest(w0: 0x0102_0304_0506_0708, w1: 0x1112_1314_1516_1718, w2: 0x2122_2324_2526_2728, w3: 0x3132_3334_3536_3738)
    let key = PublicKey(bytes: [UInt8](repeating: 0xEE, count: 32))!
    let run = RunID(high: 0x4142_4344_4546_4748, low: 0x5152_5354_5556_5758)

    // MARK: - The envelope

    @Test func envelopeTableGivesTheOffsetsTheEncoderWrites() throws {
        let page = try Document(Self.wirePage)
        let table = try #require(page.table(under: "The envelope"))
        let signature = Signature(bytes: (0..<64).map { UInt8($0) })!
        let vote = Vote(view: ViewNumber(2), sequence: SequenceNumber(3), batchDigest: digest)
        let envelope = Envelope(sender: .replica(ReplicaID(0x0A0B_0C0D)), epoch: Epoch(0x0102_0304_0506_0708), message: .commit(vote), signature: signature)
        let bytes = envelope.encoded()
        let payloadLength = bytes.count - envelopeHeaderBytes - Signature.byteCount
        try checkLayout(table, of: bytes, fixedBytes: envelopeHeaderBytes + Signature.byteCount, fields: [
            ("version", [wireVersion]),
            ("type", [MessageType.commit.rawValue]),
            ("sender kind", [0]),
            ("sender id", be(0x0A0B_0C0D, 4)),
            ("epoch", be(0x0102_0304_0506_0708, 8)),
            ("payload length", be(UInt64(payloadLength), 4)),
        ])
        // The rows after the payload: its offset is the header's size, the signature its last 64 bytes.
        let payloadRow = try #require(table.rows.first { $0[2] == "payload" })
        #expect(DocumentNumber.layout(payloadRow[0]).fixed == envelopeHeaderBytes && !DocumentNumber.layout(payloadRow[0]).variable)
        let signatureRow = try #require(table.rows.first { $0[2] == "signature" })
        #expect(DocumentNumber.integers(in: signatureRow[0]) == [envelopeHeaderBytes], "the signature follows the payload")
        #expect(DocumentNumber.layout(signatureRow[1]).fixed == Signature.byteCount && !DocumentNumber.layout(signatureRow[1]).variable)
        let versionRow = try #require(table.rows.first { $0[2] == "version" })
        #expect(versionRow[3].hasPrefix("`\(wireVersion)`"), "the envelope table's version byte: \(versionRow[3])")
        #expect(page.text.contains("Wire version: **\(wireVersion)**"))
        #expect(page.text.contains("The header is \(envelopeHeaderBytes) bytes (`envelopeHeaderBytes`), so an envelope is `\(envelopeHeaderBytes + Signature.byteCount) + L` bytes."))
        #expect(envelope.signedBytes == Array(bytes.prefix(envelopeHeaderBytes + payloadLength)), "the signature covers bytes 0 ..< 19 + L")
    }

    @Test func principalKindsAreTheDocumentedOnes() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "Principals"))
        let principals: [String: Principal] = ["replica": .replica(ReplicaID(7)), "client": .client(ClientID(7)), "operator": .operator]
        #expect(table.rows.count == principals.count)
        for row in table.rows {
            let principal = try #require(principals[row[1]], "unknown principal \(row[1])")
            let type: MessageType = switch principal {
            case .replica: .checkpoint
            case .client: .request
            case .operator: .control
            }
            let bytes = Envelope(sender: principal, epoch: Epoch(0), message: smallest(type), signature: .zero).encoded()
            #expect([Int(bytes[2])] == DocumentNumber.integers(in: row[0]), "kind of \(principal)")
        }
    }

    @Test func messageTypesTableMatchesTypesSendersAndSizes() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "Message types"))
        #expect(table.rows.count == MessageType.allCases.count, "one row per message type")
        let senders: [(word: String, principal: Principal)] = [("replica", .replica(ReplicaID(1))), ("client", .client(ClientID(1))), ("operator", .operator)]
        for row in table.rows {
            let number = try #require(Int(row[0]))
            let type = try #require(MessageType(rawValue: UInt8(number)), "type \(number) is documented but not in the code")
            #expect(row[1] == type.description, "type \(number)")
            let documented = Set(senders.filter { row[3].contains($0.word) }.map(\.word))
            let actual = Set(senders.filter { type.accepts($0.principal) }.map(\.word))
            #expect(documented == actual, "who may send a \(type): the page says \(row[3])")
            #expect(DocumentNumber.integers(in: row[4]) == documentedSizes(type), "payload bytes of a \(type): the page says \(row[4])")
        }
    }

    /// The figures the message-types table gives for each payload, computed from encodings:
    /// the fixed size; the fixed part before a variable field; the range of a
    /// reconfiguration; an announcement's fixed part, per-replica range and per-client size.
    func documentedSizes(_ type: MessageType) -> [Int] {
        switch type {
        case .reconfiguration:
            let sizes = reconfigurations().map { payload($0).count }
            return [sizes.min()!, sizes.max()!]
        case .control:
            // To a replica, then to a launcher (the target's width depends on its kind).
            return [Control.Target.replica(ReplicaID(0)), .launcher(run)].map { payload(.control(Control(timestamp: Timestamp(0), target: $0, command: .status))).count }
        case .epochAnnouncement:
            let none = payload(announcement(replicaHosts: [], clients: 0)).count
            return [
                none,
                payload(announcement(replicaHosts: [host(1)], clients: 0)).count - none,
                payload(announcement(replicaHosts: [host(WireLimits.default.hostBytesMax)], clients: 0)).count - none,
                payload(announcement(replicaHosts: [], clients: 1)).count - none,
            ]
        default:
            return [payload(smallest(type)).count]
        }
    }

    @Test func reconfigurationKindsAndSizesAreTheDocumentedOnes() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "2 reconfiguration", index: 1))
        let byKind = Dictionary(grouping: reconfigurations()) { message -> Int in Int(payload(message)[8]) }
        #expect(table.rows.count == byKind.count)
        for row in table.rows {
            let kind = try #require(Int(row[0]))
            let messages = try #require(byKind[kind], "kind \(kind) is documented but not written by the encoder")
            let sizes = messages.map { payload($0).count }
            let expected = sizes.min() == sizes.max() ? [sizes[0]] : [sizes.min()!, sizes.max()!]
            #expect(DocumentNumber.integers(in: row[3]) == expected, "payload bytes of kind \(kind)")
        }
        let descriptor = try #require(try Document(Self.wirePage).table(under: "2 reconfiguration", index: 2))
        let fixed = descriptor.cells("size").map(DocumentNumber.layout).reduce(0) { $0 + $1.fixed }
        // An add-replica payload: timestamp, kind, then the descriptor with a one-byte host.
        let add = payload(.reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: .addReplica(ReplicaDescriptor(id: ReplicaID(1), host: "h", port: 1, publicKey: key)))))
        #expect(fixed == add.count - 9 - 1, "a descriptor's fixed bytes")
    }

    // MARK: - Payload layouts

    /// Each payload table: offsets add up, the fixed bytes equal the encoding with every
    /// variable field empty, and each fixed field holds, at the documented offset, what the
    /// encoder wrote for it.
    @Test func payloadTablesHaveTheEncodersOffsets() throws {
        let page = try Document(Self.wirePage)
        let view = ViewNumber(0x1111), sequence = SequenceNumber(0x2222), stable = SequenceNumber(0x3333)
        let d = digest.bytes
        struct Case {
            var heading: String
            var index = 0
            /// For a table that gives alternatives (`4 or 16`): which one these bytes take.
            var alternative: Int?
            var bytes: [UInt8]
            var fixed: Int
            var fields: [(String, [UInt8])]
        }
        let vote = Vote(view: view, sequence: sequence, batchDigest: digest)
        let reply = Reply(view: view, timestamp: Timestamp(0x4444), requester: .client(ClientID(9)), result: [])
        let replyFrame = Frame(
            envelope: Envelope(sender: .replica(ReplicaID(0)), epoch: Epoch(0), message: .reply(ReplyRoot(root: digest, leaves: 1)), signature: .zero),
            reply: ProvenReply(reply: reply, index: 0, path: []))
        let replyBytes = Array(replyFrame.encoded().dropFirst(replyFrame.envelope.encoded().count).dropLast(4 + 2))
        let chunk = StateChunk(sequence: sequence, stateDigest: digest, chunkIndex: 1, chunkCount: 2, totalBytes: 0x5555, bytes: [])
        let cases: [Case] = [
            Case(heading: "1 request", bytes: payload(.request(Request(timestamp: Timestamp(0x4444), operation: []))), fixed: 12,
                 fields: [("timestamp", be(0x4444, 8)), ("operation", be(0, 4))]),
            Case(heading: "3 pre-prepare", bytes: payload(.prePrepare(PrePrepare(view: view, sequence: sequence, batchDigest: digest))), fixed: 48,
                 fields: [("view", be(0x1111, 8)), ("sequence", be(0x2222, 8)), ("digest", d)]),
            Case(heading: "4 prepare, 5 commit", bytes: payload(.prepare(vote)), fixed: 48,
                 fields: [("view", be(0x1111, 8)), ("sequence", be(0x2222, 8)), ("digest", d)]),
            Case(heading: "4 prepare, 5 commit", bytes: payload(.commit(vote)), fixed: 48,
                 fields: [("view", be(0x1111, 8)), ("sequence", be(0x2222, 8)), ("digest", d)]),
            Case(heading: "6 reply (reply root)", bytes: payload(.reply(ReplyRoot(root: digest, leaves: 3))), fixed: 36,
                 fields: [("root", d), ("leaves", be(3, 4))]),
            Case(heading: "6 reply (reply root)", index: 1, bytes: replyBytes, fixed: replyBytes.count,
                 fields: [("view", be(0x1111, 8)), ("timestamp", be(0x4444, 8)), ("requester", [1] + be(9, 4)), ("result", be(0, 4))]),
            Case(heading: "7 checkpoint", bytes: payload(.checkpoint(Checkpoint(sequence: sequence, stateDigest: digest))), fixed: 40,
                 fields: [("sequence", be(0x2222, 8)), ("state digest", d)]),
            Case(heading: "8 view-change", bytes: payload(.viewChange(ViewChange(newView: view, stableSequence: stable, checkpointProof: [], prepared: []))), fixed: 20,
                 fields: [("new view", be(0x1111, 8)), ("stable sequence", be(0x3333, 8)), ("checkpoint proof", be(0, 2))]),
            Case(heading: "9 new-view", bytes: payload(.newView(NewView(view: view, viewChanges: [], prePrepares: []))), fixed: 12,
                 fields: [("view `v+1`", be(0x1111, 8)), ("view-changes", be(0, 2))]),
            Case(heading: "10 state-request", bytes: payload(.stateRequest(StateRequest(sequence: sequence, stateDigest: digest, chunkIndex: 7))), fixed: 44,
                 fields: [("sequence", be(0x2222, 8)), ("digest", d), ("chunk index", be(7, 4))]),
            Case(heading: "11 state-chunk", bytes: payload(.stateChunk(chunk)), fixed: 60,
                 fields: [("sequence", be(0x2222, 8)), ("digest", d), ("chunk index", be(1, 4)), ("chunk count", be(2, 4)), ("total", be(0x5555, 8)), ("this chunk", be(0, 4))]),
            Case(heading: "12 status", bytes: payload(.status(Status(view: view, stableSequence: stable, lastExecuted: sequence, viewChanging: true, passive: true))), fixed: 25,
                 fields: [("view", be(0x1111, 8)), ("stable checkpoint", be(0x3333, 8)), ("executed", be(0x2222, 8)), ("flags", [3])]),
            Case(heading: "15 epoch-announcement", bytes: payload(announcement(replicaHosts: [], clients: 0)), fixed: 56,
                 fields: [("epoch", be(5, 8)), ("f", be(1, 4)), ("replica count", be(0, 2))]),
            Case(heading: "Framing", alternative: 0, bytes: payload(.control(Control(timestamp: Timestamp(0x4444), target: .replica(ReplicaID(0x0A0B_0C0D)), command: .byzantine))), fixed: 18,
                 fields: [("timestamp", be(0x4444, 8)), ("target kind", [1]), ("target: for kind", be(0x0A0B_0C0D, 4)), ("command", [3]), ("argument", be(0, 4))]),
            Case(heading: "Framing", alternative: 1, bytes: payload(.control(Control(timestamp: Timestamp(0x4444), target: .launcher(run), command: .launcher))), fixed: 30,
                 fields: [("timestamp", be(0x4444, 8)), ("target kind", [2]), ("target: for kind", run.bytes), ("command", [4]), ("argument", be(0, 4))]),
            Case(heading: "Framing", index: 2, bytes: payload(.controlReply(ControlReply(timestamp: Timestamp(0x4444), outcome: .wrongEpoch, epoch: Epoch(5), body: []))), fixed: 21,
                 fields: [("timestamp", be(0x4444, 8)), ("outcome", [2]), ("epoch: the answerer's", be(5, 8)), ("body", be(0, 4))]),
        ]
        for c in cases {
            let documented = try #require(page.table(under: c.heading, index: c.index), "no table \(c.index) under \(c.heading)")
            let table = c.alternative.map { documented.choosing(alternative: $0) } ?? documented
            try checkLayout(table, of: c.bytes, fixedBytes: c.fixed, fields: c.fields, context: "\(c.heading) #\(c.index) \(c.alternative.map { "alternative \($0)" } ?? "")")
        }
    }

    @Test func controlCommandsAreTheDocumentedOnes() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "Framing", index: 1))
        #expect(table.rows.count == Control.Command.allCases.count)
        for row in table.rows {
            let command = try #require(UInt8(row[0]).flatMap(Control.Command.init(rawValue:)), "command \(row[0])")
            #expect(row[1] == command.description)
        }
    }

    @Test func provenReplyTableGivesTheFrameTail() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "The frame", index: 1))
        // Reply 2 of 3 needs one sibling hash; an empty result.
        let reply = Reply(view: ViewNumber(1), timestamp: Timestamp(2), requester: .operator, result: [])
        let frame = Frame(
            envelope: Envelope(sender: .replica(ReplicaID(0)), epoch: Epoch(0), message: .reply(ReplyRoot(root: digest, leaves: 3)), signature: .zero),
            reply: ProvenReply(reply: reply, index: 2, path: [digest]))
        let tail = Array(frame.encoded().dropFirst(frame.envelope.encoded().count))
        let sizes = table.cells("size").map(DocumentNumber.layout)
        #expect(sizes.map(\.fixed) == [25, 4, 2, 0])
        #expect(tail.count == 25 + 4 + 2 + 32)
        #expect(Array(tail[25..<29]) == be(2, 4), "the index")
        #expect(Array(tail[29..<31]) == be(1, 2), "the path's length")
        #expect(Array(tail[31...]) == digest.bytes, "the path")
    }

    // MARK: - Limits and errors

    @Test func limitsTableGivesTheDefaults() throws {
        let table = try #require(try Document(Self.wirePage).table(under: "Limits"))
        let limits = WireLimits.default
        let expected: [String: Int] = [
            "frameBytesMax": limits.frameBytesMax, "operationBytesMax": limits.operationBytesMax, "resultBytesMax": limits.resultBytesMax,
            "batchRequestsMax": limits.batchRequestsMax, "replicasMax": limits.replicasMax, "logWindowMax": limits.logWindowMax,
            "stateChunkBytesMax": limits.stateChunkBytesMax, "stateBytesMax": Int(limits.stateBytesMax), "hostBytesMax": limits.hostBytesMax,
            "controlBytesMax": limits.controlBytesMax, "clientsMax": limits.clientsMax,
        ]
        let documented = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[0].replacingOccurrences(of: "`", with: ""), DocumentNumber.exact($0[1])) })
        #expect(Set(documented.keys) == Set(expected.keys), "every WireLimits field has a row")
        for (name, value) in expected { #expect(documented[name] == value, "\(name)") }
    }

    @Test func errorTablesNameEveryError() throws {
        let page = try Document(Self.wirePage)
        // One of each case; the switch fails to compile when a case is added.
        let errors: [WireError] = [
            .truncated(field: "", needed: 0, available: 0), .limitExceeded(field: "", value: 0, limit: 0), .unsupportedVersion(0),
            .unknownMessageType(0), .unknownPrincipalKind(0), .unknownReconfigurationKind(0),
            .senderNotAllowed(type: .request, sender: .operator), .unexpectedNestedType(field: "", expected: .request, found: .request),
            .invalidValue(field: "", reason: ""), .trailingBytes(count: 0),
        ]
        func name(_ error: WireError) -> String {
            switch error {
            case .truncated: "truncated"
            case .limitExceeded: "limitExceeded"
            case .unsupportedVersion: "unsupportedVersion"
            case .unknownMessageType: "unknownMessageType"
            case .unknownPrincipalKind: "unknownPrincipalKind"
            case .unknownReconfigurationKind: "unknownReconfigurationKind"
            case .senderNotAllowed: "senderNotAllowed"
            case .unexpectedNestedType: "unexpectedNestedType"
            case .invalidValue: "invalidValue"
            case .trailingBytes: "trailingBytes"
            }
        }
        func names(_ table: DocumentTable) -> [String] {
            table.rows.map { String($0[0].replacingOccurrences(of: "`", with: "").prefix { $0 != "(" }) }
        }
        #expect(names(try #require(page.table(under: "Errors"))) == errors.map(name))
        let rejections: [Rejection] = [.malformed(.trailingBytes(count: 0)), .unknownSigner(.operator, Epoch(0)), .badSignature(.operator, field: "")]
        func name(_ rejection: Rejection) -> String {
            switch rejection {
            case .malformed: "malformed"
            case .unknownSigner: "unknownSigner"
            case .badSignature: "badSignature"
            }
        }
        #expect(names(try #require(page.table(under: "What the authenticator verifies"))) == rejections.map(name))
        #expect(page.text.contains("the version byte is not \(wireVersion)"))
    }

    // MARK: - The datagram layer

    @Test func datagramTablesGiveTheKindsAndTheFragmentHeader() throws {
        let page = try Document(Self.transportPage)
        let whole = try #require(page.table(under: "The datagram format", index: 0))
        try checkLayout(whole, of: DatagramCodec.datagrams(for: [], messageID: 1)[0], fixedBytes: 1, fields: [("kind", [DatagramKind.whole.rawValue])])
        #expect(whole.rows[0][3] == "`0x50`" && DatagramKind.whole.rawValue == 0x50)

        let frame = [UInt8](repeating: 7, count: 100)
        let fragments = DatagramCodec.datagrams(for: frame, messageID: 0x0102_0304_0506_0708, datagramBytesMax: 80)
        let last = try #require(fragments.last)
        let fragment = try #require(page.table(under: "The datagram format", index: 1))
        try checkLayout(fragment, of: last, fixedBytes: FragmentHeader.byteCount, fields: [
            ("kind", [DatagramKind.fragment.rawValue]),
            ("message ID", be(0x0102_0304_0506_0708, 8)),
            ("fragment index", be(UInt64(fragments.count - 1), 2)),
            ("fragment count", be(UInt64(fragments.count), 2)),
            ("total length", be(100, 4)),
        ])
        let countRow = try #require(fragment.rows.first { $0[2] == "fragment count" })
        #expect(DocumentNumber.integers(in: countRow[3]).last == DatagramCodec.fragmentsMax)

        let bundle = try #require(page.table(under: "The datagram format", index: 2))
        let frames = [[UInt8](repeating: 1, count: 64), [UInt8](repeating: 2, count: 70)]
        let bundled = DatagramCodec.datagrams(bundling: frames, messageID: { 1 })
        #expect(bundled.count == 1)
        // The kind and, for the two frames a bundle holds at least, two lengths.
        try checkLayout(bundle, of: bundled[0], fixedBytes: 1 + 4 + 4, fields: [("kind", [DatagramKind.bundle.rawValue]), ("length", be(64, 4))])
        let lengthRow = try #require(bundle.rows.first { $0[2].hasPrefix("length") })
        #expect(DocumentNumber.integers(in: lengthRow[3]).first == DatagramCodec.bundledFrameBytesMin)
    }

    @Test func transportConstantsAreTheCodes() throws {
        let table = try #require(try Document(Self.transportPage).table(under: "Constants"))
        let expected: [String: Int] = [
            "DatagramKind.whole": Int(DatagramKind.whole.rawValue), "DatagramKind.fragment": Int(DatagramKind.fragment.rawValue),
            "DatagramKind.bundle": Int(DatagramKind.bundle.rawValue), "FragmentHeader.byteCount": FragmentHeader.byteCount,
            "DatagramCodec.fragmentsMax": DatagramCodec.fragmentsMax, "DatagramCodec.bundledFrameBytesMin": DatagramCodec.bundledFrameBytesMin,
            "DatagramCodec.udpPayloadBytesMax": DatagramCodec.udpPayloadBytesMax, "DatagramCodec.datagramBytesDefault": DatagramCodec.datagramBytesDefault,
            "Reassembler.retiredPerSenderMax": Reassembler.retiredPerSenderMax,
        ]
        let documented = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[0].replacingOccurrences(of: "`", with: ""), DocumentNumber.exact($0[1])) })
        #expect(Set(documented.keys) == Set(expected.keys))
        for (name, value) in expected { #expect(documented[name] == value, "\(name)") }
    }

    @Test func splitExamplesAreWhatTheSenderDoes() throws {
        let table = try #require(try Document(Self.transportPage).table(under: "The split rule"))
        #expect(!table.rows.isEmpty)
        for row in table.rows {
            let numbers = row.map { DocumentNumber.exact($0) ?? -1 }
            let (total, datagramBytesMax) = (numbers[0], numbers[1])
            let layout = FragmentLayout(splitting: total, datagramBytesMax: datagramBytesMax)
            let last = layout.byteRange(ofFragment: layout.count - 1).count
            #expect(Array(numbers[2...]) == [datagramBytesMax - FragmentHeader.byteCount, layout.count, layout.pieceBytes, last], "\(row)")
            #expect(DatagramCodec.datagrams(for: [UInt8](repeating: 0, count: total), messageID: 1, datagramBytesMax: datagramBytesMax).count == layout.count)
        }
    }

    @Test func reassemblyLimitsTableGivesTheDefaults() throws {
        let page = try Document(Self.transportPage)
        let table = try #require(page.table(under: "Limits"))
        let limits = ReassemblyLimits.default
        let expected: [String: Int] = [
            "bytesPerSenderMax": limits.bytesPerSenderMax, "messagesPerSenderMax": limits.messagesPerSenderMax,
            "sendersMax": limits.sendersMax, "timeoutTicks": Int(limits.timeoutTicks), "frameBytesMax": limits.frameBytesMax,
        ]
        let documented = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[0].replacingOccurrences(of: "`", with: ""), DocumentNumber.integers(in: $0[1]).last) })
        #expect(Set(documented.keys) == Set(expected.keys))
        for (name, value) in expected { #expect(documented[name] == value, "\(name)") }
        // Clients and pbft ctl use the defaults (docs/transport.md, "In the processes").
        let processes = try #require(page.table(under: "In the processes"))
        for row in processes.rows where row[0].hasPrefix("client") || row[0].hasPrefix("`pbft ctl`") {
            #expect(DocumentNumber.exact(row[2]) == limits.sendersMax, "\(row[0])")
            #expect(DocumentNumber.exact(row[3]) == Int(limits.timeoutTicks), "\(row[0])")
        }
        #expect(page.text.contains("frameBytesMax ≤ \(DatagramCodec.fragmentsMax) × \(formatted(DatagramCodec.udpPayloadBytesMax - FragmentHeader.byteCount))`"))
    }

    @Test func everyDropReasonIsNamedInTheTransportPage() throws {
        let page = try Document(Self.transportPage)
        for reason in DatagramDropReason.allCases {
            #expect(page.text.contains("`\(reason.name)`"), "\(reason)")
        }
    }

    // MARK: - Helpers

    /// Checks a layout table (columns `offset` if present, and `size`) against `bytes`:
    /// offsets are the running sum of the fixed sizes until the first variable one, the
    /// fixed sizes add up to `fixedBytes`, and each field named in `fields` (matched by the
    /// row whose field cell is the key, else the first that contains it) holds those bytes
    /// at its offset. Every
    /// row of a fixed size and offset must be named.
    func checkLayout(
        _ table: DocumentTable, of bytes: [UInt8], fixedBytes: Int, fields: [(String, [UInt8])], context: String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let sizes = table.cells("size").map(DocumentNumber.layout)
        let offsets = table.column("offset").map { _ in table.cells("offset").map(DocumentNumber.layout) }
        let fieldColumn = try #require(table.column("field"), "\(context): no field column", sourceLocation: sourceLocation)
        #expect(sizes.reduce(0) { $0 + $1.fixed } == fixedBytes, "\(context): fixed bytes", sourceLocation: sourceLocation)
        var expectedOffset: Int? = 0
        var named = Set<Int>()
        for (key, value) in fields {
            guard let row = table.rows.firstIndex(where: { $0[fieldColumn] == key }) ?? table.rows.firstIndex(where: { $0[fieldColumn].contains(key) }) else {
                Issue.record("\(context): no row for \(key)", sourceLocation: sourceLocation)
                continue
            }
            named.insert(row)
            guard let offset = offsets?[row], !offset.variable else {
                Issue.record("\(context): \(key) has no fixed offset", sourceLocation: sourceLocation)
                continue
            }
            #expect(value.count <= sizes[row].fixed, "\(context): \(key) is \(sizes[row].fixed) bytes", sourceLocation: sourceLocation)
            let end = offset.fixed + value.count
            #expect(end <= bytes.count && Array(bytes[offset.fixed..<min(end, bytes.count)]) == value, "\(context): \(key) at offset \(offset.fixed)", sourceLocation: sourceLocation)
        }
        for (row, size) in sizes.enumerated() {
            if let offsets {
                if let expected = expectedOffset, !offsets[row].variable {
                    #expect(offsets[row].fixed == expected, "\(context): offset of \(table.rows[row][fieldColumn])", sourceLocation: sourceLocation)
                }
                if !offsets[row].variable, !size.variable {
                    #expect(named.contains(row), "\(context): \(table.rows[row][fieldColumn]) is not checked", sourceLocation: sourceLocation)
                }
            }
            expectedOffset = size.variable ? nil : expectedOffset.map { $0 + size.fixed }
        }
    }

    func be(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
    }

    func formatted(_ value: Int) -> String {
        var digits = String(value)
        var groups: [String] = []
        while digits.count > 3 {
            groups.insert(String(digits.suffix(3)), at: 0)
            digits.removeLast(3)
        }
        return ([digits] + groups).joined(separator: ",")
    }

    func host(_ length: Int) -> String { String(repeating: "a", count: length) }

    func sender(of type: MessageType) -> Principal {
        switch type {
        case .request: .client(ClientID(1))
        case .reconfiguration, .control: .operator
        default: .replica(ReplicaID(0))
        }
    }

    /// The payload the encoder writes for `message`.
    func payload(_ message: Message) -> [UInt8] {
        let bytes = Envelope(sender: sender(of: message.type), epoch: Epoch(0), message: message, signature: .zero).encoded()
        return Array(bytes[envelopeHeaderBytes..<(bytes.count - Signature.byteCount)])
    }

    /// A message of `type` with every variable part empty.
    func smallest(_ type: MessageType) -> Message {
        let vote = Vote(view: ViewNumber(0), sequence: SequenceNumber(0), batchDigest: .zero)
        return switch type {
        case .request: .request(Request(timestamp: Timestamp(0), operation: []))
        case .reconfiguration: .reconfiguration(Reconfiguration(timestamp: Timestamp(0), change: .setFaultTolerance(1)))
        case .prePrepare: .prePrepare(PrePrepare(view: ViewNumber(0), sequence: SequenceNumber(0), batchDigest: .zero))
        case .prepare: .prepare(vote)
        case .commit: .commit(vote)
        case .reply: .reply(ReplyRoot(root: .zero, leaves: 1))
        case .checkpoint: .checkpoint(Checkpoint(sequence: SequenceNumber(0), stateDigest: .zero))
        case .viewChange: .viewChange(ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(0), checkpointProof: [], prepared: []))
        case .newView: .newView(NewView(view: ViewNumber(1), viewChanges: [], prePrepares: []))
        case .stateRequest: .stateRequest(StateRequest(sequence: SequenceNumber(0), stateDigest: .zero, chunkIndex: 0))
        case .stateChunk: .stateChunk(StateChunk(sequence: SequenceNumber(0), stateDigest: .zero, chunkIndex: 0, chunkCount: 1, totalBytes: 0, bytes: []))
        case .status: .status(Status(view: ViewNumber(0), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0)))
        case .control: .control(Control(timestamp: Timestamp(0), target: .replica(ReplicaID(0)), command: .status))
        case .controlReply: .controlReply(ControlReply(timestamp: Timestamp(0), outcome: .done, epoch: Epoch(0), body: []))
        case .epochAnnouncement: announcement(replicaHosts: [], clients: 0)
        }
    }

    /// Every kind of reconfiguration, with the shortest and the longest host.
    func reconfigurations() -> [Message] {
        let hosts = [host(1), host(WireLimits.default.hostBytesMax)]
        let changes: [ReconfigurationChange] =
            hosts.map { .addReplica(ReplicaDescriptor(id: ReplicaID(4), host: $0, port: 7000, publicKey: key)) }
            + [.removeReplica(ReplicaID(3))]
            + hosts.map { .replaceReplica(old: ReplicaID(3), new: ReplicaDescriptor(id: ReplicaID(4), host: $0, port: 7000, publicKey: key)) }
            + [.setFaultTolerance(2)]
        return changes.map { .reconfiguration(Reconfiguration(timestamp: Timestamp(1), change: $0)) }
    }

    func announcement(replicaHosts: [String], clients: Int) -> Message {
        let replicas = replicaHosts.enumerated().map { ReplicaDescriptor(id: ReplicaID(UInt32($0.offset)), host: $0.element, port: 7000, publicKey: key) }
        let clientKeys = (0..<clients).map { ClientKey(id: ClientID(UInt32($0)), publicKey: key) }
        let record = ConfigurationRecord(epoch: Epoch(5), f: 1, replicas: replicas, clients: clientKeys, operatorKey: key)
        return .epochAnnouncement(EpochAnnouncement(configuration: record, firstSequence: SequenceNumber(97)))
    }
}

extension DatagramDropReason {
    /// The case's name as the code spells it (`malformedHeader`), which the page uses.
    var name: String {
        switch self {
        case .empty: "empty"
        case .unknownKind: "unknownKind"
        case .malformedHeader: "malformedHeader"
        case .tooLarge: "tooLarge"
        case .inconsistentFragment: "inconsistentFragment"
        case .duplicateFragment: "duplicateFragment"
        case .bufferFull: "bufferFull"
        case .expired: "expired"
        case .malformedBundle: "malformedBundle"
        }
    }
}
