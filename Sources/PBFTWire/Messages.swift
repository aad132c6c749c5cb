/// `<REQUEST, o, t, c>σc` (§4.1): a client asks for operation `o` at timestamp `t`.
/// The client `c` is the envelope's sender.
public struct Request: Hashable, Sendable {
    public var timestamp: Timestamp
    /// Opaque to the protocol; the application decodes it.
    public var operation: [UInt8]

    public init(timestamp: Timestamp, operation: [UInt8]) {
        self.timestamp = timestamp
        self.operation = operation
    }
}

/// A replica as a reconfiguration names it: identity, UDP address and public key.
public struct ReplicaDescriptor: Hashable, Sendable {
    /// A host is 1 to `hostBytesMax` ASCII letters, digits and `. - _ : [ ]` (names, IPv4,
    /// bracketed IPv6). ASCII only, so equal hosts are equal bytes: Swift compares other
    /// strings by Unicode equivalence, which would let two different encodings match.
    public static func isValidHost(_ host: String, limit: Int = WireLimits.default.hostBytesMax) -> Bool {
        let bytes = host.utf8
        guard (1...limit).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"): true
            default: false
            }
        }
    }

    public var id: ReplicaID
    public var host: String
    public var port: UInt16
    public var publicKey: PublicKey

    public init(id: ReplicaID, host: String, port: UInt16, publicKey: PublicKey) {
        self.id = id
        self.host = host
        self.port = port
        self.publicKey = publicKey
    }
}

/// A change of membership, signed by the operator and ordered like any request; it takes
/// effect at the next checkpoint boundary as a new epoch.
public enum ReconfigurationChange: Hashable, Sendable {
    case addReplica(ReplicaDescriptor)
    case removeReplica(ReplicaID)
    case replaceReplica(old: ReplicaID, new: ReplicaDescriptor)
    case setFaultTolerance(UInt32)
}

/// An operator-signed reconfiguration request; the timestamp orders the operator's
/// requests exactly as a client's timestamps order a client's.
public struct Reconfiguration: Hashable, Sendable {
    public var timestamp: Timestamp
    public var change: ReconfigurationChange

    public init(timestamp: Timestamp, change: ReconfigurationChange) {
        self.timestamp = timestamp
        self.change = change
    }
}

/// A client allowed to send requests, and the key its requests are signed with.
public struct ClientKey: Hashable, Sendable {
    public var id: ClientID
    public var publicKey: PublicKey
    public init(id: ClientID, publicKey: PublicKey) {
        self.id = id
        self.publicKey = publicKey
    }
}

/// A configuration epoch as the wire carries it: its replicas, clients, operator key and f.
/// Lists are in id order, so one configuration has one encoding (and one digest).
public struct ConfigurationRecord: Hashable, Sendable {
    public var epoch: Epoch
    public var f: UInt32
    public var replicas: [ReplicaDescriptor]
    public var clients: [ClientKey]
    public var operatorKey: PublicKey

    public init(epoch: Epoch, f: UInt32, replicas: [ReplicaDescriptor], clients: [ClientKey], operatorKey: PublicKey) {
        self.epoch = epoch
        self.f = f
        self.replicas = replicas
        self.clients = clients
        self.operatorKey = operatorKey
    }
}

/// A replica tells a client (or the operator) that signed for an epoch that is no longer in
/// force which configuration followed it, and from which sequence number. It is signed in
/// the epoch the client knows, by a replica that was a member of it: f+1 matching
/// announcements from distinct members include one from a correct replica, so no single
/// replica can lie about the new configuration.
public struct EpochAnnouncement: Hashable, Sendable {
    public var configuration: ConfigurationRecord
    public var firstSequence: SequenceNumber

    public init(configuration: ConfigurationRecord, firstSequence: SequenceNumber) {
        self.configuration = configuration
        self.firstSequence = firstSequence
    }
}

/// `<PRE-PREPARE, v, n, d>σp` (§4.2). The batch whose digest is `d` travels beside the
/// signed message (see `Frame`), as the paper piggybacks `m`: certificates then carry
/// the pre-prepare without the requests.
public struct PrePrepare: Hashable, Sendable {
    public var view: ViewNumber
    public var sequence: SequenceNumber
    public var batchDigest: Digest

