import PBFTWire

/// Junk datagrams for `ByzantineBehaviour.garbageFlood`, in the datagram format of
/// PBFTWire/Fragmentation.swift (docs/transport.md): a kind byte, `'P'` before one whole
/// frame, `'F'` before a fragment header and a piece of a frame, or `'B'` before a bundle
/// of frames each after its length.
///
/// Each datagram is one of these, drawn at random, so every layer of a receiver gets its
/// share: the datagram layer, the reassembler, the frame decoder, the signature check, and
/// (for the last kind) the core's own guards.
public enum GarbageKind: CaseIterable, Sendable {
    /// Random bytes of random length, possibly none.
    case randomBytes
    /// `'P'`, then random bytes.
    case wholeRandomFrame
    /// `'F'`, a header with random fields, random bytes.
    case randomFragmentHeader
    /// A fragment whose header a sender could have written (2 to 4 pieces), over random
    /// content: the reassembler buffers it until it expires or is pushed out.
    case plausibleFragment
    /// Every fragment of a random frame: the reassembler completes it, the decoder refuses it.
    case completeRandomFragments
    /// `'P'`, an envelope header a sender could have written (its own id, the epoch, a valid
    /// type), a random payload and a random signature.
    case randomPayload
    /// `'P'`, one of its own frames cut short.
    case truncatedFrame
    /// `'P'`, one of its own frames with a few bits flipped.
    case flippedFrame
    /// `'B'`, two or three of its own frames, each cut short (often below a bundle's shortest
    /// frame) or with bits flipped; in some, a length that runs past the end (the whole
    /// bundle is dropped).
    case mangledBundle
    /// `'P'`, a message with random (often extreme) field values that it signs as itself:
    /// it authenticates, so the core must refuse it on its merits.
    case signedNonsense
}

/// Makes junk datagrams; see `GarbageKind` for what each holds.
struct GarbageMaker {
    static let wholeKind = DatagramKind.whole.rawValue
    static let fragmentKind = DatagramKind.fragment.rawValue
    /// Random runs of bytes stay small: the flood is many datagrams, not large ones.
    static let randomBytesMax = 256
    /// Own frames it mangles are at most this large: a view-change with its proofs is left
    /// out, since the flood is many small datagrams.
    static let ownFrameBytesMax = 1_400

    let signer: any MessageSigner
    let epoch: Epoch

