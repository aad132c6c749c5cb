// The datagram layer under the UDP shell: frames of up to `frameBytesMax` bytes are split
// into datagrams that fit a UDP payload and put back together on the other side.
//
// Pure Swift on purpose: no Foundation, no NIO, no clock. Time arrives as `now` ticks, so
// the reassembler is a value-type state machine that tests drive deterministically.
// docs/transport.md describes the format, the limits and why they are what they are.

/// The first byte of every datagram: what follows it.
public enum DatagramKind: UInt8, Sendable {
    /// `'P'`: the rest of the datagram is one whole frame.
    case whole = 0x50
    /// `'F'`: a fragment header (`FragmentHeader`), then one piece of a frame.
    case fragment = 0x46
    /// `'B'`: two or more whole frames for the same receiver, each after its length
    /// (4 bytes, big-endian); nothing after the last.
    case bundle = 0x42
}

/// Splits frames into datagrams. The inverse is `Reassembler`.
public enum DatagramCodec {
    /// The largest payload of one UDP datagram over IPv4: 65,535 − 8 (UDP) − 20 (IP).
    public static let udpPayloadBytesMax = 65_507
    /// The default bound on a datagram this side sends: below `udpPayloadBytesMax`, with
    /// room to spare for IP options or an IPv6 header.
    public static let datagramBytesDefault = 60_000
    /// Fragments of one frame. With the default datagram size a frame may be about 61 MB,
    /// well above the 32 MiB a frame is bounded by elsewhere; a sender of 32 MiB frames needs
    /// datagrams of at least 32 MiB / 1024 + 17 = 32,785 bytes.
    public static let fragmentsMax = 1024

    /// The datagrams that carry `frame`, in fragment order.
    ///
    /// A frame that fits in one datagram after the kind byte goes whole (kind `'P'`, no
    /// message ID). A larger frame is split by `FragmentLayout(splitting:datagramBytesMax:)`
    /// into fragments (kind `'F'`) that all carry `messageID`. The caller gives each
    /// fragmented frame a message ID it has not used before towards that receiver (a
    /// counter): the receiver puts together pieces that share a sender and a message ID.
    ///
    /// - Precondition: `datagramBytesMax` is in `FragmentHeader.byteCount + 1 ... udpPayloadBytesMax`,
    ///   and the frame needs at most `fragmentsMax` fragments. Frames are bounded by the
    ///   wire limits long before that; a larger one here is a bug of the sender.
    public static func datagrams(
        for frame: [UInt8], messageID: UInt64, datagramBytesMax: Int = datagramBytesDefault
    ) -> [[UInt8]] {
        precondition(
            (FragmentHeader.byteCount + 1...udpPayloadBytesMax).contains(datagramBytesMax),
            "datagramBytesMax = \(datagramBytesMax) must be in \(FragmentHeader.byteCount + 1)...\(udpPayloadBytesMax)"
        )
        if 1 + frame.count <= datagramBytesMax {
            var datagram = [UInt8]()
            datagram.reserveCapacity(1 + frame.count)
            datagram.append(DatagramKind.whole.rawValue)
            datagram.append(contentsOf: frame)
            return [datagram]
        }
        let layout = FragmentLayout(splitting: frame.count, datagramBytesMax: datagramBytesMax)
        var datagrams = [[UInt8]]()
        datagrams.reserveCapacity(layout.count)
        for index in 0..<layout.count {
            let header = FragmentHeader(
                messageID: messageID, index: UInt16(index), count: UInt16(layout.count), totalBytes: UInt32(frame.count)
            )
            let range = layout.byteRange(ofFragment: index)
            var datagram = [UInt8]()
            datagram.reserveCapacity(FragmentHeader.byteCount + range.count)
            header.write(to: &datagram)
            datagram.append(contentsOf: frame[range])
            datagrams.append(datagram)
        }
        return datagrams
    }

