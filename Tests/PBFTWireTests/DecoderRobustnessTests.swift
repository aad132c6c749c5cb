import PBFTTestSupport
import PBFTWire
import Testing

/// Whatever the bytes, `Frame.decode` and `Envelope.decode` return a value or throw a
/// `WireError` (typed throws make any other outcome a crash), and a value they return
/// re-encodes to exactly the input: the encoding is canonical.
///
/// 7 strategies x 30,000 inputs = 210,000 inputs, each given to both decoders. A failure
/// names the strategy and seed; `MessageGenerator` and `SplitMix64` replay it exactly.
@Suite struct DecoderRobustnessTests {
    static let inputsPerStrategy = 30_000

    enum Strategy: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Uniformly random bytes of random length: almost all fail in the header.
        case randomBytes
        /// A well-formed header (version, a real type, an allowed sender) over a random
        /// payload, so the message decoders see garbage.
        case randomPayloads
        /// Every prefix of short encodings, random prefixes of long ones.
        case truncations
        /// One bit, or two to eight bits, flipped.
        case bitFlips
        /// 2, 4 or 8 bytes overwritten with 0xFFFFFFFF, 0xFFFF, 0, off-by-one values, ...
        /// at the payload length or anywhere (hitting lengths and counts).
        case overwrites
        /// Random bytes inserted, a range deleted, or a range duplicated.
        case insertionsAndDeletions
        /// The head of one encoding joined to the tail of another.
        case splices

        var description: String { rawValue }
        var seed: UInt64 { UInt64(Self.allCases.firstIndex(of: self)!) &* 0x1000_0000 }
    }

    @Test(arguments: Strategy.allCases)
    func decodersNeverTrapAndAcceptOnlyCanonicalBytes(_ strategy: Strategy) {
        var fuzzer = Fuzzer(seed: strategy.seed)
        var tally = Tally()
        while tally.inputs < Self.inputsPerStrategy {
            for input in fuzzer.inputs(strategy) {
                tally.decode(input, context: "\(strategy), base seed \(fuzzer.baseSeed)")
            }
        }
        #expect(tally.inputs >= Self.inputsPerStrategy)
        switch strategy {
        case .truncations:
            // A strict prefix is never a frame. (It may be an envelope: a pre-prepare
            // frame's envelope is a prefix of the frame.)
            #expect(tally.frame.accepted == 0)
            #expect(tally.frame.count(.truncated) == tally.inputs)
        case .randomBytes:
            #expect(tally.count(.unsupportedVersion) > 0)
        case .randomPayloads:
            for kind in [ErrorKind.truncated, .limitExceeded, .trailingBytes, .unknownPrincipalKind, .unknownReconfigurationKind, .invalidValue] {
                #expect(tally.count(kind) > 0, "\(kind) never seen")
            }
        case .bitFlips, .overwrites:
            // Flips in digests and signatures still decode; others break the structure.
            #expect(tally.accepted > 0)
            for kind in [ErrorKind.truncated, .limitExceeded, .unknownMessageType, .senderNotAllowed, .unexpectedNestedType, .invalidValue] {
                #expect(tally.count(kind) > 0, "\(kind) never seen")
            }
        case .insertionsAndDeletions, .splices:
            #expect(tally.count(.truncated) > 0)
            #expect(tally.count(.trailingBytes) > 0)
        }
    }
}

/// Makes the inputs of each strategy from random frames of every type.
struct Fuzzer {
    var rng: SplitMix64
    private(set) var baseSeed: UInt64 = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// A valid encoding of a random frame (half the time, of its envelope alone).
    mutating func base() -> [UInt8] {
        baseSeed = rng.next()
        var generator = MessageGenerator(seed: baseSeed, scale: .small)
        let frame = generator.frame(MessageType.allCases.randomElement(using: &generator.rng)!)
        return generator.rng.chance(1, in: 2) ? frame.encoded() : frame.envelope.encoded()
    }

    /// A batch of inputs; several share one base so the cost of generating it is spread.
    mutating func inputs(_ strategy: DecoderRobustnessTests.Strategy) -> [[UInt8]] {
        switch strategy {
        case .randomBytes:
            return (0..<64).map { _ in rng.bytes(rng.length(upTo: 512, typical: 96)) }
        case .randomPayloads:
            return (0..<64).map { _ in randomPayload() }
        case .truncations:
            let bytes = base()
            if bytes.count <= 600 { return (0..<bytes.count).map { Array(bytes[..<$0]) } }
            return (0..<200).map { _ in Array(bytes[..<Int.random(in: 0..<bytes.count, using: &rng)]) }
        case .bitFlips:
            let bytes = base()
            return (0..<32).map { _ in flipBits(bytes) }
        case .overwrites:
            let bytes = base()
            return (0..<32).map { _ in overwrite(bytes) }
        case .insertionsAndDeletions:
            let bytes = base()
            return (0..<32).map { _ in insertOrDelete(bytes) }
        case .splices:
            let a = base(), b = base()
            return (0..<32).map { _ in splice(a, b) }
        }
    }

