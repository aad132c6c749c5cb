/// Signs bytes as one principal. The production signer is Ed25519 (PBFTCrypto); the
/// simulator may plug in a fast deterministic scheme with the same property that each
/// principal can sign only as itself.
public protocol MessageSigner: Sendable {
    var principal: Principal { get }
    func sign(_ bytes: [UInt8]) -> Signature
}

/// Checks a detached signature against a public key.
public protocol SignatureVerifier: Sendable {
    func isValid(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Bool
}

/// A collision-resistant digest (SHA-256 in production), injected into the core so that it
/// stays free of crypto libraries while computing batch and state digests.
public protocol MessageDigester: Sendable {
    func digest(_ bytes: [UInt8]) -> Digest
}

/// Envelopes whose signatures, nested ones included, were verified before (PBFTCrypto's
/// `SignatureMemo`): an envelope seen again costs a lookup instead of signature checks. A
/// key binds the signed bytes, the signature and the public key; the authenticator inserts
/// one only after the whole envelope checked out.
public protocol VerifiedSignatures: AnyObject, Sendable {
    func key(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Digest
    func contains(_ key: Digest) -> Bool
    func insert(_ key: Digest)
}

/// Who holds which public key in which epoch.
public protocol KeyDirectory: Sendable {
    func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey?
}

/// Why a received byte string was not accepted as an authenticated frame. Each case is an
/// ordinary event for the receiver: counted, logged, dropped.
public enum Rejection: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(WireError)
    /// No key is known for this signer in this epoch.
    case unknownSigner(Principal, Epoch)
    /// A signature (of the envelope or of one nested in it, named by `field`) does not verify.
    case badSignature(Principal, field: String)

    public var description: String {
        switch self {
        case .malformed(let error): "malformed: \(error)"
        case .unknownSigner(let principal, let epoch): "unknown signer \(principal) in \(epoch)"
        case .badSignature(let principal, let field): "bad signature by \(principal) on \(field)"
        }
    }
}

/// A value all of whose signatures, nested ones included, have been verified. Only
/// `Authenticator` makes one, so unverified bytes cannot reach the protocol core.
public struct Authenticated<Value: Sendable>: Sendable {
    public let value: Value
    fileprivate init(verified value: Value) { self.value = value }
}

extension Authenticated: Equatable where Value: Equatable {}

/// Decodes frames and verifies every signature in them: the envelope's, each request in a
/// pre-prepare's batch, each checkpoint and certificate in a view-change, each view-change
/// and pre-prepare in a new view. What it returns may be trusted to be signed as it says;
/// whether it makes sense is the core's question.
public struct Authenticator<Verifier: SignatureVerifier, Keys: KeyDirectory>: Sendable {
    public let verifier: Verifier
    public let keys: Keys
    public let limits: WireLimits
    /// Envelopes verified before (shared by the authenticators a receiver makes over time).
    public let memo: (any VerifiedSignatures)?

    public init(verifier: Verifier, keys: Keys, limits: WireLimits = .default, memo: (any VerifiedSignatures)? = nil) {
        self.verifier = verifier
        self.keys = keys
        self.limits = limits
        self.memo = memo
    }

    /// Decodes `bytes` as a frame and verifies it.
    public func open(_ bytes: [UInt8]) throws(Rejection) -> Authenticated<Frame> {
        let frame: Frame
        do { frame = try Frame.decode(bytes, limits: limits) } catch { throw .malformed(error) }
        return try authenticate(frame)
    }

    /// Verifies a frame that is already decoded (the simulator's path when it skips bytes).
    public func authenticate(_ frame: Frame) throws(Rejection) -> Authenticated<Frame> {
        try verify(frame.envelope, field: "envelope")
        for request in frame.batch { try verify(request, field: "batch") }
        return Authenticated(verified: frame)
    }

    private func verify(_ envelope: Envelope, field: String) throws(Rejection) {
        guard let key = keys.publicKey(of: envelope.sender, epoch: envelope.epoch) else {
            throw .unknownSigner(envelope.sender, envelope.epoch)
        }
        let bytes = envelope.signedBytes
        let memoKey = envelope.message.seenAgain ? memo?.key(envelope.signature, of: bytes, by: key) : nil
        // These very bytes, nested envelopes included, checked out before.
        if let memoKey, memo?.contains(memoKey) == true { return }
        guard verifier.isValid(envelope.signature, of: bytes, by: key) else {
            throw .badSignature(envelope.sender, field: field)
        }
        switch envelope.message {
        case .viewChange(let viewChange):
            for checkpoint in viewChange.checkpointProof { try verify(checkpoint, field: field + ".C") }
            for certificate in viewChange.prepared {
                try verify(certificate.prePrepare, field: field + ".P.prePrepare")
                for request in certificate.batch { try verify(request, field: field + ".P.batch") }
                for prepare in certificate.prepares { try verify(prepare, field: field + ".P.prepares") }
            }
        case .newView(let newView):
            for viewChange in newView.viewChanges { try verify(viewChange, field: field + ".V") }
            for prePrepare in newView.prePrepares { try verify(prePrepare, field: field + ".O") }
        case .request, .reconfiguration, .prePrepare, .prepare, .commit, .reply, .checkpoint, .stateRequest, .stateChunk, .status, .control, .controlReply,
             .epochAnnouncement:
            break
        }
        if let memoKey { memo?.insert(memoKey) }
    }
}

extension Message {
    /// Whether a receiver is likely to get these signed bytes more than once: nested in
    /// another message or retransmitted unchanged, or (a reply root) sent to every client of
    /// a batch, which clients of one process check once through their shared memo. Only
    /// those are worth remembering.
    var seenAgain: Bool {
        switch self {
        case .request, .reconfiguration, .prePrepare, .prepare, .commit, .reply, .checkpoint, .viewChange, .newView: true
        case .stateRequest, .stateChunk, .status, .control, .controlReply, .epochAnnouncement: false
        }
    }
}
