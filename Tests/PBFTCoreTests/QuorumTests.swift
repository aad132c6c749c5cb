import PBFTCore
import PBFTWire
import Testing

/// Every membership the rules allow: n from 4 to 64, f from 1 to floor((n-1)/3).
private let allowed: [(n: Int, f: Int)] = (4...64).flatMap { n in (1...((n - 1) / 3)).map { (n: n, f: $0) } }

/// The fewest replicas that two sets of `size` replicas each, out of `n`, can share: the
/// two sets taken as far apart as they go (the first `size` replicas and the last `size`).
/// Written out as sets so that the test does not rest on the formula 2q - n it checks.
private func fewestShared(size: Int, n: Int) -> Int {
    let first = Set(0..<size)
    let last = Set((n - size)..<n)
    return first.intersection(last).count
}

/// The same by exhaustion, for small n: one set fixed as the first `size` replicas (every
/// other choice is a renaming of it) against every set of `size` replicas.
private func fewestSharedByExhaustion(size: Int, n: Int) -> Int {
    let fixed = (1 << size) - 1
    var fewest = size
    for other in 0..<(1 << n) where other.nonzeroBitCount == size {
        fewest = min(fewest, (fixed & other).nonzeroBitCount)
    }
    return fewest
}

private func key(_ i: Int) -> PublicKey { PublicKey(bytes: [UInt8](repeating: UInt8(i), count: 32))! }

private func replica(_ i: Int) -> ReplicaDescriptor {
    ReplicaDescriptor(id: ReplicaID(UInt32(i)), host: "127.0.0.1", port: UInt16(7000 + i), publicKey: key(i + 1))
}

private func membership(n: Int, f: Int) throws -> Membership {
    try Membership(epoch: Epoch(0), f: f, replicas: (0..<n).map(replica), clients: [], operatorKey: key(255))
}

/// The quorum rules, derived from what they must guarantee, for every n and f a membership
/// allows (docs/protocol.md, "Quorums").
@Suite struct QuorumTests {
    @Test func anyTwoQuorumsShareFPlusOneReplicas() {
        for (n, f) in allowed {
            let q = Membership.quorum(n: n, f: f)
            #expect(q <= n, "n = \(n), f = \(f): the quorum is larger than the membership")
            #expect(2 * q - n >= f + 1, "n = \(n), f = \(f), q = \(q)")
            #expect(fewestShared(size: q, n: n) >= f + 1, "n = \(n), f = \(f), q = \(q)")
        }
    }

    @Test func quorumIsTheSmallestSizeWhoseAnyTwoShareFPlusOne() {
        for (n, f) in allowed {
            let q = Membership.quorum(n: n, f: f)
            // One replica fewer and two quorums can meet only in the f faulty replicas.
            #expect(fewestShared(size: q - 1, n: n) <= f, "n = \(n), f = \(f): q - 1 = \(q - 1) already suffices")
            #expect(2 * (q - 1) - n < f + 1, "n = \(n), f = \(f), q = \(q)")
        }
    }

    @Test func fewestSharedAgreesWithExhaustiveSearch() {
        for (n, f) in allowed where n <= 13 {
            let q = Membership.quorum(n: n, f: f)
            for size in [q - 1, q] {
                #expect(fewestSharedByExhaustion(size: size, n: n) == fewestShared(size: size, n: n), "n = \(n), size = \(size)")
            }
        }
    }

    @Test func anyQuorumHoldsAWeakQuorumOfCorrectReplicas() {
        for (n, f) in allowed {
            let q = Membership.quorum(n: n, f: f)
            // A weak quorum (f + 1) holds a correct replica, as there are only f faulty ones;
            // a quorum with all f faulty replicas in it still has a weak quorum of correct ones.
            #expect(q - f >= f + 1, "n = \(n), f = \(f), q = \(q)")
        }
    }

    @Test func theCorrectReplicasAloneFormAQuorum() {
        for (n, f) in allowed {
            let q = Membership.quorum(n: n, f: f)
            #expect(n - f >= q, "n = \(n), f = \(f), q = \(q): the correct replicas cannot make progress alone")
        }
    }

    @Test func theCorrectReplicasFormAQuorumOnlyFromNEquals3fPlus1() {
        // n - f >= ceil((n + f + 1) / 2) exactly when n >= 3f + 1: below it, liveness is lost.
        for n in 4...64 {
            for f in 1...n {
                let q = Membership.quorum(n: n, f: f)
                #expect((n - f >= q) == (n >= 3 * f + 1), "n = \(n), f = \(f), q = \(q)")
            }
        }
    }

    @Test func atNEquals3fPlus1TheQuorumIsThePapers2fPlus1() {
        for f in 1...21 {
            #expect(Membership.quorum(n: 3 * f + 1, f: f) == 2 * f + 1, "f = \(f)")
        }
    }

    @Test func beyondNEquals3fPlus1TwoFPlusOneIsTooSmall() {
        // n = 5, f = 1: two sets of 3 may share only one replica, the faulty one.
        for (n, f) in allowed where n > 3 * f + 1 {
            #expect(fewestShared(size: 2 * f + 1, n: n) <= f, "n = \(n), f = \(f)")
            #expect(Membership.quorum(n: n, f: f) > 2 * f + 1, "n = \(n), f = \(f)")
        }
    }

    @Test func membershipQuorumFollowsNAndF() throws {
        let cases = [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 1, 5), (7, 2, 5), (10, 3, 7), (11, 3, 8), (13, 4, 9), (64, 1, 33), (64, 21, 43)]
        for (n, f, quorum) in cases {
            let m = try membership(n: n, f: f)
            #expect(m.quorum == quorum, "n = \(n), f = \(f)")
            #expect(m.quorum == Membership.quorum(n: n, f: f))
            #expect(m.weakQuorum == f + 1)
        }
    }

    @Test func settingFaultToleranceSetsTheQuorum() throws {
        let m = try membership(n: 10, f: 1)
        #expect(m.quorum == 6)
        for (newF, quorum) in [(2, 7), (3, 7), (1, 6)] {
            let changed = try m.applying(.setFaultTolerance(UInt32(newF)))
            #expect(changed.f == newF)
            #expect(changed.quorum == quorum, "f = \(newF)")
            #expect(changed.weakQuorum == newF + 1)
        }
        #expect(throws: MembershipError.tooFewReplicas(n: 10, f: 4)) { try m.applying(.setFaultTolerance(4)) }
    }

    @Test func addingAReplicaWithoutRaisingFRaisesTheQuorum() throws {
        // n = 4 -> 5 at f = 1: 3 would let two quorums meet only in the faulty replica.
        let m = try membership(n: 4, f: 1)
        #expect(m.quorum == 3)
        let grown = try m.applying(.addReplica(replica(4)))
        #expect(grown.n == 5)
        #expect(grown.quorum == 4)
        let shrunk = try grown.applying(.removeReplica(ReplicaID(0)))
        #expect(shrunk.quorum == 3)
    }
}