    /// The datagrams that carry `frames`, in order, to one receiver: consecutive frames that
    /// fit together go in one bundle datagram (kind `'B'`) of at most `datagramBytesMax`
    /// bytes, so a burst of small frames (the replies of a batch to clients that share a
    /// socket, a replica's votes to a peer) costs one datagram instead of one each. A frame
    /// left alone goes whole, and so does one shorter than `bundledFrameBytesMin`; a frame too
    /// large for a bundle goes as `datagrams(for:)` does, each with a message ID from
    /// `messageID()`.
    public static func datagrams(
        bundling frames: [[UInt8]], messageID: () -> UInt64, datagramBytesMax: Int = datagramBytesDefault
    ) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var pending: [[UInt8]] = []
        var pendingBytes = 1
        func emit() {
            if pending.count == 1 {
                datagrams += Self.datagrams(for: pending[0], messageID: messageID(), datagramBytesMax: datagramBytesMax)
            } else if pending.count > 1 {
                var bundle = ByteWriter(capacity: pendingBytes)
                bundle.u8(DatagramKind.bundle.rawValue)
                for frame in pending { bundle.lengthPrefixed(frame) }
                datagrams.append(bundle.bytes)
            }
            pending = []
            pendingBytes = 1
        }
        for frame in frames {
            let bytes = bundleLengthBytes + frame.count
            let alone = 1 + bytes > datagramBytesMax || frame.count < bundledFrameBytesMin
            if alone || pendingBytes + bytes > datagramBytesMax { emit() }
            if alone {
                datagrams += Self.datagrams(for: frame, messageID: messageID(), datagramBytesMax: datagramBytesMax)
                continue
            }
            pending.append(frame)
            pendingBytes += bytes
        }
        emit()
        return datagrams
    }

    /// The length before each frame of a bundle.
    static let bundleLengthBytes = 4

    /// The shortest frame a bundle holds: every frame carries a signature at least, and a
    /// bundle of many tiny frames would make a receiver decode thousands per datagram.
    public static let bundledFrameBytesMin = 64

    /// The frames of a bundle datagram, or nil when it is not one a sender produces: fewer
    /// than two frames, a length past the end, or a frame below `bundledFrameBytesMin` or
    /// above `frameBytesMax` (then the whole datagram is dropped: its frames came together
    /// and go together).
    static func frames(ofBundle datagram: [UInt8], frameBytesMax: Int) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        var reader = ByteReader(datagram, from: 1)
        while reader.remaining > 0 {
            guard let frame = try? reader.lengthPrefixed("bundle.frame", limit: frameBytesMax), frame.count >= bundledFrameBytesMin else { return nil }
            frames.append(frame)
        }
        return frames.count >= 2 ? frames : nil
    }
}

/// The header of a fragment datagram, kind byte included. All integers big-endian.
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 1 | kind `0x46` |
/// | 1 | 8 | message ID |
/// | 9 | 2 | fragment index |
/// | 11 | 2 | fragment count |
/// | 13 | 4 | total length of the frame |
/// | 17 | … | the fragment's piece of the frame |
public struct FragmentHeader: Hashable, Sendable {
    public static let byteCount = 17

    public var messageID: UInt64
    public var index: UInt16
    public var count: UInt16
    public var totalBytes: UInt32

    public init(messageID: UInt64, index: UInt16, count: UInt16, totalBytes: UInt32) {
        self.messageID = messageID
        self.index = index
        self.count = count
        self.totalBytes = totalBytes
    }

    /// Reads the header at the start of `datagram`; nil if the datagram is not a fragment
    /// or is shorter than a header. Says nothing about whether the fields are consistent.
    public init?(decoding datagram: [UInt8]) {
        guard datagram.count >= Self.byteCount, datagram[0] == DatagramKind.fragment.rawValue else { return nil }
        func read(_ offset: Int, _ width: Int) -> UInt64 {
            var value: UInt64 = 0
            for byte in datagram[offset..<offset + width] { value = value << 8 | UInt64(byte) }
            return value
        }
        messageID = read(1, 8)
        index = UInt16(truncatingIfNeeded: read(9, 2))
        count = UInt16(truncatingIfNeeded: read(11, 2))
        totalBytes = UInt32(truncatingIfNeeded: read(13, 4))
    }

    /// The header's 17 bytes, kind byte first.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.byteCount)
        write(to: &out)
        return out
    }

    func write(to out: inout [UInt8]) {
        func write(_ value: UInt64, _ width: Int) {
            for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        out.append(DatagramKind.fragment.rawValue)
        write(messageID, 8)
        write(UInt64(index), 2)
        write(UInt64(count), 2)
        write(UInt64(totalBytes), 4)
    }
}