    public init(view: ViewNumber, sequence: SequenceNumber, batchDigest: Digest) {
        self.view = view
        self.sequence = sequence
        self.batchDigest = batchDigest
    }
}

/// `<PREPARE, v, n, d, i>σi` and `<COMMIT, v, n, D(m), i>σi` share this shape (§4.2).
public struct Vote: Hashable, Sendable {
    public var view: ViewNumber
    public var sequence: SequenceNumber
    public var batchDigest: Digest

    public init(view: ViewNumber, sequence: SequenceNumber, batchDigest: Digest) {
        self.view = view
        self.sequence = sequence
        self.batchDigest = batchDigest
    }
}

/// `<REPLY, v, t, c, i, r>` (§4.1): the answer to one request. A replica does not sign it
/// alone: it is a leaf of the tree whose `ReplyRoot` the replica signs once for all the
/// replies of an executed batch, and it travels in its frame as a `ProvenReply`.
public struct Reply: Hashable, Sendable {
    public var view: ViewNumber
    public var timestamp: Timestamp
    /// The client (or the operator) whose request this answers.
    public var requester: Principal
    public var result: [UInt8]

    public init(view: ViewNumber, timestamp: Timestamp, requester: Principal, result: [UInt8]) {
        self.view = view
        self.timestamp = timestamp
        self.requester = requester
        self.result = result
    }
}

/// `<REPLY-ROOT, r, m, i>σi`: replica `i` (the envelope's sender) vouches for every reply
/// of one executed batch with one signature: `root` is the Merkle root over the batch's `m`
/// replies in execution order (`ReplyTree`: RFC 6962's shape, with leaf and inner hashes
/// kept apart). docs/protocol.md ("Replies") gives the security argument.
public struct ReplyRoot: Hashable, Sendable {
    public var root: Digest
    /// Replies in the tree (at least 1).
    public var leaves: UInt32

    public init(root: Digest, leaves: UInt32) {
        self.root = root
        self.leaves = leaves
    }
}

/// One reply with the Merkle path that leads from it to the signed `ReplyRoot` of its
/// frame: the sibling hashes from the leaf up (a node with no sibling at a level adds none).
public struct ProvenReply: Hashable, Sendable {
    public var reply: Reply
    /// Its position among the batch's replies (below `ReplyRoot.leaves`).
    public var index: UInt32
    public var path: [Digest]

    public init(reply: Reply, index: UInt32, path: [Digest]) {
        self.reply = reply
        self.index = index
        self.path = path
    }
}

/// `<CHECKPOINT, n, d, i>σi` (§4.3): replica `i` executed through `n` and its state
/// (application and reply cache) has digest `d`.
public struct Checkpoint: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var stateDigest: Digest

    public init(sequence: SequenceNumber, stateDigest: Digest) {
        self.sequence = sequence
        self.stateDigest = stateDigest
    }
}

/// Proof that a request prepared (§4.4): the pre-prepare (signed by the primary of its
/// view), the batch it orders, and 2f matching prepares from distinct backups.
public struct PreparedCertificate: Hashable, Sendable {
    /// An envelope holding a `.prePrepare`.
    public var prePrepare: Envelope
    /// Client-signed request envelopes whose digest is the pre-prepare's.
    public var batch: [Envelope]
    /// Envelopes holding `.prepare` votes matching the pre-prepare.
    public var prepares: [Envelope]

    public init(prePrepare: Envelope, batch: [Envelope], prepares: [Envelope]) {
        self.prePrepare = prePrepare
        self.batch = batch
        self.prepares = prepares
    }
}

/// `<VIEW-CHANGE, v+1, n, C, P, i>σi` (§4.4).
public struct ViewChange: Hashable, Sendable {
    public var newView: ViewNumber
    /// `n`: the sequence number of the sender's last stable checkpoint.
    public var stableSequence: SequenceNumber
    /// `C`: 2f+1 checkpoint envelopes proving that checkpoint stable.
    public var checkpointProof: [Envelope]
    /// `P`: a certificate for each request prepared above `n`.
    public var prepared: [PreparedCertificate]

