import PBFTTestSupport
import PBFTRuntime
import PBFTWire
import Testing

/// Splitting frames into datagrams and reassembling them, including from hostile senders.
/// Every random test is seeded (`FragmentationRNG`) and names its seed.
struct FragmentationTests {
    static let capacity = DatagramCodec.datagramBytesDefault - 1
    static let piece = DatagramCodec.datagramBytesDefault - FragmentHeader.byteCount

    // MARK: - The datagram format

    @Test func wholeFrameIsKindThenBytes() {
        #expect(DatagramCodec.datagrams(for: [], messageID: 9) == [[0x50]])
        #expect(DatagramCodec.datagrams(for: [1, 2, 3], messageID: 9) == [[0x50, 1, 2, 3]])
    }

    @Test func fragmentHeaderIsBigEndian() {
        let header = FragmentHeader(messageID: 0x0102_0304_0506_0708, index: 0x090A, count: 0x0B0C, totalBytes: 0x0D0E_0F10)
        #expect(header.bytes == [0x46, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
        #expect(FragmentHeader(decoding: header.bytes + [0xFF]) == header)
        #expect(FragmentHeader(decoding: Array(header.bytes.dropLast())) == nil)
        #expect(FragmentHeader(decoding: [0x50] + header.bytes.dropFirst()) == nil)
    }

    /// A frame one byte too large for a whole datagram is split in two, spread evenly.
    @Test func datagramsOfTheSizesAtTheEdge() throws {
        let frame = testFrame(bytes: Self.capacity + 1, seed: 1)
        let datagrams = DatagramCodec.datagrams(for: frame, messageID: 0xABCD)
        #expect(datagrams.count == 2)
        #expect(datagrams.map(\.count) == [17 + 30_000, 17 + 30_000])
        let header = try #require(FragmentHeader(decoding: datagrams[1]))
        #expect(header == FragmentHeader(messageID: 0xABCD, index: 1, count: 2, totalBytes: 60_000))
        #expect(DatagramCodec.datagrams(for: testFrame(bytes: Self.capacity, seed: 1), messageID: 1).map(\.count) == [60_000])
    }

    // MARK: - Bundles

    @Test func aBundleIsKindThenEachFrameAfterItsLength() {
        let a = [UInt8](repeating: 1, count: 64), b = [UInt8](repeating: 2, count: 65)
        var ids: UInt64 = 0
        let datagrams = DatagramCodec.datagrams(bundling: [a, b], messageID: { ids += 1; return ids })
        #expect(datagrams == [[0x42, 0, 0, 0, 64] + a + [0, 0, 0, 65] + b])
        #expect(ids == 0, "no fragment, no message ID")
        // One frame alone goes whole, as it would without bundling; so does a frame too short
        // to be one, in its place.
        #expect(DatagramCodec.datagrams(bundling: [a], messageID: { 1 }) == [[0x50] + a])
        #expect(DatagramCodec.datagrams(bundling: [a, [7, 8], b, a], messageID: { 1 }) == [[0x50] + a, [0x50, 7, 8], [0x42, 0, 0, 0, 65] + b + [0, 0, 0, 64] + a])
        #expect(DatagramCodec.datagrams(bundling: [], messageID: { 1 }).isEmpty)
    }

    /// Frames of random sizes, some larger than a datagram: every datagram fits, frames keep
    /// their order, and each bundle holds as many as fit.
    @Test(arguments: [100, 1_000, 60_000])
    func bundlingKeepsOrderAndEveryDatagramFits(datagramBytesMax: Int) {
        let seed = UInt64(datagramBytesMax)
        var rng = FragmentationRNG(seed: seed)
        let frames = (0..<200).map { i in testFrame(bytes: Int(rng.next() % UInt64(datagramBytesMax / 2 + (i % 50 == 0 ? 3 * datagramBytesMax : 0))), seed: seed + UInt64(i)) }
        var ids: UInt64 = 0
        let datagrams = DatagramCodec.datagrams(bundling: frames, messageID: { ids += 1; return ids }, datagramBytesMax: datagramBytesMax)
        #expect(datagrams.allSatisfy { $0.count <= datagramBytesMax }, "seed \(seed)")
        #expect(datagrams.count < frames.count || datagramBytesMax < 2 * (4 + DatagramCodec.bundledFrameBytesMin) + 1, "small frames share datagrams")
        var reassembler = Reassembler()
        let received = datagrams.flatMap { reassembler.receive($0, from: SenderKey("10.0.0.1:7000"), now: 0).completed }
        #expect(received == frames, "seed \(seed)")
        // Greedy: of two bundles in a row, the second's first frame did not fit in the first.
        for (a, b) in zip(datagrams, datagrams.dropFirst()) where a.first == DatagramKind.bundle.rawValue && b.first == DatagramKind.bundle.rawValue {
            let first = Int(b[1]) << 24 | Int(b[2]) << 16 | Int(b[3]) << 8 | Int(b[4])
            #expect(a.count + 4 + first > datagramBytesMax, "seed \(seed)")
        }
        #expect(reassembler.counters.frames == frames.count)
    }