    private mutating func randomPayload() -> [UInt8] {
        let type = MessageType.allCases.randomElement(using: &rng)!
        let kind: UInt8 =
            switch type {
            case .request: 1
            case .reconfiguration: 2
            default: 0
            }
        if type == .reply, rng.chance(1, in: 2) {
            // A root that decodes, then random bytes where its frame's reply and path go.
            var root = WireBytes()
            root.raw(rng.bytes(32))
            root.u32(UInt32.random(in: 1...UInt32(WireLimits.default.batchRequestsMax), using: &rng))
            return WireBytes.envelope(type: type.rawValue, senderID: rng.edgy32(), epoch: rng.edgy64(), payload: root.bytes)
                + rng.bytes(rng.length(upTo: 200, typical: 40))
        }
        let payload = rng.bytes(rng.length(upTo: 400, typical: 80))
        var length = UInt32(payload.count)
        if rng.chance(1, in: 8) { length = UInt32.random(in: 0...UInt32(payload.count + 64), using: &rng) }
        return WireBytes.envelope(type: type.rawValue, senderKind: kind, senderID: kind == 2 ? 0 : rng.edgy32(), epoch: rng.edgy64(), payloadLength: length, payload: payload)
    }

    private mutating func flipBits(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        guard !out.isEmpty else { return out }
        let flips = rng.chance(1, in: 2) ? 1 : Int.random(in: 2...8, using: &rng)
        for _ in 0..<flips {
            let bit = Int.random(in: 0..<(out.count * 8), using: &rng)
            out[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        return out
    }

    private mutating func overwrite(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        let width = [2, 4, 4, 8].randomElement(using: &rng)!
        guard out.count >= width else { return out }
        let offset =
            rng.chance(1, in: 8) && out.count >= HeaderOffset.payload
            ? HeaderOffset.payloadLength + 4 - width
            : Int.random(in: 0...(out.count - width), using: &rng)
        let old = out[offset..<(offset + width)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let value: UInt64 =
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: 0xFFFF_FFFF
            case 1: 0xFFFF
            case 2: 0
            case 3: 0x8000_0000
            case 4: old &+ 1
            case 5: old &- 1
            case 6: UInt64.max
            default: rng.next()
            }
        WireBytes.overwrite(&out, at: offset, with: value, width: width)
        return out
    }

    private mutating func insertOrDelete(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        let at = Int.random(in: 0...out.count, using: &rng)
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            out.insert(contentsOf: rng.bytes(Int.random(in: 1...16, using: &rng)), at: at)
        case 1:
            let end = min(out.count, at + Int.random(in: 1...16, using: &rng))
            out.removeSubrange(at..<end)
        default:
            let end = min(out.count, at + Int.random(in: 1...64, using: &rng))
            out.insert(contentsOf: out[at..<end], at: at)
        }
        return out
    }

    /// Half the time both cut at the same offset, so the halves often line up field by field.
    private mutating func splice(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        let cutA = Int.random(in: 0...a.count, using: &rng)
        let cutB = rng.chance(1, in: 2) ? min(cutA, b.count) : Int.random(in: 0...b.count, using: &rng)
        return Array(a[..<cutA]) + Array(b[cutB...])
    }
}

enum ErrorKind: Int, CaseIterable {
    case truncated, limitExceeded, unsupportedVersion, unknownMessageType, unknownPrincipalKind
    case unknownReconfigurationKind, senderNotAllowed, unexpectedNestedType, invalidValue, trailingBytes

    init(_ error: WireError) {
        self =
            switch error {
            case .truncated: .truncated
            case .limitExceeded: .limitExceeded
            case .unsupportedVersion: .unsupportedVersion
            case .unknownMessageType: .unknownMessageType
            case .unknownPrincipalKind: .unknownPrincipalKind
            case .unknownReconfigurationKind: .unknownReconfigurationKind
            case .senderNotAllowed: .senderNotAllowed
            case .unexpectedNestedType: .unexpectedNestedType
            case .invalidValue: .invalidValue
            case .trailingBytes: .trailingBytes
            }
    }
}

/// What one decoder said about the inputs.
struct Outcomes {
    private(set) var accepted = 0
    private var errors = [Int](repeating: 0, count: ErrorKind.allCases.count)

    func count(_ kind: ErrorKind) -> Int { errors[kind.rawValue] }
    mutating func accept() { accepted += 1 }
    mutating func reject(_ error: WireError) { errors[ErrorKind(error).rawValue] += 1 }
}

/// Runs both decoders on each input and counts what they said.
struct Tally {
    private(set) var inputs = 0
    private(set) var frame = Outcomes()
    private(set) var envelope = Outcomes()

    var accepted: Int { frame.accepted + envelope.accepted }
    func count(_ kind: ErrorKind) -> Int { frame.count(kind) + envelope.count(kind) }

    mutating func decode(_ input: [UInt8], context: @autoclosure () -> String) {
        inputs += 1
        do {
            let decoded = try Frame.decode(input)
            frame.accept()
            if decoded.withoutKeptBytes.encoded() != input { Issue.record("frame decoded from non-canonical bytes (\(context())): \(Hex.encode(input))") }
        } catch {
            frame.reject(error)
        }
        do {
            let decoded = try Envelope.decode(input)
            envelope.accept()
            if decoded.withoutKeptBytes.encoded() != input { Issue.record("envelope decoded from non-canonical bytes (\(context())): \(Hex.encode(input))") }
        } catch {
            envelope.reject(error)
        }
    }
}
