/// How many requests per second the signatures alone allow: the cost in CPU of every
/// Ed25519 signature and verification one request takes in PBFT's normal case, on `cores`
/// cores that do nothing else (docs/performance.md). Everything else (hashing, the network,
/// the write-ahead log, the protocol's own work) comes on top, so a run reaches a fraction
/// of it.
///
/// Per request: the client signs the request, each of the n replicas verifies it once, each
/// replica signs its reply, and the client verifies f+1 replies. Per batch of b requests:
/// the primary signs the pre-prepare and the n-1 backups verify it; each backup signs a
/// prepare that the other n-1 replicas verify; each of the n replicas signs a commit that
/// the other n-1 verify. Those costs are shared by the b requests of the batch.
///
/// That is the paper's protocol and the model (`replies: .each`). This
/// implementation signs one reply root per executed batch (docs/protocol.md, "Replies"):
/// with `replies: .perBatch` the n reply signatures move from each request to each batch.
/// Clients of one process that share a memo of verified signatures (`clientsShareRoots`,
/// the benchmark's) then check f+1 reply roots per batch between them instead of f+1 per
/// request: the fewest a batch's clients can check, so the ceiling is the highest.
public struct CryptoCeiling: Sendable, Equatable {
    /// How the replicas sign their replies.
    public enum Replies: String, Sendable, Codable {
        /// One signature per reply (the paper's `<REPLY, ...>σi`).
        case each
        /// One signature per executed batch, over the Merkle root of its replies.
        case perBatch = "per_batch"
    }

    public var cores: Double
    public var signMicroseconds: Double
    public var verifyMicroseconds: Double
    public var replicas: Int
    /// Requests per batch (may be fractional: an average).
    public var batchSize: Double
    public var replies: Replies
    /// The clients verify each reply root once between them (only with `replies: .perBatch`).
    public var clientsShareRoots: Bool

    public init(
        cores: Double, signMicroseconds: Double, verifyMicroseconds: Double, replicas: Int, batchSize: Double, replies: Replies = .each,
        clientsShareRoots: Bool = false
    ) {
        precondition(cores > 0 && signMicroseconds > 0 && verifyMicroseconds > 0, "costs and cores must be positive")
        precondition(replicas >= 1 && batchSize >= 1, "at least one replica and one request per batch")
        precondition(!clientsShareRoots || replies == .perBatch, "clients share reply roots only when a batch's replies have one")
        self.cores = cores
        self.signMicroseconds = signMicroseconds
        self.verifyMicroseconds = verifyMicroseconds
        self.replicas = replicas
        self.batchSize = batchSize
        self.replies = replies
        self.clientsShareRoots = clientsShareRoots
    }

    public var f: Int { (replicas - 1) / 3 }

    /// Reply signatures (or roots) a client verifies: f+1.
    var repliesVerified: Int { f + 1 }

    /// Signatures and verifications each request causes by itself: the request and the replies.
    public var perRequest: (signs: Int, verifies: Int) {
        (1 + (replies == .each ? replicas : 0), replicas + (clientsShareRoots ? 0 : repliesVerified))
    }

    /// Signatures and verifications each batch causes: pre-prepare, prepares, commits (and
    /// the reply roots, when replies are signed per batch, and the clients' checks of them
    /// when they share those).
    public var perBatch: (signs: Int, verifies: Int) {
        let n = replicas
        return (1 + (n - 1) + n + (replies == .perBatch ? n : 0),
                (n - 1) + (n - 1) * (n - 1) + n * (n - 1) + (clientsShareRoots ? repliesVerified : 0))
    }

    /// Signatures and verifications per request, each batch's shared by its requests.
    public var signsPerRequest: Double { Double(perRequest.signs) + Double(perBatch.signs) / batchSize }
    public var verifiesPerRequest: Double { Double(perRequest.verifies) + Double(perBatch.verifies) / batchSize }

    /// CPU microseconds of signing and verifying per request.
    public var microsecondsPerRequest: Double {
        let s = signMicroseconds, v = verifyMicroseconds
        let request = s * Double(perRequest.signs) + v * Double(perRequest.verifies)
        let batch = s * Double(perBatch.signs) + v * Double(perBatch.verifies)
        return request + batch / batchSize
    }

    /// The part of `microsecondsPerRequest` the replicas spend: every signature and
    /// verification but the client's own (it signs the request, verifies f+1 replies).
    public var replicaMicrosecondsPerRequest: Double {
        microsecondsPerRequest - clientMicrosecondsPerRequest
    }

    public var clientMicrosecondsPerRequest: Double {
        signMicroseconds + verifyMicroseconds * Double(repliesVerified) / (clientsShareRoots ? batchSize : 1)
    }

    /// The ceiling: requests per second with every core doing nothing but this crypto.
    public var requestsPerSecond: Double { cores * 1e6 / microsecondsPerRequest }
}