/// How a frame of `totalBytes` is cut into `count` pieces: every piece but the last has
/// `pieceBytes = ceil(totalBytes / count)` bytes, the last has the rest, at least one.
///
/// The layout follows from the two header fields alone, so every fragment says by itself
/// where its bytes go and how many there must be. The receiver needs nothing from earlier
/// fragments (not the sender's datagram size, not which fragment came first), and two
/// fragments that agree on `(count, totalBytes)` can never overlap or leave a gap.
public struct FragmentLayout: Hashable, Sendable {
    public let totalBytes: Int
    public let count: Int

    /// Bytes of every piece except the last, which has 1 ... `pieceBytes`.
    public var pieceBytes: Int { (totalBytes + count - 1) / count }

    /// The layout a fragment header claims, or nil if the split rule cannot give it: fewer
    /// than 2 or more than `fragmentsMax` fragments (one fragment goes whole), or a length
    /// that leaves the last piece empty, `(count − 1) · pieceBytes ≥ totalBytes`. Every
    /// layout accepted here is `count = ceil(totalBytes / pieceBytes)` pieces of
    /// `pieceBytes`: the sender's split for datagrams of `pieceBytes + 17` bytes.
    public init?(totalBytes: Int, count: Int) {
        guard (2...DatagramCodec.fragmentsMax).contains(count), totalBytes >= count else { return nil }
        let pieceBytes = (totalBytes + count - 1) / count
        guard totalBytes - pieceBytes * (count - 1) >= 1 else { return nil }
        self.totalBytes = totalBytes
        self.count = count
    }

    /// The sender's layout: as few fragments as fit in `datagramBytesMax`, then the frame
    /// spread evenly over them. `count = ceil(total / (datagramBytesMax − 17))`, and since
    /// `pieceBytes ≤ datagramBytesMax − 17` every fragment fits.
    ///
    /// - Precondition: the frame does not fit in one whole datagram, and needs at most
    ///   `fragmentsMax` fragments.
    public init(splitting totalBytes: Int, datagramBytesMax: Int) {
        let capacity = datagramBytesMax - FragmentHeader.byteCount
        precondition(capacity >= 1, "datagramBytesMax = \(datagramBytesMax) leaves no room after the fragment header")
        precondition(totalBytes + 1 > datagramBytesMax, "a frame of \(totalBytes) bytes fits in one whole datagram")
        let count = (totalBytes + capacity - 1) / capacity
        precondition(
            count <= DatagramCodec.fragmentsMax,
            "a frame of \(totalBytes) bytes needs \(count) fragments of \(capacity) bytes; at most \(DatagramCodec.fragmentsMax)"
        )
        // (count − 1)·capacity < total and pieceBytes ≤ capacity, so the last piece is not empty.
        guard let layout = FragmentLayout(totalBytes: totalBytes, count: count) else {
            preconditionFailure("no layout for \(totalBytes) bytes in \(count) fragments")
        }
        self = layout
    }

    /// Where fragment `index` (in `0 ..< count`) sits in the frame.
    public func byteRange(ofFragment index: Int) -> Range<Int> {
        precondition((0..<count).contains(index), "fragment \(index) of \(count)")
        let lower = index * pieceBytes
        return lower..<min(lower + pieceBytes, totalBytes)
    }
}

/// Identifies where datagrams come from; the runtime builds it from the source address
/// (`"host:port"`). Buffers and limits are per sender key.
public struct SenderKey: Hashable, Sendable, CustomStringConvertible {
    public var address: String

    public init(_ address: String) { self.address = address }

    public var description: String { address }
}

/// The bounds on what a `Reassembler` holds. Whatever arrives, it buffers at most
/// `sendersMax × bytesPerSenderMax` bytes of pieces, in at most
/// `sendersMax × messagesPerSenderMax` incomplete messages.
public struct ReassemblyLimits: Hashable, Sendable {
    /// Bytes of pieces of incomplete messages buffered for one sender.
    public var bytesPerSenderMax: Int
    /// Incomplete messages buffered for one sender.
    public var messagesPerSenderMax: Int
    /// Distinct senders with state: incomplete messages, or message IDs retired within the
    /// timeout. A new sender beyond it discards the least recently active one's state.
    public var sendersMax: Int
    /// Ticks after its first fragment arrived that an incomplete message is discarded
    /// (the default is 3 s at the runtime's 10 ms tick).
    public var timeoutTicks: UInt64
    /// Bytes of one frame; a fragment header claiming more is dropped before anything is
    /// buffered.
    public var frameBytesMax: Int

