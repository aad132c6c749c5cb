public import PBFTWire

/// The membership of one configuration epoch: its replicas (with addresses and keys), the
/// clients allowed to send requests, the operator's key, and the fault threshold `f`.
///
/// Replicas are kept sorted by id; the primary of view `v` is the replica at index
/// `v mod n` of that order (§4.1: `p = v mod |R|`), so ids need not be dense.
public struct Membership: Hashable, Sendable {
    public let epoch: Epoch
    public let f: Int
    public let replicas: [ReplicaDescriptor]
    /// Sorted by client id.
    public let clients: [ClientKey]
    public let operatorKey: PublicKey

    public typealias ClientKey = PBFTWire.ClientKey

    /// Checks every rule of a configuration and sorts the lists; throws the first rule broken.
    public init(epoch: Epoch, f: Int, replicas: [ReplicaDescriptor], clients: [ClientKey], operatorKey: PublicKey) throws(MembershipError) {
        let replicas = replicas.sorted { $0.id < $1.id }
        let clients = clients.sorted { $0.id < $1.id }
        guard f >= 1 else { throw .faultToleranceTooSmall(f) }
        // §4: n >= 3f+1 replicas tolerate f faulty ones.
        guard replicas.count >= 3 * f + 1 else { throw .tooFewReplicas(n: replicas.count, f: f) }
        if let id = Self.firstDuplicate(replicas.map(\.id)) { throw .duplicateReplicaID(id) }
        if let address = Self.firstDuplicate(replicas.map { "\($0.host):\($0.port)" }) { throw .duplicateAddress(address) }
        if let id = Self.firstDuplicate(clients.map(\.id)) { throw .duplicateClientID(id) }
        let keys = replicas.map(\.publicKey) + clients.map(\.publicKey) + [operatorKey]
        if let key = Self.firstDuplicate(keys) { throw .duplicatePublicKey(key) }
        self.epoch = epoch
        self.f = f
        self.replicas = replicas
        self.clients = clients
        self.operatorKey = operatorKey
    }

    /// `n`, the number of replicas.
    public var n: Int { replicas.count }
    /// The quorum of this epoch: prepared (the pre-prepare and `quorum - 1` prepares),
    /// committed-local, stable checkpoint, VIEW-CHANGE set, amnesia reports.
    ///
    /// PBFT's safety rests on one fact: any two quorums share a correct replica, so two
    /// quorums can never vouch for conflicting things. Two sets of q replicas out of n share
    /// at least 2q - n of them, and up to f of those may be faulty, so q must satisfy
    /// 2q - n >= f + 1, i.e. q >= (n + f + 1) / 2. The smallest such q is
    /// ceil((n + f + 1) / 2). Liveness needs the n - f correct replicas to form a quorum by
    /// themselves: n - f >= ceil((n + f + 1) / 2) holds exactly when n >= 3f + 1.
    /// At n = 3f + 1 this is the paper's 2f + 1; at any other n, 2f + 1 is too small
    /// (n = 5, f = 1: two sets of 3 may share only the faulty replica).
    public var quorum: Int { Self.quorum(n: n, f: f) }
    /// f+1: enough to contain one correct replica (replies, joining a higher view). Any
    /// quorum holds at least `quorum - f >= f + 1` correct replicas.
    public var weakQuorum: Int { f + 1 }

    /// ceil((n + f + 1) / 2): the smallest size of which any two sets among `n` replicas
    /// share at least f + 1 (see `quorum`).
    public static func quorum(n: Int, f: Int) -> Int {
        precondition(n >= 1 && f >= 0, "a quorum of n = \(n), f = \(f)")
        return (n + f + 2) / 2
    }

    /// The largest f that `n` replicas tolerate: floor((n-1)/3).
    public static func maxFaultTolerance(replicas n: Int) -> Int { max(0, (n - 1) / 3) }

    public func primary(of view: ViewNumber) -> ReplicaID {
        replicas[Int(view.rawValue % UInt64(replicas.count))].id
    }

    public func replica(_ id: ReplicaID) -> ReplicaDescriptor? {
        guard let index = replicaIndex(id) else { return nil }
        return replicas[index]
    }

    /// The replica's position in id order, by binary search.
    public func replicaIndex(_ id: ReplicaID) -> Int? {
        Self.binarySearch(replicas.count) { replicas[$0].id < id } .flatMap { replicas[$0].id == id ? $0 : nil }
    }

    public func clientKey(_ id: ClientID) -> PublicKey? {
        Self.binarySearch(clients.count) { clients[$0].id < id }.flatMap { clients[$0].id == id ? clients[$0].publicKey : nil }
    }

    /// The first index for which `isBefore` is false, or nil if there is none.
    private static func binarySearch(_ count: Int, isBefore: (Int) -> Bool) -> Int? {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if isBefore(mid) { low = mid + 1 } else { high = mid }
        }
        return low < count ? low : nil
    }

    private static func firstDuplicate<T: Hashable>(_ values: [T]) -> T? {
        var seen = Set<T>()
        for value in values where !seen.insert(value).inserted { return value }
        return nil
    }
}