    @Test func malformedBundlesAreDroppedWhole() {
        var reassembler = Reassembler(limits: ReassemblyLimits(bytesPerSenderMax: 1 << 20, frameBytesMax: 100))
        let sender = SenderKey("h:9")
        let a = [UInt8](repeating: 1, count: 64), b = [UInt8](repeating: 2, count: 100)
        let good = DatagramCodec.datagrams(bundling: [a, b], messageID: { 1 })[0]
        #expect(reassembler.receive(good, from: sender, now: 0) == .frames([a, b]))
        let cases: [[UInt8]] = [
            [0x42],  // no frame
            [0x42, 0, 0, 0, 64] + a,  // one frame: a sender sends it whole
            good.dropLast(),  // the last length points past the end
            good + [0, 0],  // bytes after the last frame that are not a length
            [0x42, 0, 0, 0, 101] + [UInt8](repeating: 1, count: 101) + [0, 0, 0, 64] + a,  // a frame above frameBytesMax
            [0x42, 0, 0, 0, 63] + a.dropLast() + [0, 0, 0, 64] + a,  // a frame too short to be one
            [0x42, 0xFF, 0xFF, 0xFF, 0xFF] + a + [0, 0, 0, 64] + a,  // a length no datagram holds
        ]
        for datagram in cases {
            #expect(reassembler.receive(datagram, from: sender, now: 0) == .dropped(.malformedBundle), "\(datagram)")
        }
        #expect(reassembler.counters[.malformedBundle] == cases.count)
        #expect(reassembler.counters.frames == 2)
    }

    /// For small datagrams and every frame size up to `fragmentsMax` fragments: every
    /// datagram fits, the count is the least that fits, pieces are even, and the pieces in
    /// order are the frame.
    @Test(arguments: [18, 19, 20, 33, 100, 1_000])
    func datagramsCoverTheFrameExactly(datagramBytesMax: Int) throws {
        let capacity = datagramBytesMax - FragmentHeader.byteCount
        let largest = DatagramCodec.fragmentsMax * capacity
        let sizes = Array(0...min(largest, 300)) + [largest / 2, largest - 1, largest]
        let source = testFrame(bytes: largest, seed: UInt64(datagramBytesMax))
        for size in sizes {
            let frame = Array(source[0..<size])
            let datagrams = DatagramCodec.datagrams(for: frame, messageID: UInt64(size), datagramBytesMax: datagramBytesMax)
            #expect(datagrams.allSatisfy { $0.count <= datagramBytesMax })
            if size + 1 <= datagramBytesMax {
                #expect(datagrams == [[0x50] + frame])
                continue
            }
            let count = (size + capacity - 1) / capacity
            try #require(datagrams.count == count, "size \(size)")
            var joined = [UInt8]()
            for (index, datagram) in datagrams.enumerated() {
                let header = try #require(FragmentHeader(decoding: datagram))
                #expect(header == FragmentHeader(messageID: UInt64(size), index: UInt16(index), count: UInt16(count), totalBytes: UInt32(size)))
                joined += datagram.dropFirst(FragmentHeader.byteCount)
            }
            let joinedIsFrame = joined == frame
            #expect(joinedIsFrame, "size \(size)")
            let pieces = datagrams.map { $0.count - FragmentHeader.byteCount }
            #expect(Set(pieces.dropLast()).count == 1 && pieces.last! >= 1 && pieces.last! <= pieces[0], "size \(size)")
        }
    }