    public init(
        bytesPerSenderMax: Int = 48 << 20,
        messagesPerSenderMax: Int = 8,
        sendersMax: Int = 256,
        timeoutTicks: UInt64 = 300,
        frameBytesMax: Int = 32 << 20
    ) {
        self.bytesPerSenderMax = bytesPerSenderMax
        self.messagesPerSenderMax = messagesPerSenderMax
        self.sendersMax = sendersMax
        self.timeoutTicks = timeoutTicks
        self.frameBytesMax = frameBytesMax
    }

    public static let `default` = ReassemblyLimits()

    /// The most bytes of pieces a reassembler holds in all.
    public var bufferedBytesMax: Int { bytesPerSenderMax * sendersMax }

    public func validate() throws(ReassemblyLimitsError) {
        let framesMax = DatagramCodec.fragmentsMax * (DatagramCodec.udpPayloadBytesMax - FragmentHeader.byteCount)
        guard (0...framesMax).contains(frameBytesMax) else {
            throw .invalid("frameBytesMax = \(frameBytesMax) must be in 0...\(framesMax), what \(DatagramCodec.fragmentsMax) fragments can carry")
        }
        // One message always fits once the sender's other messages are evicted, so a
        // fragment that passes the header checks can always be buffered.
        guard bytesPerSenderMax >= frameBytesMax else {
            throw .invalid("bytesPerSenderMax = \(bytesPerSenderMax) must be at least frameBytesMax = \(frameBytesMax)")
        }
        guard messagesPerSenderMax >= 1 else { throw .invalid("messagesPerSenderMax must be at least 1") }
        guard sendersMax >= 1 else { throw .invalid("sendersMax must be at least 1") }
        guard timeoutTicks >= 1 else { throw .invalid("timeoutTicks must be at least 1") }
        guard !bytesPerSenderMax.multipliedReportingOverflow(by: sendersMax).overflow else {
            throw .invalid("sendersMax × bytesPerSenderMax = \(sendersMax) × \(bytesPerSenderMax) overflows")
        }
    }
}

public enum ReassemblyLimitsError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let reason): "invalid reassembly limits: \(reason)" }
    }
}

/// Why a datagram was dropped. Each is an ordinary event, counted, never a crash. UDP's
/// checksum catches most corruption, so most of these mean a faulty or hostile sender, or
/// a receive buffer smaller than the datagram (which truncates it).
public enum DatagramDropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// No bytes at all.
    case empty
    /// The first byte is neither `'P'`, `'F'` nor `'B'`.
    case unknownKind
    /// A fragment shorter than its header, or whose count and total length no sender could
    /// produce (see `FragmentLayout.init?(totalBytes:count:)`).
    case malformedHeader
    /// A whole frame, or a fragment's total length, above `frameBytesMax`.
    case tooLarge
    /// A fragment index out of range, a piece of the wrong size for its index, or a count or
    /// total length that differs from the message already buffered under that ID.
    case inconsistentFragment
    /// A fragment the message already has, or a fragment of a message completed within the
    /// timeout (the network or an attacker repeated it).
    case duplicateFragment
    /// A fragment of a message that was discarded, while the sender was at its limits, to
    /// make room for a newer one.
    case bufferFull
    /// A fragment of a message that was discarded because it was older than `timeoutTicks`.
    case expired
    /// A bundle that is not two or more whole frames, each of `bundledFrameBytesMin` to
    /// `frameBytesMax` bytes, with nothing after the last.
    case malformedBundle

    public var description: String {
        switch self {
        case .empty: "empty"
        case .unknownKind: "unknown kind"
        case .malformedHeader: "malformed header"
        case .tooLarge: "too large"
        case .inconsistentFragment: "inconsistent fragment"
        case .duplicateFragment: "duplicate fragment"
        case .bufferFull: "buffer full"
        case .expired: "expired"
        case .malformedBundle: "malformed bundle"
        }
    }
}