extension Membership: KeyDirectory {
    /// Keys of this epoch only; a message signed for another epoch has no key here.
    public func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey? {
        guard epoch == self.epoch else { return nil }
        switch principal {
        case .replica(let id): return replica(id)?.publicKey
        case .client(let id): return clientKey(id)
        case .operator: return operatorKey
        }
    }
}

/// A configuration rule that a membership breaks.
public enum MembershipError: Error, Hashable, Sendable, CustomStringConvertible {
    case faultToleranceTooSmall(Int)
    case tooFewReplicas(n: Int, f: Int)
    case duplicateReplicaID(ReplicaID)
    case duplicateAddress(String)
    case duplicateClientID(ClientID)
    case duplicatePublicKey(PublicKey)
    case unknownReplica(ReplicaID)
    case alreadyMember(ReplicaID)
    case invalidPublicKey(ReplicaID)

    public var description: String {
        switch self {
        case .faultToleranceTooSmall(let f): "f = \(f): f must be at least 1"
        case .tooFewReplicas(let n, let f): "n = \(n) replicas cannot tolerate f = \(f): PBFT needs n >= 3f+1 = \(3 * f + 1)"
        case .duplicateReplicaID(let id): "replica id \(id.rawValue) appears twice"
        case .duplicateAddress(let address): "address \(address) is used by two replicas"
        case .duplicateClientID(let id): "client id \(id.rawValue) appears twice"
        case .duplicatePublicKey(let key): "public key \(key) is listed twice"
        case .unknownReplica(let id): "replica \(id.rawValue) is not a member"
        case .alreadyMember(let id): "replica \(id.rawValue) is already a member"
        case .invalidPublicKey(let id): "replica \(id.rawValue) has an invalid public key"
        }
    }
}

// MARK: - Reconfiguration

extension Membership {
    /// The wire form of this membership (canonical: lists in id order).
    public var record: ConfigurationRecord {
        ConfigurationRecord(epoch: epoch, f: UInt32(f), replicas: replicas, clients: clients, operatorKey: operatorKey)
    }

    /// A membership from its wire form, checked like any other.
    public init(record: ConfigurationRecord) throws(MembershipError) {
        try self.init(epoch: record.epoch, f: Int(record.f), replicas: record.replicas, clients: record.clients, operatorKey: record.operatorKey)
    }

    /// The membership after `change`, as `epoch` (by default the next one); throws the rule
    /// the result would break.
    public func applying(_ change: ReconfigurationChange, epoch newEpoch: Epoch? = nil) throws(MembershipError) -> Membership {
        var replicas = self.replicas
        var f = self.f
        switch change {
        case .addReplica(let new):
            guard replica(new.id) == nil else { throw .alreadyMember(new.id) }
            guard new.publicKey != PublicKey.zero else { throw .invalidPublicKey(new.id) }
            replicas.append(new)
        case .removeReplica(let old):
            guard replica(old) != nil else { throw .unknownReplica(old) }
            replicas.removeAll { $0.id == old }
        case .replaceReplica(let old, let new):
            guard replica(old) != nil else { throw .unknownReplica(old) }
            guard new.id == old || replica(new.id) == nil else { throw .alreadyMember(new.id) }
            guard new.publicKey != PublicKey.zero else { throw .invalidPublicKey(new.id) }
            replicas.removeAll { $0.id == old }
            replicas.append(new)
        case .setFaultTolerance(let newF):
            f = Int(newF)
        }
        return try Membership(epoch: newEpoch ?? Epoch(epoch.rawValue + 1), f: f, replicas: replicas, clients: clients, operatorKey: operatorKey)
    }
}

extension PublicKey {
    /// All zero bytes: never a key anyone holds.
    static var zero: PublicKey { PublicKey(bytes: [UInt8](repeating: 0, count: 32))! }
}

/// The keys of several epochs: what a replica or client verifies messages with while
/// epochs change. A principal's key is looked up in the epoch the message was signed in.
public struct EpochKeys: KeyDirectory, Hashable {
    public let memberships: [Epoch: Membership]

    public init(_ memberships: [Epoch: Membership]) { self.memberships = memberships }
    public init(_ membership: Membership) { self.memberships = [membership.epoch: membership] }

    public func publicKey(of principal: Principal, epoch: Epoch) -> PublicKey? {
        memberships[epoch]?.publicKey(of: principal, epoch: epoch)
    }

    /// Every replica of every epoch held, the newest epoch's entry first for each id.
    public var replicas: [ReplicaDescriptor] {
        var seen = Set<ReplicaID>()
        var all: [ReplicaDescriptor] = []
        for epoch in memberships.keys.sorted(by: >) {
            for replica in memberships[epoch]!.replicas where seen.insert(replica.id).inserted { all.append(replica) }
        }
        return all
    }
}

extension Replica {
    /// The keys of every epoch this replica accepts messages of.
    public var keys: EpochKeys { EpochKeys(knownMemberships) }
}