    /// The receiver accepts exactly the layouts of the split rule: every layout a sender
    /// produces, and every accepted layout is the sender's split at its own piece size.
    @Test func layoutsAcceptedAreLayoutsOfTheSplitRule() {
        for total in 0...400 {
            var produced = Set<Int>()
            for datagramBytesMax in (FragmentHeader.byteCount + 1)..<max(FragmentHeader.byteCount + 1, total + 1) {
                produced.insert(FragmentLayout(splitting: total, datagramBytesMax: datagramBytesMax).count)
            }
            var accepted = Set<Int>()
            for count in [0, 1] + Array(2...total + 2) + [DatagramCodec.fragmentsMax, DatagramCodec.fragmentsMax + 1] {
                guard let layout = FragmentLayout(totalBytes: total, count: count) else { continue }
                accepted.insert(count)
                // As few pieces of `pieceBytes` as hold the frame: what a sender whose
                // datagrams hold `pieceBytes` after the header would cut.
                #expect(count == (total + layout.pieceBytes - 1) / layout.pieceBytes, "total \(total), count \(count)")
                let ranges = (0..<count).map(layout.byteRange(ofFragment:))
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == total)
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                #expect(ranges.allSatisfy { !$0.isEmpty })
            }
            #expect(produced.isSubset(of: accepted), "total \(total)")
        }
        #expect(FragmentLayout(totalBytes: 5, count: 4) == nil)  // 2 + 2 + 2 would leave −1
        #expect(FragmentLayout(totalBytes: 10, count: 1) == nil)  // one fragment goes whole
        #expect(FragmentLayout(totalBytes: 1 << 20, count: DatagramCodec.fragmentsMax + 1) == nil)
    }

    // MARK: - Round trips

    /// Sizes around the one-datagram edge and a 10 MB state transfer, fragments in a
    /// seeded random order with some repeated.
    @Test(arguments: [0, 1, 59_999, 60_000, 10_000_000])
    func roundTrip(bytes: Int) {
        let seed = UInt64(bytes) &+ 11
        var rng = FragmentationRNG(seed: seed)
        let frame = testFrame(bytes: bytes, seed: seed)
        let datagrams = DatagramCodec.datagrams(for: frame, messageID: 42)
        #expect(datagrams.count == (bytes <= Self.capacity ? 1 : (bytes + Self.piece - 1) / Self.piece))
        let delivered = scrambled(datagrams, repeating: true, rng: &rng)

        var reassembler = Reassembler()
        let results = delivered.map { reassembler.receive($0, from: SenderKey("10.0.0.1:7000"), now: 0) }
        let frames = results.compactMap(\.frame)
        // A whole frame repeated by the network is returned each time (the protocol
        // discards repeated messages); a fragmented one is returned once.
        #expect(frames.count == (datagrams.count == 1 ? delivered.count : 1), "seed \(seed)")
        let allIntact = frames.allSatisfy { $0 == frame }
        #expect(allIntact, "seed \(seed)")
        #expect(results.allSatisfy { $0.frame != nil || $0 == .pending || $0 == .dropped(.duplicateFragment) })
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }

    /// One frame of the largest size a frame may have, in random order with repeats. The
    /// slowest test in a debug build; keep it to one.
    @Test func roundTripOfTheLargestFrame() {
        let seed: UInt64 = 32
        var rng = FragmentationRNG(seed: seed)
        let frame = testFrame(bytes: 32 << 20, seed: seed)
        let datagrams = DatagramCodec.datagrams(for: frame, messageID: .max)
        #expect(datagrams.count == 560)
        var reassembler = Reassembler()
        var frames = [[UInt8]]()
        for datagram in scrambled(datagrams, repeating: true, rng: &rng) {
            if case .frame(let bytes) = reassembler.receive(datagram, from: SenderKey("a:1"), now: 0) { frames.append(bytes) }
        }
        #expect(frames.count == 1)
        let intact = frames.first == frame
        #expect(intact, "seed \(seed)")
        #expect(reassembler.counters.framesReassembled == 1 && reassembler.bufferedBytes == 0)
    }

    /// Four senders, three messages each, reusing each other's message IDs, every datagram
    /// of all twelve in one random order with repeats.
    @Test func interleavedSendersAndMessages() {
        let seed: UInt64 = 7
        var rng = FragmentationRNG(seed: seed)
        let senders = (0..<4).map { SenderKey("10.0.0.\($0):7000") }
        var sent: [SenderKey: Set<[UInt8]>] = [:]
        var traffic: [(SenderKey, [UInt8])] = []
        for sender in senders {
            for messageID: UInt64 in 1...3 {
                let frame = testFrame(bytes: Int.random(in: 10_000...300_000, using: &rng), seed: rng.next())
                sent[sender, default: []].insert(frame)
                let datagrams = DatagramCodec.datagrams(for: frame, messageID: messageID, datagramBytesMax: 9_000)
                traffic += scrambled(datagrams, repeating: true, rng: &rng).map { (sender, $0) }
            }
        }
        traffic.shuffle(using: &rng)

        var reassembler = Reassembler()
        var received: [SenderKey: [[UInt8]]] = [:]
        for (tick, (sender, datagram)) in traffic.enumerated() {
            if case .frame(let frame) = reassembler.receive(datagram, from: sender, now: UInt64(tick / 100)) {
                received[sender, default: []].append(frame)
            }
        }
        for sender in senders {
            #expect(received[sender]?.count == 3, "seed \(seed)")
            let intact = Set(received[sender] ?? []) == sent[sender]
            #expect(intact, "seed \(seed)")
        }
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }

    // MARK: - Loss and timeouts

    /// A message missing a fragment stays pending until it is older than the timeout, then
    /// is discarded and its bytes freed; a resend under a new message ID goes through.
    @Test func missingFragmentExpires() {
        let limits = ReassemblyLimits(timeoutTicks: 10)
        var reassembler = Reassembler(limits: limits)
        let sender = SenderKey("b:2")
        let frame = testFrame(bytes: 200_000, seed: 3)
        let datagrams = DatagramCodec.datagrams(for: frame, messageID: 1)
        #expect(datagrams.count == 4)
        for datagram in datagrams.dropLast() { #expect(reassembler.receive(datagram, from: sender, now: 5) == .pending) }
        #expect(reassembler.bufferedBytes == 3 * 50_000 && reassembler.incompleteMessages == 1)

        #expect(reassembler.expire(now: 15) == 0)  // 10 ticks old: not older than the timeout
        #expect(reassembler.incompleteMessages == 1)
        #expect(reassembler.expire(now: 16) == 1)
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
        #expect(reassembler.counters.messagesExpired == 1)

        // The lost fragment turns up late: it must not start the message again.
        #expect(reassembler.receive(datagrams[3], from: sender, now: 17) == .dropped(.expired))
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)

        let resent = DatagramCodec.datagrams(for: frame, messageID: 2)
        let results = resent.map { reassembler.receive($0, from: sender, now: 18) }
        #expect(results.last == .frame(frame))
    }

    /// Without `expire(now:)`, the next fragment from the sender discards its old messages.
    @Test func oldMessageExpiresWhenItsSenderSendsAgain() {
        var reassembler = Reassembler(limits: ReassemblyLimits(timeoutTicks: 100))
        let sender = SenderKey("c:3")
        let old = DatagramCodec.datagrams(for: testFrame(bytes: 150_000, seed: 4), messageID: 1)
        #expect(reassembler.receive(old[0], from: sender, now: 0) == .pending)
        #expect(reassembler.receive(old[1], from: sender, now: 101) == .dropped(.expired))
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
        // A sender that trickles one fragment at a time cannot keep a message alive.
        #expect(reassembler.receive(old[0], from: SenderKey("d:4"), now: 200) == .pending)
        #expect(reassembler.receive(old[1], from: SenderKey("d:4"), now: 300) == .pending)
        #expect(reassembler.receive(old[2], from: SenderKey("d:4"), now: 301) == .dropped(.expired))
    }

    // MARK: - Limits

    /// A sender that starts 1,000 messages and finishes none keeps at most
    /// `messagesPerSenderMax` of them, and can still send a frame afterwards.
    @Test func abandonedMessagesAreBoundedByCount() {
        let limits = ReassemblyLimits(bytesPerSenderMax: 1 << 20, messagesPerSenderMax: 8, sendersMax: 4, frameBytesMax: 512 << 10)
        let datagrams = DatagramCodec.datagrams(for: testFrame(bytes: 100_000, seed: 5), messageID: 0, datagramBytesMax: 10_017)
        #expect(datagrams.count == 10)
        let sender = SenderKey("e:5")
        var reassembler = Reassembler(limits: limits)
        for messageID in 0..<UInt64(1_000) {
            for datagram in datagrams.dropLast() {
                #expect(reassembler.receive(withMessageID(datagram, messageID), from: sender, now: 0) == .pending)
            }
            #expect(reassembler.incompleteMessages(from: sender) <= limits.messagesPerSenderMax)
            #expect(reassembler.bufferedBytes(from: sender) <= limits.bytesPerSenderMax)
        }
        #expect(reassembler.incompleteMessages == 8 && reassembler.bufferedBytes == 8 * 90_000)
        #expect(reassembler.counters.messagesEvicted == 992)
        let frame = testFrame(bytes: 300_000, seed: 6)
        #expect(DatagramCodec.datagrams(for: frame, messageID: 5_000).map { reassembler.receive($0, from: sender, now: 1) }.last == .frame(frame))
    }

    /// The same with messages so large that the byte limit binds first.
    @Test func abandonedMessagesAreBoundedByBytes() {
        let limits = ReassemblyLimits(bytesPerSenderMax: 1 << 20, messagesPerSenderMax: 8, sendersMax: 4, frameBytesMax: 512 << 10)
        let datagrams = DatagramCodec.datagrams(for: testFrame(bytes: 500_000, seed: 7), messageID: 0)
        #expect(datagrams.count == 9)
        let sender = SenderKey("f:6")
        var reassembler = Reassembler(limits: limits)
        for messageID in 0..<UInt64(1_000) {
            for datagram in datagrams.dropLast() {
                #expect(reassembler.receive(withMessageID(datagram, messageID), from: sender, now: 0) == .pending)
                #expect(reassembler.bufferedBytes(from: sender) <= limits.bytesPerSenderMax)
            }
        }
        // 8 pieces of 55,556 bytes each: 444,448 per message, two fit in 1 MiB.
        #expect(reassembler.incompleteMessages == 2 && reassembler.bufferedBytes == 2 * 444_448)
    }

    /// At most `sendersMax` senders hold state; a new one displaces the least recently
    /// active, and a datagram of any kind counts as activity.
    @Test func sendersBeyondTheLimitDisplaceTheLeastRecentlyActive() {
        let limits = ReassemblyLimits(bytesPerSenderMax: 1 << 20, sendersMax: 16, frameBytesMax: 1 << 20)
        var reassembler = Reassembler(limits: limits)
        let datagrams = DatagramCodec.datagrams(for: testFrame(bytes: 100_000, seed: 8), messageID: 1)
        let senders = (0..<100).map { SenderKey("10.1.0.\($0):9") }
        for sender in senders[0..<16] { #expect(reassembler.receive(datagrams[0], from: sender, now: 0) == .pending) }
        // Sender 0 is the oldest but speaks again (a whole frame); sender 1 is now the least
        // recently active and goes first.
        #expect(reassembler.receive([0x50, 1], from: senders[0], now: 1) == .frame([1]))
        #expect(reassembler.receive(datagrams[0], from: senders[16], now: 1) == .pending)
        #expect(reassembler.incompleteMessages(from: senders[0]) == 1)
        #expect(reassembler.incompleteMessages(from: senders[1]) == 0)

        for sender in senders[17...] {
            #expect(reassembler.receive(datagrams[0], from: sender, now: 2) == .pending)
            #expect(reassembler.sendersTracked <= limits.sendersMax)
        }
        #expect(reassembler.sendersTracked == 16 && reassembler.incompleteMessages == 16)
        #expect(reassembler.counters.sendersEvicted == 84)
        #expect(reassembler.receive(datagrams[1], from: senders[99], now: 3) == .frame(testFrame(bytes: 100_000, seed: 8)))
    }

    /// A sender pouring in far more than its limits allow discards only its own messages:
    /// another sender's message in progress completes.
    @Test func aBigSenderCannotEvictAnotherSendersMessage() {
        let limits = ReassemblyLimits(bytesPerSenderMax: 1 << 20, messagesPerSenderMax: 4, sendersMax: 8, frameBytesMax: 1 << 20)
        var reassembler = Reassembler(limits: limits)
        let victim = SenderKey("10.2.0.1:1"), bully = SenderKey("10.2.0.2:1")
        let frame = testFrame(bytes: 600_000, seed: 9)
        let victimDatagrams = DatagramCodec.datagrams(for: frame, messageID: 1)
        for datagram in victimDatagrams.prefix(5) { #expect(reassembler.receive(datagram, from: victim, now: 0) == .pending) }

        let bullyDatagrams = DatagramCodec.datagrams(for: testFrame(bytes: 1 << 20, seed: 10), messageID: 0)
        for messageID in 0..<UInt64(50) {
            for datagram in bullyDatagrams.dropLast() { _ = reassembler.receive(withMessageID(datagram, messageID), from: bully, now: 1) }
            #expect(reassembler.bufferedBytes(from: bully) <= limits.bytesPerSenderMax)
        }
        #expect(reassembler.incompleteMessages(from: victim) == 1)
        let results = victimDatagrams.dropFirst(5).map { reassembler.receive($0, from: victim, now: 2) }
        #expect(results.last == .frame(frame))
    }

    /// When a sender has more messages in flight than it may, its oldest goes, and that
    /// message's later fragments are dropped rather than starting it again (which would
    /// evict the next one, and so on until nothing completes).
    @Test func anEvictedMessageStaysEvicted() {
        let limits = ReassemblyLimits(messagesPerSenderMax: 2)
        var reassembler = Reassembler(limits: limits)
        let sender = SenderKey("g:7")
        let frames = (0..<3).map { testFrame(bytes: 100_000 + $0, seed: 20 + UInt64($0)) }
        let messages = frames.enumerated().map { DatagramCodec.datagrams(for: $1, messageID: UInt64($0)) }
        for message in messages { #expect(reassembler.receive(message[0], from: sender, now: 0) == .pending) }
        #expect(reassembler.counters.messagesEvicted == 1)
        #expect(reassembler.receive(messages[0][1], from: sender, now: 0) == .dropped(.bufferFull))
        #expect(reassembler.receive(messages[1][1], from: sender, now: 0) == .frame(frames[1]))
        #expect(reassembler.receive(messages[2][1], from: sender, now: 0) == .frame(frames[2]))
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }

    @Test func limitsAreValidated() {
        #expect(throws: Never.self) { try ReassemblyLimits.default.validate() }
        let invalid = [
            ReassemblyLimits(bytesPerSenderMax: 1 << 20, frameBytesMax: 2 << 20),
            ReassemblyLimits(messagesPerSenderMax: 0),
            ReassemblyLimits(sendersMax: 0),
            ReassemblyLimits(timeoutTicks: 0),
            ReassemblyLimits(bytesPerSenderMax: .max, frameBytesMax: 70 << 20),
            ReassemblyLimits(bytesPerSenderMax: .max / 2, sendersMax: 3),
            ReassemblyLimits(frameBytesMax: -1),
        ]
        for limits in invalid { #expect(throws: ReassemblyLimitsError.self) { try limits.validate() } }
    }

    // MARK: - Malformed and forged datagrams

    /// Each way a datagram can be wrong, with the reason it is dropped; none of them
    /// disturbs the message already in progress under the same ID.
    @Test func malformedAndInconsistentDatagramsAreDroppedWithTheirReason() {
        let limits = ReassemblyLimits(bytesPerSenderMax: 1 << 20, frameBytesMax: 1 << 20)
        var reassembler = Reassembler(limits: limits)
        let sender = SenderKey("h:8")
        let frame = testFrame(bytes: 200_000, seed: 12)
        let datagrams = DatagramCodec.datagrams(for: frame, messageID: 77)  // 4 pieces of 50,000
        #expect(reassembler.receive(datagrams[0], from: sender, now: 0) == .pending)

        func fragment(_ id: UInt64 = 77, index: Int, count: Int, total: Int, pieceBytes: Int) -> [UInt8] {
            FragmentHeader(messageID: id, index: UInt16(index), count: UInt16(count), totalBytes: UInt32(total)).bytes
                + [UInt8](repeating: 0xEE, count: pieceBytes)
        }
        let cases: [([UInt8], DatagramDropReason)] = [
            ([], .empty),
            ([0x00, 1, 2], .unknownKind),
            ([0x51], .unknownKind),
            (Array(datagrams[1].prefix(16)), .malformedHeader),
            ([0x46], .malformedHeader),
            (fragment(index: 0, count: 1, total: 10, pieceBytes: 10), .malformedHeader),
            (fragment(index: 0, count: 0, total: 10, pieceBytes: 10), .malformedHeader),
            (fragment(index: 0, count: 1025, total: 1 << 20, pieceBytes: 1024), .malformedHeader),
            (fragment(index: 0, count: 4, total: 5, pieceBytes: 2), .malformedHeader),
            (fragment(index: 0, count: 4, total: 3, pieceBytes: 1), .malformedHeader),
            (fragment(index: 0, count: 4, total: (1 << 20) + 1, pieceBytes: 262_145), .tooLarge),
            (fragment(index: 0, count: 2, total: Int(UInt32.max), pieceBytes: 0), .tooLarge),
            (fragment(index: 4, count: 4, total: 200_000, pieceBytes: 50_000), .inconsistentFragment),
            (fragment(index: 65_535, count: 4, total: 200_000, pieceBytes: 50_000), .inconsistentFragment),
            (fragment(index: 1, count: 4, total: 200_000, pieceBytes: 49_999), .inconsistentFragment),
            (fragment(index: 1, count: 4, total: 200_000, pieceBytes: 50_001), .inconsistentFragment),
            (fragment(index: 3, count: 4, total: 200_000, pieceBytes: 0), .inconsistentFragment),
            // Well-formed on their own, but not the layout message 77 started with.
            (fragment(index: 1, count: 5, total: 200_000, pieceBytes: 40_000), .inconsistentFragment),
            (fragment(index: 1, count: 4, total: 200_004, pieceBytes: 50_001), .inconsistentFragment),
            (fragment(index: 3, count: 4, total: 199_999, pieceBytes: 49_999), .inconsistentFragment),
            (datagrams[0], .duplicateFragment),
        ]
        for (datagram, reason) in cases {
            #expect(reassembler.receive(datagram, from: sender, now: 0) == .dropped(reason), "\(datagram.prefix(17))")
        }
        #expect(reassembler.bufferedBytes == 50_000 && reassembler.incompleteMessages == 1)
        #expect(reassembler.counters.droppedTotal == cases.count)
        #expect(reassembler.counters[.inconsistentFragment] == 8)

        let tooLargeWhole = [0x50] + [UInt8](repeating: 0, count: limits.frameBytesMax + 1)
        #expect(reassembler.receive(tooLargeWhole, from: sender, now: 0) == .dropped(.tooLarge))

        let results = datagrams.dropFirst().map { reassembler.receive($0, from: sender, now: 0) }
        #expect(results == [.pending, .pending, .frame(frame)])
        // Repeated after completion: dropped, and no message starts again.
        #expect(reassembler.receive(datagrams[2], from: sender, now: 0) == .dropped(.duplicateFragment))
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }

    /// 100,000 hostile datagrams (random bytes, random headers, well-formed fragments of
    /// made-up messages, mutated copies of real fragments) from several senders, with a
    /// legitimate sender's three frames interleaved. Nothing traps, every bound holds after
    /// every datagram, and the legitimate frames all arrive intact.
    @Test func hostileTrafficStaysBoundedAndALegitimateSenderGetsThrough() {
        let seed: UInt64 = 0xF1A6
        var rng = FragmentationRNG(seed: seed)
        let limits = ReassemblyLimits(
            bytesPerSenderMax: 64 << 10, messagesPerSenderMax: 4, sendersMax: 8, timeoutTicks: 500, frameBytesMax: 32 << 10
        )
        var reassembler = Reassembler(limits: limits)
        var hostile = HostileSender(rng: FragmentationRNG(seed: seed ^ 1), frameBytesMax: limits.frameBytesMax)
        let hostileSenders = (0..<6).map { SenderKey("10.66.0.\($0):666") }
        let legitimate = SenderKey("10.0.0.1:7000")

        let count = 100_000
        let frames = (0..<3).map { testFrame(bytes: 30_000, seed: seed &+ UInt64($0)) }
        var legitimateAt: [Int: [UInt8]] = [:]
        for (k, frame) in frames.enumerated() {
            // Each frame's fragments land within 5,000 datagrams (100 ticks) of each other.
            let datagrams = DatagramCodec.datagrams(for: frame, messageID: UInt64(k), datagramBytesMax: 1_000)
            var slots = Set<Int>()
            while slots.count < datagrams.count { slots.insert(k * 30_000 + Int.random(in: 0..<5_000, using: &rng)) }
            for (slot, datagram) in zip(slots.sorted(), scrambled(datagrams, repeating: false, rng: &rng)) {
                legitimateAt[slot] = datagram
            }
        }

        var received = [[UInt8]]()
        for i in 0..<count {
            let now = UInt64(i / 50)
            if let datagram = legitimateAt[i], case .frame(let frame) = reassembler.receive(datagram, from: legitimate, now: now) {
                received.append(frame)
            }
            let sender = hostileSenders.randomElement(using: &rng)!
            _ = reassembler.receive(hostile.next(), from: sender, now: now)
            #expect(reassembler.bufferedBytes(from: sender) <= limits.bytesPerSenderMax)
            #expect(reassembler.incompleteMessages(from: sender) <= limits.messagesPerSenderMax)
            #expect(reassembler.bufferedBytes <= limits.bufferedBytesMax)
            #expect(reassembler.sendersTracked <= limits.sendersMax)
            if i % 1_000 == 0 { reassembler.expire(now: now) }
        }
        #expect(received.count == frames.count, "seed \(seed)")
        let intact = received == frames
        #expect(intact, "seed \(seed)")

        // The hostile traffic reached every check, not just the first.
        let counters = reassembler.counters
        for reason in DatagramDropReason.allCases where reason != .expired {
            #expect(counters[reason] > 0, "\(reason), seed \(seed)")
        }
        #expect(counters.messagesEvicted > 0 && counters.framesReassembled > 3, "seed \(seed)")

        // The accounting balances: once everything is old, nothing is held.
        reassembler.expire(now: .max)
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }

    /// Random source addresses (as a spoofing sender could use) never hold more than
    /// `sendersMax` senders' state.
    @Test func spoofedSendersAreBoundedBySendersMax() {
        let seed: UInt64 = 0x5B00F
        var rng = FragmentationRNG(seed: seed)
        let limits = ReassemblyLimits(bytesPerSenderMax: 64 << 10, messagesPerSenderMax: 4, sendersMax: 8, timeoutTicks: 500, frameBytesMax: 32 << 10)
        var reassembler = Reassembler(limits: limits)
        var hostile = HostileSender(rng: FragmentationRNG(seed: seed ^ 1), frameBytesMax: limits.frameBytesMax)
        for i in 0..<20_000 {
            let sender = SenderKey("10.\(rng.next() % 4).\(rng.next() % 8).\(rng.next() % 8):1")
            _ = reassembler.receive(hostile.next(), from: sender, now: UInt64(i / 50))
            #expect(reassembler.sendersTracked <= limits.sendersMax)
            #expect(reassembler.incompleteMessages <= limits.sendersMax * limits.messagesPerSenderMax)
            #expect(reassembler.bufferedBytes <= limits.bufferedBytesMax)
        }
        #expect(reassembler.counters.sendersEvicted > 0, "seed \(seed)")
        reassembler.expire(now: .max)
        #expect(reassembler.bufferedBytes == 0 && reassembler.incompleteMessages == 0)
    }
}

// MARK: - Helpers

typealias FragmentationRNG = SplitMix64

extension SplitMix64 {

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// Seeded bytes, eight per generator step so that 32 MiB stays quick in a debug build.
private func testFrame(bytes count: Int, seed: UInt64) -> [UInt8] {
    var rng = FragmentationRNG(seed: seed)
    var frame = [UInt8](repeating: 0, count: count)
    frame.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset + 8 <= count {
            buffer.storeBytes(of: rng.next(), toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            buffer[offset] = UInt8(truncatingIfNeeded: rng.next())
            offset += 1
        }
    }
    return frame
}

/// The datagrams in random order; with `repeating`, about one in four also delivered twice.
private func scrambled(_ datagrams: [[UInt8]], repeating: Bool, rng: inout FragmentationRNG) -> [[UInt8]] {
    var out = datagrams
    if repeating { out += datagrams.filter { _ in rng.next() % 4 == 0 } }
    out.shuffle(using: &rng)
    return out
}

/// A fragment datagram with its message ID rewritten.
private func withMessageID(_ datagram: [UInt8], _ messageID: UInt64) -> [UInt8] {
    var header = FragmentHeader(decoding: datagram)!
    header.messageID = messageID
    return header.bytes + datagram.dropFirst(FragmentHeader.byteCount)
}

extension ReassemblyResult {
    fileprivate var frame: [UInt8]? {
        if case .frame(let bytes) = self { bytes } else { nil }
    }
}

/// Makes up hostile datagrams: anything from random bytes to well-formed fragments of
/// messages that never complete, under colliding message IDs.
private struct HostileSender {
    var rng: FragmentationRNG
    let frameBytesMax: Int
    /// Real fragments of a few real frames, for mutation and for fragments that complete.
    let genuine: [[UInt8]]
    /// The made-up message being sent: its ID and layout.
    var current: (id: UInt64, layout: FragmentLayout)

    init(rng: FragmentationRNG, frameBytesMax: Int) {
        self.rng = rng
        self.frameBytesMax = frameBytesMax
        genuine = (0..<4).flatMap { k in
            DatagramCodec.datagrams(for: testFrame(bytes: 3_000 * (k + 1), seed: UInt64(k)), messageID: UInt64(100 + k), datagramBytesMax: 700)
        }
        current = (0, FragmentLayout(totalBytes: 100, count: 2)!)
        newMessage()
    }

    mutating func newMessage() {
        let count = Int.random(in: 2...32, using: &rng)
        let pieceBytes = Int.random(in: 1...2_000, using: &rng)
        let total = pieceBytes * (count - 1) + Int.random(in: 1...pieceBytes, using: &rng)
        // IDs from a small set, so made-up messages collide with each other.
        current = (UInt64.random(in: 0..<8, using: &rng), FragmentLayout(totalBytes: total, count: count)!)
    }

    mutating func next() -> [UInt8] {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<10: return rng.bytes(Int.random(in: 0...40, using: &rng))
        case 10..<14: return [0x50] + rng.bytes(Int.random(in: 0...64, using: &rng))
        case 14..<24:
            // A random header over a random body.
            let header = FragmentHeader(
                messageID: rng.next() % 16, index: UInt16(truncatingIfNeeded: rng.next() % 40),
                count: UInt16(truncatingIfNeeded: rng.next() % 40), totalBytes: UInt32(truncatingIfNeeded: rng.next() % 70_000)
            )
            return header.bytes + rng.bytes(Int.random(in: 0...100, using: &rng))
        case 24..<40: return mutated(genuine.randomElement(using: &rng)!)
        case 40..<50: return genuine.randomElement(using: &rng)!
        default:
            if Int.random(in: 0..<40, using: &rng) == 0 { newMessage() }
            let index = Int.random(in: 0..<current.layout.count, using: &rng)
            let header = FragmentHeader(
                messageID: current.id, index: UInt16(index), count: UInt16(current.layout.count), totalBytes: UInt32(current.layout.totalBytes)
            )
            var pieceBytes = current.layout.byteRange(ofFragment: index).count
            if Int.random(in: 0..<20, using: &rng) == 0 { pieceBytes += Int.random(in: -1...1, using: &rng) }
            return header.bytes + [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: max(0, pieceBytes))
        }
    }

    /// One header field, byte or length of a real fragment changed.
    mutating func mutated(_ datagram: [UInt8]) -> [UInt8] {
        var out = datagram
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: out[Int.random(in: 0..<FragmentHeader.byteCount, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
        case 1: out[Int.random(in: 9..<FragmentHeader.byteCount, using: &rng)] = [0, 1, 0xFF].randomElement(using: &rng)!
        case 2: out.removeLast(Int.random(in: 1...out.count, using: &rng))
        case 3: out += rng.bytes(Int.random(in: 1...3, using: &rng))
        case 4:
            var header = FragmentHeader(decoding: datagram)!
            header.totalBytes = header.totalBytes &+ UInt32.random(in: 0...2, using: &rng) &- 1
            header.count = header.count &+ UInt16.random(in: 0...2, using: &rng) &- 1
            out = header.bytes + datagram.dropFirst(FragmentHeader.byteCount)
        default:
            var header = FragmentHeader(decoding: datagram)!
            header.index = UInt16.random(in: 0...UInt16.max, using: &rng) % (header.count &+ 2)
            out = header.bytes + datagram.dropFirst(FragmentHeader.byteCount)
        }
        return out
    }
}