/// What one received datagram led to.
public enum ReassemblyResult: Hashable, Sendable, CustomStringConvertible {
    /// A whole frame: the datagram carried one, or it was the last missing fragment.
    case frame([UInt8])
    /// The frames of a bundle, in the order they were sent.
    case frames([[UInt8]])
    /// A fragment was buffered; its frame is not complete yet.
    case pending
    /// The datagram was dropped; nothing was buffered.
    case dropped(DatagramDropReason)

    /// The frames the datagram completed: none, one, or a bundle's.
    public var completed: [[UInt8]] {
        switch self {
        case .frame(let frame): [frame]
        case .frames(let frames): frames
        case .pending, .dropped: []
        }
    }

    /// A frame's length, not its bytes: this goes in logs and test failures.
    public var description: String {
        switch self {
        case .frame(let bytes): "frame of \(bytes.count) bytes"
        case .frames(let frames): "bundle of \(frames.count) frames"
        case .pending: "pending"
        case .dropped(let reason): "dropped: \(reason)"
        }
    }
}

/// Counts for metrics. Discarding a buffered message does not drop the datagram that
/// caused it, so discards are counted here, apart from the drop reasons.
public struct ReassemblyCounters: Hashable, Sendable {
    /// Datagrams dropped, by reason.
    public var dropped = [Int](repeating: 0, count: DatagramDropReason.allCases.count)
    /// Frames returned, whole or reassembled.
    public var frames = 0
    /// Frames reassembled from fragments.
    public var framesReassembled = 0
    /// Incomplete messages discarded to make room under their sender's own limits.
    public var messagesEvicted = 0
    /// Senders with incomplete messages that were discarded, messages and all, to make room
    /// for a new sender under `sendersMax`; and those messages.
    public var sendersEvicted = 0
    public var messagesEvictedWithSenders = 0
    /// Incomplete messages discarded because they were older than `timeoutTicks`.
    public var messagesExpired = 0

    public subscript(reason: DatagramDropReason) -> Int {
        get { dropped[reason.rawValue] }
        set { dropped[reason.rawValue] = newValue }
    }

    public var droppedTotal: Int { dropped.reduce(0, +) }
}

/// Puts fragmented frames back together, within `ReassemblyLimits` whatever arrives.
///
/// Rules, in the order they apply to a fragment:
/// 1. The header alone is checked (length, layout, `frameBytesMax`, index, piece size); a
///    fragment that fails is dropped before any state is touched.
/// 2. The sender's messages older than `timeoutTicks` are discarded. Age counts from a
///    message's first fragment, so a sender that trickles fragments cannot keep one alive.
/// 3. A fragment of a message the sender recently retired (completed, evicted or expired)
///    is dropped, so a late or repeated fragment cannot start a ghost message that would
///    take a slot, and an evicted message cannot come back and evict the next one.
/// 4. A fragment of a buffered message must agree with it on count and total length and
///    must not be a duplicate.
/// 5. Room is made within the sender's own limits by discarding that sender's oldest other
///    incomplete messages, so a sender that abandons messages cannot lock itself out. A
///    new sender beyond `sendersMax` discards the least recently active sender's state. No
///    other path discards another sender's messages.
///
/// Memory: pieces are kept as they arrive, so what is held follows what was received, not
/// what a header claims; `bufferedBytes` counts those piece bytes. On completion the frame
/// is copied out once and the pieces freed.
public struct Reassembler: Sendable {
    /// Message IDs a sender's entry remembers after their messages are retired, each for
    /// `timeoutTicks`: enough to cover the messages a sender can have in flight.
    public static let retiredPerSenderMax = 32

    public let limits: ReassemblyLimits
    /// Bytes of pieces of incomplete messages, all senders.
    public private(set) var bufferedBytes = 0
    /// Incomplete messages, all senders.
    public private(set) var incompleteMessages = 0
    public private(set) var counters = ReassemblyCounters()

    private var senders: [SenderKey: SenderBuffer] = [:]
    /// Stamps each accepted fragment, so "oldest" and "least recently active" are exact
    /// and deterministic even when many datagrams share a tick.
    private var arrivals: UInt64 = 0