    public init(newView: ViewNumber, stableSequence: SequenceNumber, checkpointProof: [Envelope], prepared: [PreparedCertificate]) {
        self.newView = newView
        self.stableSequence = stableSequence
        self.checkpointProof = checkpointProof
        self.prepared = prepared
    }
}

/// `<NEW-VIEW, v+1, V, O>σp` (§4.4).
public struct NewView: Hashable, Sendable {
    public var view: ViewNumber
    /// `V`: the 2f+1 view-change envelopes the new primary collected.
    public var viewChanges: [Envelope]
    /// `O`: pre-prepare envelopes for the new view, each signed by the new primary; a null
    /// request has `Digest.zero` as its batch digest. Their batches are in `V`'s certificates.
    public var prePrepares: [Envelope]

    public init(view: ViewNumber, viewChanges: [Envelope], prePrepares: [Envelope]) {
        self.view = view
        self.viewChanges = viewChanges
        self.prePrepares = prePrepares
    }
}

/// A request for one chunk of the state at a stable checkpoint.
public struct StateRequest: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var stateDigest: Digest
    public var chunkIndex: UInt32

    public init(sequence: SequenceNumber, stateDigest: Digest, chunkIndex: UInt32) {
        self.sequence = sequence
        self.stateDigest = stateDigest
        self.chunkIndex = chunkIndex
    }
}

/// One chunk of the snapshot at a stable checkpoint. The receiver checks the whole
/// snapshot against the certified `stateDigest` before installing it.
public struct StateChunk: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var stateDigest: Digest
    public var chunkIndex: UInt32
    public var chunkCount: UInt32
    public var totalBytes: UInt64
    public var bytes: [UInt8]

    public init(sequence: SequenceNumber, stateDigest: Digest, chunkIndex: UInt32, chunkCount: UInt32, totalBytes: UInt64, bytes: [UInt8]) {
        self.sequence = sequence
        self.stateDigest = stateDigest
        self.chunkIndex = chunkIndex
        self.chunkCount = chunkCount
        self.totalBytes = totalBytes
        self.bytes = bytes
    }
}

/// A replica's progress, broadcast when it seems stuck or behind, so peers resend what it
/// lacks (pre-prepares with batches, their own prepares, commits and checkpoints). Datagrams
/// get lost; this is how a replica that missed messages catches up while the others still
/// hold the log it needs.
public struct Status: Hashable, Sendable {
    public var view: ViewNumber
    /// The sender's low water mark h (its last stable checkpoint).
    public var stableSequence: SequenceNumber
    public var lastExecuted: SequenceNumber
    /// True while the sender has sent a VIEW-CHANGE for `view` but not accepted its NEW-VIEW.
    public var viewChanging: Bool
    /// True while the sender is passive after amnesia: it signs nothing until its stable
    /// checkpoint passes the one a quorum reported plus the window, so an idle cluster must
    /// order null requests for it to rejoin.
    public var passive: Bool
    /// True while the sender suspects the primary of `view` (its view-change timer expired,
    /// or that primary proved faulty) and asks for view + 1. A suspicion commits the sender
    /// to nothing: it keeps working in `view` until a quorum asks for view + 1.
    public var suspecting: Bool

    public init(
        view: ViewNumber, stableSequence: SequenceNumber, lastExecuted: SequenceNumber,
        viewChanging: Bool = false, passive: Bool = false, suspecting: Bool = false
    ) {
        self.view = view
        self.stableSequence = stableSequence
        self.lastExecuted = lastExecuted
        self.viewChanging = viewChanging
        self.passive = passive
        self.suspecting = suspecting
    }
}