    /// `budget` datagrams; a set of fragments that does not fit is cut short.
    func burst(budget: Int, ownFrames: [[UInt8]], rng: inout SplitMix64) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        while datagrams.count < budget {
            let made = datagram(GarbageKind.allCases.randomElement(using: &rng)!, ownFrames: ownFrames, rng: &rng)
            datagrams += made.prefix(budget - datagrams.count)
        }
        return datagrams
    }

    func datagram(_ kind: GarbageKind, ownFrames: [[UInt8]], rng: inout SplitMix64) -> [[UInt8]] {
        switch kind {
        case .randomBytes:
            return [randomBytes(0...Self.randomBytesMax, &rng)]
        case .wholeRandomFrame:
            return [[Self.wholeKind] + randomBytes(0...Self.randomBytesMax, &rng)]
        case .randomFragmentHeader:
            return [[Self.fragmentKind] + randomBytes(0...Self.randomBytesMax, &rng)]
        case .plausibleFragment:
            let fragments = randomFragments(&rng)
            return [fragments.randomElement(using: &rng)!]
        case .completeRandomFragments:
            return randomFragments(&rng)
        case .randomPayload:
            return [[Self.wholeKind] + randomPayloadEnvelope(&rng)]
        case .truncatedFrame:
            let frame = ownFrame(ownFrames, &rng)
            return [[Self.wholeKind] + Array(frame.prefix(Int.random(in: 0..<frame.count, using: &rng)))]
        case .flippedFrame:
            return [[Self.wholeKind] + flipped(ownFrame(ownFrames, &rng), &rng)]
        case .mangledBundle:
            let frames = (0..<Int.random(in: 2...3, using: &rng)).map { _ in
                let frame = ownFrame(ownFrames, &rng)
                return rng.chance(0.5) ? Array(frame.prefix(Int.random(in: 0..<frame.count, using: &rng))) : flipped(frame, &rng)
            }
            // Written by hand: the codec would send a frame cut too short for a bundle whole.
            var bundle: [UInt8] = [DatagramKind.bundle.rawValue]
            for frame in frames {
                append(UInt64(frame.count), width: 4, to: &bundle)
                bundle += frame
            }
            if rng.chance(0.3) { bundle[1] ^= 0x10 }
            return [bundle]
        case .signedNonsense:
            return [[Self.wholeKind] + Frame(envelope: Envelope.seal(nonsense(&rng), epoch: epoch, signer: signer)).encoded()]
        }
    }

    /// `frame` with one to three bits flipped.
    private func flipped(_ frame: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var frame = frame
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            frame[Int.random(in: 0..<frame.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
        }
        return frame
    }

    /// The fragments of a random frame of 2 to 4 pieces, as a sender's `DatagramCodec` splits
    /// one with small datagrams.
    private func randomFragments(_ rng: inout SplitMix64) -> [[UInt8]] {
        let pieceBytes = Int.random(in: 17...64, using: &rng)
        let frame = randomBytes((2 * pieceBytes)...(4 * pieceBytes), &rng)
        return DatagramCodec.datagrams(for: frame, messageID: rng.next(), datagramBytesMax: FragmentHeader.byteCount + pieceBytes)
    }

    /// An envelope header as `Envelope.signedBytes` writes it (version, type, sender kind and
    /// id, epoch, payload length), then a random payload, then 64 random signature bytes.
    /// The length is usually the payload's, sometimes not.
    private func randomPayloadEnvelope(_ rng: inout SplitMix64) -> [UInt8] {
        let payload = randomBytes(0...128, &rng)
        var bytes: [UInt8] = [wireVersion, MessageType.allCases.randomElement(using: &rng)!.rawValue]
        switch signer.principal {
        case .replica(let id): bytes.append(0); append(UInt64(id.rawValue), width: 4, to: &bytes)
        case .client(let id): bytes.append(1); append(UInt64(id.rawValue), width: 4, to: &bytes)
        case .operator: bytes.append(2); append(0, width: 4, to: &bytes)
        }
        append(epoch.rawValue, width: 8, to: &bytes)
        let length = rng.chance(0.8) ? UInt64(payload.count) : rng.next() & 0xFFFF_FFFF
        append(length, width: 4, to: &bytes)
        return bytes + payload + randomBytes(Signature.byteCount...Signature.byteCount, &rng)
    }

    /// One of the replica's own frames, or (before it sent any) a signed status.
    private func ownFrame(_ frames: [[UInt8]], _ rng: inout SplitMix64) -> [UInt8] {
        if let frame = frames.randomElement(using: &rng) { return frame }
        let status = Status(view: ViewNumber(0), stableSequence: SequenceNumber(0), lastExecuted: SequenceNumber(0))
        return Frame(envelope: Envelope.seal(.status(status), epoch: epoch, signer: signer)).encoded()
    }

    /// A message with field values from `wild`, of a type a replica sends.
    private func nonsense(_ rng: inout SplitMix64) -> Message {
        let view = ViewNumber(wild(&rng))
        let sequence = SequenceNumber(wild(&rng))
        let digest = Digest(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next())
        switch Int.random(in: 0..<9, using: &rng) {
        case 0: return .prePrepare(PrePrepare(view: view, sequence: sequence, batchDigest: digest))
        case 1: return .prepare(Vote(view: view, sequence: sequence, batchDigest: digest))
        case 2: return .commit(Vote(view: view, sequence: sequence, batchDigest: digest))
        case 3: return .checkpoint(Checkpoint(sequence: sequence, stateDigest: digest))
        case 4: return .status(Status(view: view, stableSequence: sequence, lastExecuted: SequenceNumber(wild(&rng)), viewChanging: Bool.random(using: &rng)))
        case 5: return .stateRequest(StateRequest(sequence: sequence, stateDigest: digest, chunkIndex: UInt32(truncatingIfNeeded: wild(&rng))))
        case 6:
            return .stateChunk(StateChunk(
                sequence: sequence, stateDigest: digest, chunkIndex: UInt32(truncatingIfNeeded: wild(&rng)),
                chunkCount: UInt32(truncatingIfNeeded: wild(&rng)), totalBytes: wild(&rng), bytes: randomBytes(0...64, &rng)))
        case 7: return .viewChange(ViewChange(newView: view, stableSequence: sequence, checkpointProof: [], prepared: []))
        default: return .newView(NewView(view: view, viewChanges: [], prePrepares: []))
        }
    }

    /// A number that is small, or near the top of its range, or anything: where off-by-one
    /// and overflow bugs live.
    private func wild(_ rng: inout SplitMix64) -> UInt64 {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: UInt64.random(in: 0...64, using: &rng)
        case 1: UInt64.random(in: 0...10_000, using: &rng)
        case 2: UInt64.max - UInt64.random(in: 0...2, using: &rng)
        default: rng.next()
        }
    }

    private func randomBytes(_ count: ClosedRange<Int>, _ rng: inout SplitMix64) -> [UInt8] {
        let count = Int.random(in: count, using: &rng)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            withUnsafeBytes(of: rng.next().littleEndian) { bytes.append(contentsOf: $0) }
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    private func append(_ value: UInt64, width: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }
}