    /// - Precondition: `limits.validate()` passes; limits are configuration, not input.
    public init(limits: ReassemblyLimits = .default) {
        do { try limits.validate() } catch { preconditionFailure("\(error)") }
        self.limits = limits
    }

    /// Senders with state: incomplete messages, or message IDs retired within the timeout.
    /// At most `sendersMax`.
    public var sendersTracked: Int { senders.count }

    /// Bytes of pieces buffered for `sender`.
    public func bufferedBytes(from sender: SenderKey) -> Int { senders[sender]?.bytes ?? 0 }

    /// Incomplete messages buffered for `sender`.
    public func incompleteMessages(from sender: SenderKey) -> Int { senders[sender]?.messages.count ?? 0 }

    /// Takes one datagram as it came off the socket. `now` is the caller's tick count; it
    /// should not go backwards (if it does, messages just look younger).
    /// `sender` is asked for only when it matters (a fragment, or a sender with fragments
    /// pending): a whole datagram from anyone else costs no key.
    public mutating func receive(_ datagram: [UInt8], from sender: @autoclosure () -> SenderKey, now: UInt64) -> ReassemblyResult {
        let result: ReassemblyResult =
            switch datagram.first.flatMap(DatagramKind.init(rawValue:)) {
            case .whole: receiveWhole(datagram, from: sender)
            case .fragment: receiveFragment(datagram, from: sender(), now: now)
            case .bundle: receiveBundle(datagram, from: sender)
            case nil: .dropped(datagram.isEmpty ? .empty : .unknownKind)
            }
        switch result {
        case .frame: counters.frames += 1
        case .frames(let frames): counters.frames += frames.count
        case .pending: break
        case .dropped(let reason): counters[reason] += 1
        }
        return result
    }

    /// Discards every incomplete message older than `timeoutTicks` at `now` and forgets
    /// retired IDs as old; returns how many messages. Call it on every tick: a message
    /// missing a fragment (UDP loses datagrams) is freed here, and the protocol's own
    /// retransmission sends the frame again.
    @discardableResult
    public mutating func expire(now: UInt64) -> Int {
        // The count does not depend on the dictionary's order.
        var expired = 0
        for key in Array(senders.keys) { expired += expire(sender: key, now: now) }
        return expired
    }

    // MARK: - Whole frames

    private mutating func receiveWhole(_ datagram: [UInt8], from key: () -> SenderKey) -> ReassemblyResult {
        guard datagram.count - 1 <= limits.frameBytesMax else { return .dropped(.tooLarge) }
        stillTalking(key)
        return .frame(Array(datagram[1...]))
    }

    private mutating func receiveBundle(_ datagram: [UInt8], from key: () -> SenderKey) -> ReassemblyResult {
        guard let frames = DatagramCodec.frames(ofBundle: datagram, frameBytesMax: limits.frameBytesMax) else { return .dropped(.malformedBundle) }
        stillTalking(key)
        return .frames(frames)
    }

    /// A sender that is still talking keeps its place against the sendersMax rule.
    private mutating func stillTalking(_ key: () -> SenderKey) {
        guard !senders.isEmpty else { return }
        let sender = key()
        if senders[sender] != nil {
            let stamp = nextArrival()
            senders[sender]?.lastArrival = stamp
        }
    }

    // MARK: - Fragments