/// An operator-signed command to one replica's control endpoint, or to a testbed launcher.
/// Handled by the replica process, never by the protocol core. The signature binds it to
/// its target (a replica id, or a launcher's run) and to the epoch the envelope names, so a
/// copy sent to another replica, another launch or a replica in another epoch is refused;
/// its timestamp must be above the last one the target accepted and close to the target's
/// clock, so a recorded command cannot be replayed (docs/runtime.md, *Control security*).
public struct Control: Hashable, Sendable {
    public enum Command: UInt8, CaseIterable, Hashable, Sendable, CustomStringConvertible {
        /// Report view, progress, water marks and counters.
        case status = 1
        /// Stop gracefully (as SIGTERM does).
        case stop = 2
        /// Switch a Byzantine behaviour on (argument: its name) or off ("off"); only obeyed
        /// by a replica started with `--allow-byzantine`.
        case byzantine = 3
        /// A command for the testbed's launcher (argument: its JSON, docs/faults.md); replicas
        /// refuse it. The launcher answers with a CONTROL-REPLY signed by the operator's key.
        case launcher = 4

        public var description: String {
            switch self {
            case .status: "status"
            case .stop: "stop"
            case .byzantine: "byzantine"
            case .launcher: "launcher"
            }
        }

        /// Whether carrying it out changes what the target does: such a command waits until
        /// the target's high mark of accepted timestamps is durable (a status report does not).
        public var changesState: Bool {
            switch self {
            case .stop, .byzantine: true
            case .status, .launcher: false
            }
        }
    }

    /// Whom a command is for. The kind byte is part of the wire format: never renumbered.
    public enum Target: Hashable, Sendable, CustomStringConvertible {
        /// One replica's control endpoint (kind 1, then the `u32` id).
        case replica(ReplicaID)
        /// The launcher of one run (kind 2, then the 16-byte run id).
        case launcher(RunID)

        public var kind: UInt8 {
            switch self {
            case .replica: 1
            case .launcher: 2
            }
        }

        public var description: String {
            switch self {
            case .replica(let id): "replica \(id.rawValue)"
            case .launcher(let run): "the launcher of run \(run)"
            }
        }
    }

    public var timestamp: Timestamp
    public var target: Target
    public var command: Command
    /// Command-specific bytes (none for status and stop; later hooks use it).
    public var argument: [UInt8]

    public init(timestamp: Timestamp, target: Target, command: Command, argument: [UInt8] = []) {
        self.timestamp = timestamp
        self.target = target
        self.command = command
        self.argument = argument
    }
}

/// The answer to a control command, signed by the replica that answers (or, from a launcher,
/// with the operator's key): whether it was carried out, the answerer's epoch, and a body
/// (JSON for status, a reason when refused). A replica also sends one, refused, to whoever
/// sent a reconfiguration whose signature did not verify.
public struct ControlReply: Hashable, Sendable {
    /// The outcome byte. Values are part of the wire format: never renumbered.
    public enum Outcome: UInt8, CaseIterable, Hashable, Sendable {
        case refused = 0
        case done = 1
        /// Refused because the command was signed for another epoch than the answerer's:
        /// sign it again in the reply's `epoch`.
        case wrongEpoch = 2
    }

    public var timestamp: Timestamp
    public var outcome: Outcome
    /// The answerer's epoch in force (a launcher's: the epoch it last saw begin).
    public var epoch: Epoch
    public var body: [UInt8]

    public var accepted: Bool { outcome == .done }

    public init(timestamp: Timestamp, outcome: Outcome, epoch: Epoch, body: [UInt8]) {
        self.timestamp = timestamp
        self.outcome = outcome
        self.epoch = epoch
        self.body = body
    }
}

/// Every message of the protocol. The case decides the message type byte on the wire.
public enum Message: Hashable, Sendable {
    case request(Request)
    case reconfiguration(Reconfiguration)
    case prePrepare(PrePrepare)
    case prepare(Vote)
    case commit(Vote)
    case reply(ReplyRoot)
    case checkpoint(Checkpoint)
    case viewChange(ViewChange)
    case newView(NewView)
    case stateRequest(StateRequest)
    case stateChunk(StateChunk)
    case status(Status)
    case control(Control)
    case controlReply(ControlReply)
    case epochAnnouncement(EpochAnnouncement)