    private mutating func receiveFragment(_ datagram: [UInt8], from sender: SenderKey, now: UInt64) -> ReassemblyResult {
        // Everything one datagram can be checked for on its own, before any state is touched.
        guard let header = FragmentHeader(decoding: datagram) else { return .dropped(.malformedHeader) }
        guard let totalBytes = Int(exactly: header.totalBytes), totalBytes <= limits.frameBytesMax else {
            return .dropped(.tooLarge)
        }
        guard let layout = FragmentLayout(totalBytes: totalBytes, count: Int(header.count)) else {
            return .dropped(.malformedHeader)
        }
        let index = Int(header.index)
        guard index < layout.count else { return .dropped(.inconsistentFragment) }
        let pieceBytes = datagram.count - FragmentHeader.byteCount
        guard pieceBytes == layout.byteRange(ofFragment: index).count else { return .dropped(.inconsistentFragment) }

        expire(sender: sender, now: now)
        var buffer = senders.removeValue(forKey: sender) ?? SenderBuffer()
        defer { if !buffer.isEmpty { senders[sender] = buffer } }

        if let retired = buffer.retired.last(where: { $0.id == header.messageID }) { return .dropped(retired.lateFragment) }
        var message: PartialMessage
        if let position = buffer.messages.firstIndex(where: { $0.id == header.messageID }) {
            // A message's layout is fixed by its first fragment; a piece under the same ID
            // that claims another layout could only misplace bytes.
            guard buffer.messages[position].layout == layout else { return .dropped(.inconsistentFragment) }
            guard !buffer.messages[position].has(index) else { return .dropped(.duplicateFragment) }
            message = buffer.messages.remove(at: position)
        } else {
            if buffer.isEmpty { makeRoomForSender(now: now) }
            while buffer.messages.count >= limits.messagesPerSenderMax { evictOldest(of: &buffer, now: now) }
            message = PartialMessage(id: header.messageID, layout: layout, startTick: now, arrival: nextArrival())
            incompleteMessages += 1
        }
        // `buffer.bytes` still counts `message`, whose pieces plus this one stay within its
        // total length; frameBytesMax ≤ bytesPerSenderMax, so evicting the others makes room.
        while buffer.bytes + pieceBytes > limits.bytesPerSenderMax { evictOldest(of: &buffer, now: now) }

        message.add(index: index, piece: datagram[FragmentHeader.byteCount...])
        buffer.bytes += pieceBytes
        bufferedBytes += pieceBytes
        buffer.lastArrival = nextArrival()

        guard message.isComplete else {
            buffer.messages.append(message)
            return .pending
        }
        buffer.bytes -= message.bytes
        bufferedBytes -= message.bytes
        incompleteMessages -= 1
        buffer.retire(message.id, now: now, lateFragment: .duplicateFragment)
        counters.framesReassembled += 1
        return .frame(message.assembled())
    }

    /// Discards `sender`'s messages older than the timeout and forgets its retired IDs as
    /// old; returns how many messages.
    @discardableResult
    private mutating func expire(sender: SenderKey, now: UInt64) -> Int {
        guard var buffer = senders.removeValue(forKey: sender) else { return 0 }
        let timeout = limits.timeoutTicks
        func isOld(_ tick: UInt64) -> Bool { now > tick && now - tick > timeout }
        buffer.retired.removeAll { isOld($0.tick) }
        var expired = [PartialMessage]()
        buffer.messages.removeAll { message in
            guard isOld(message.startTick) else { return false }
            expired.append(message)
            return true
        }
        for message in expired {
            buffer.bytes -= message.bytes
            bufferedBytes -= message.bytes
            buffer.retire(message.id, now: now, lateFragment: .expired)
        }
        incompleteMessages -= expired.count
        counters.messagesExpired += expired.count
        if !buffer.isEmpty { senders[sender] = buffer }
        return expired.count
    }

    /// Discards the oldest incomplete message in `buffer`.
    private mutating func evictOldest(of buffer: inout SenderBuffer, now: UInt64) {
        let messages = buffer.messages
        guard let oldest = messages.indices.min(by: { messages[$0].arrival < messages[$1].arrival }) else {
            preconditionFailure("a sender over its limits has no message to evict: limits \(limits)")
        }
        let message = buffer.messages.remove(at: oldest)
        buffer.bytes -= message.bytes
        bufferedBytes -= message.bytes
        incompleteMessages -= 1
        buffer.retire(message.id, now: now, lateFragment: .bufferFull)
        counters.messagesEvicted += 1
    }

    /// Makes room for one more sender under `sendersMax`: old state goes first, then the
    /// least recently active sender without incomplete messages, then the least recently
    /// active sender.
    private mutating func makeRoomForSender(now: UInt64) {
        guard senders.count >= limits.sendersMax else { return }
        expire(now: now)
        while senders.count >= limits.sendersMax {
            // Arrival stamps are distinct, so each minimum is the same whatever the
            // dictionary's order.
            let leastRecent = { (a: (key: SenderKey, value: SenderBuffer), b: (key: SenderKey, value: SenderBuffer)) in
                a.value.lastArrival < b.value.lastArrival
            }
            guard let (key, buffer) = senders.filter({ $0.value.messages.isEmpty }).min(by: leastRecent) ?? senders.min(by: leastRecent)
            else { return }
            senders[key] = nil
            guard !buffer.messages.isEmpty else { continue }
            bufferedBytes -= buffer.bytes
            incompleteMessages -= buffer.messages.count
            counters.sendersEvicted += 1
            counters.messagesEvictedWithSenders += buffer.messages.count
        }
    }