    public var type: MessageType {
        switch self {
        case .request: .request
        case .reconfiguration: .reconfiguration
        case .prePrepare: .prePrepare
        case .prepare: .prepare
        case .commit: .commit
        case .reply: .reply
        case .checkpoint: .checkpoint
        case .viewChange: .viewChange
        case .newView: .newView
        case .stateRequest: .stateRequest
        case .stateChunk: .stateChunk
        case .status: .status
        case .control: .control
        case .controlReply: .controlReply
        case .epochAnnouncement: .epochAnnouncement
        }
    }
}

/// The message type byte. Values are part of the wire format: never renumber.
public enum MessageType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case request = 1
    case reconfiguration = 2
    case prePrepare = 3
    case prepare = 4
    case commit = 5
    case reply = 6
    case checkpoint = 7
    case viewChange = 8
    case newView = 9
    case stateRequest = 10
    case stateChunk = 11
    case status = 12
    case control = 13
    case controlReply = 14
    case epochAnnouncement = 15

    public var description: String {
        switch self {
        case .request: "request"
        case .reconfiguration: "reconfiguration"
        case .prePrepare: "pre-prepare"
        case .prepare: "prepare"
        case .commit: "commit"
        case .reply: "reply"
        case .checkpoint: "checkpoint"
        case .viewChange: "view-change"
        case .newView: "new-view"
        case .stateRequest: "state-request"
        case .stateChunk: "state-chunk"
        case .status: "status"
        case .control: "control"
        case .controlReply: "control-reply"
        case .epochAnnouncement: "epoch-announcement"
        }
    }

    /// Who may send a message of this type: clients send requests, the operator sends
    /// reconfigurations and control commands (and, as a launcher, control replies),
    /// replicas send everything else but requests, reconfigurations and control commands.
    public func accepts(_ sender: Principal) -> Bool {
        switch (self, sender) {
        case (.request, .client): true
        case (.reconfiguration, .operator), (.control, .operator), (.controlReply, .operator): true
        case (.request, _), (.reconfiguration, _), (.control, _): false
        case (_, .replica): true
        default: false
        }
    }
}

/// A signed message: the unit that is signed, verified, nested in certificates and sent.
/// The signature covers the exact bytes `Envelope.signedBytes` produces (version, type,
/// sender, epoch, payload length, payload).
public struct Envelope: Hashable, Sendable {
    public var sender: Principal { didSet { signed = nil } }
    public var epoch: Epoch { didSet { signed = nil } }
    public var message: Message { didSet { signed = nil } }
    public var signature: Signature
    /// The signed bytes as they were decoded or sealed, so that checking the signature, the
    /// memo's key, digests and sending do not encode them again. The encoding is canonical,
    /// so they are exactly what encoding the fields gives; changing a field they cover drops
    /// them. Not part of the value: equality and hashing ignore them.
    var signed: [UInt8]?

    public init(sender: Principal, epoch: Epoch, message: Message, signature: Signature) {
        self.sender = sender
        self.epoch = epoch
        self.message = message
        self.signature = signature
    }

    init(sender: Principal, epoch: Epoch, message: Message, signature: Signature, signed: [UInt8]) {
        self.init(sender: sender, epoch: epoch, message: message, signature: signature)
        self.signed = signed
    }

    public static func == (a: Envelope, b: Envelope) -> Bool {
        a.sender == b.sender && a.epoch == b.epoch && a.signature == b.signature && a.message == b.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(sender)
        hasher.combine(epoch)
        hasher.combine(message)
        hasher.combine(signature)
    }
}

/// What one datagram (or one reassembled message) carries: an envelope and, only for a
/// pre-prepare, the batch of client-signed requests it orders, outside the primary's
/// signature (the batch digest inside it authenticates the batch); only for a reply root,
/// the one reply it answers with its Merkle path, outside the replica's signature (the root
/// authenticates it).
public struct Frame: Hashable, Sendable {
    public var envelope: Envelope
    public var batch: [Envelope]
    public var reply: ProvenReply?

    public init(envelope: Envelope, batch: [Envelope] = [], reply: ProvenReply? = nil) {
        self.envelope = envelope
        self.batch = batch
        self.reply = reply
    }
}