    private mutating func nextArrival() -> UInt64 {
        arrivals += 1
        return arrivals
    }
}

/// One sender's state: its incomplete messages (in no particular order; each carries its
/// arrival stamp) and the IDs it recently retired.
private struct SenderBuffer: Sendable {
    var messages: [PartialMessage] = []
    /// Oldest first, at most `Reassembler.retiredPerSenderMax`.
    var retired: [RetiredMessage] = []
    /// Bytes of pieces over `messages`.
    var bytes = 0
    /// Stamp of the sender's latest datagram, for the least-recently-active rule.
    var lastArrival: UInt64 = 0

    var isEmpty: Bool { messages.isEmpty && retired.isEmpty }

    mutating func retire(_ id: UInt64, now: UInt64, lateFragment: DatagramDropReason) {
        if retired.count >= Reassembler.retiredPerSenderMax { retired.removeFirst() }
        retired.append(RetiredMessage(id: id, tick: now, lateFragment: lateFragment))
    }
}

/// A message ID that is done with, and what a fragment that still arrives for it gets.
private struct RetiredMessage: Sendable {
    let id: UInt64
    let tick: UInt64
    let lateFragment: DatagramDropReason
}

/// The pieces of one frame received so far. Memory follows the bytes received: no
/// per-piece allocation, nothing sized by the claimed total until the frame is complete.
private struct PartialMessage: Sendable {
    let id: UInt64
    let layout: FragmentLayout
    /// The tick of the first fragment; the timeout counts from here.
    let startTick: UInt64
    /// Stamp of the first fragment; the smallest is the sender's oldest message.
    let arrival: UInt64
    /// One bit per fragment index: received or not.
    private var received: [UInt64]
    /// The full-size pieces (every index but the last) in arrival order, so the k-th to
    /// arrive starts at `k · pieceBytes`; `order[k]` is its index.
    private var storage: [UInt8] = []
    private var order: [UInt16] = []
    private var lastPiece: [UInt8] = []

    init(id: UInt64, layout: FragmentLayout, startTick: UInt64, arrival: UInt64) {
        self.id = id
        self.layout = layout
        self.startTick = startTick
        self.arrival = arrival
        received = [UInt64](repeating: 0, count: (layout.count + 63) / 64)
    }

    var bytes: Int { storage.count + lastPiece.count }
    var isComplete: Bool { order.count == layout.count - 1 && !lastPiece.isEmpty }

    func has(_ index: Int) -> Bool { received[index / 64] & (1 << UInt64(index % 64)) != 0 }

    mutating func add(index: Int, piece: ArraySlice<UInt8>) {
        precondition(!has(index) && piece.count == layout.byteRange(ofFragment: index).count, "fragment \(index) of message \(id)")
        precondition(bytes + piece.count <= layout.totalBytes, "message \(id) outgrew its total length")
        received[index / 64] |= 1 << UInt64(index % 64)
        if index == layout.count - 1 {
            lastPiece = Array(piece)
        } else {
            order.append(UInt16(index))
            storage.append(contentsOf: piece)
        }
    }

    /// The frame, pieces in index order. Every index is present once and every piece has
    /// its layout's size, so the result is exactly `totalBytes` long.
    func assembled() -> [UInt8] {
        precondition(isComplete, "message \(id) is not complete")
        let pieceBytes = layout.pieceBytes
        var arrivalOf = [Int](repeating: 0, count: layout.count - 1)
        for (k, index) in order.enumerated() { arrivalOf[Int(index)] = k }
        var frame = [UInt8]()
        frame.reserveCapacity(layout.totalBytes)
        for k in arrivalOf { frame.append(contentsOf: storage[k * pieceBytes..<(k + 1) * pieceBytes]) }
        frame.append(contentsOf: lastPiece)
        precondition(frame.count == layout.totalBytes, "message \(id) assembled to \(frame.count) of \(layout.totalBytes) bytes")
        return frame
    }
}
