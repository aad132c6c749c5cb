import PBFTCore
import PBFTWire
import Testing

private func key(_ i: Int) -> PublicKey { PublicKey(bytes: [UInt8](repeating: UInt8(i), count: 32))! }

private func replicas(_ n: Int, ids: [UInt32]? = nil) -> [ReplicaDescriptor] {
    (0..<n).map { i in
        ReplicaDescriptor(id: ReplicaID(ids?[i] ?? UInt32(i)), host: "127.0.0.1", port: UInt16(7000 + i), publicKey: key(i + 1))
    }
}

@Suite struct MembershipTests {
    @Test(arguments: [(4, 1), (7, 2), (10, 3), (5, 1), (13, 4)])
    func acceptsNAtLeast3fPlus1(_ n: Int, _ f: Int) throws {
        let m = try Membership(epoch: Epoch(0), f: f, replicas: replicas(n), clients: [], operatorKey: key(200))
        #expect(m.n == n)
        #expect(m.quorum == Membership.quorum(n: n, f: f), "values in QuorumTests")
        #expect(m.weakQuorum == f + 1)
    }

    @Test(arguments: [(3, 1), (6, 2), (9, 3), (4, 2)])
    func rejectsNBelow3fPlus1(_ n: Int, _ f: Int) {
        #expect(throws: MembershipError.tooFewReplicas(n: n, f: f)) {
            try Membership(epoch: Epoch(0), f: f, replicas: replicas(n), clients: [], operatorKey: key(200))
        }
    }

    @Test func rejectsZeroFaultTolerance() {
        #expect(throws: MembershipError.faultToleranceTooSmall(0)) {
            try Membership(epoch: Epoch(0), f: 0, replicas: replicas(4), clients: [], operatorKey: key(200))
        }
    }

    @Test func rejectsDuplicates() {
        var dupID = replicas(4)
        dupID[3].id = ReplicaID(1)
        #expect(throws: MembershipError.duplicateReplicaID(ReplicaID(1))) {
            try Membership(epoch: Epoch(0), f: 1, replicas: dupID, clients: [], operatorKey: key(200))
        }
        var dupAddress = replicas(4)
        dupAddress[2].port = 7001
        #expect(throws: MembershipError.duplicateAddress("127.0.0.1:7001")) {
            try Membership(epoch: Epoch(0), f: 1, replicas: dupAddress, clients: [], operatorKey: key(200))
        }
        #expect(throws: MembershipError.duplicatePublicKey(key(1))) {
            try Membership(epoch: Epoch(0), f: 1, replicas: replicas(4), clients: [], operatorKey: key(1))
        }
        let clients = [Membership.ClientKey(id: ClientID(3), publicKey: key(50)), .init(id: ClientID(3), publicKey: key(51))]
        #expect(throws: MembershipError.duplicateClientID(ClientID(3))) {
            try Membership(epoch: Epoch(0), f: 1, replicas: replicas(4), clients: clients, operatorKey: key(200))
        }
    }

    @Test func primaryRotatesThroughSortedIDs() throws {
        let m = try Membership(epoch: Epoch(0), f: 1, replicas: replicas(4, ids: [9, 2, 5, 7]).reversed(), clients: [], operatorKey: key(200))
        #expect(m.replicas.map(\.id.rawValue) == [2, 5, 7, 9])
        #expect((0..<8).map { m.primary(of: ViewNumber(UInt64($0))).rawValue } == [2, 5, 7, 9, 2, 5, 7, 9])
        #expect(m.replica(ReplicaID(5))?.port != nil)
        #expect(m.replica(ReplicaID(6)) == nil)
        #expect(m.replica(ReplicaID(10)) == nil)
    }

    @Test func keyDirectoryAnswersOnlyForItsEpoch() throws {
        let clients = [Membership.ClientKey(id: ClientID(4), publicKey: key(60))]
        let m = try Membership(epoch: Epoch(3), f: 1, replicas: replicas(4), clients: clients, operatorKey: key(200))
        #expect(m.publicKey(of: .replica(ReplicaID(2)), epoch: Epoch(3)) == key(3))
        #expect(m.publicKey(of: .client(ClientID(4)), epoch: Epoch(3)) == key(60))
        #expect(m.publicKey(of: .operator, epoch: Epoch(3)) == key(200))
        #expect(m.publicKey(of: .client(ClientID(5)), epoch: Epoch(3)) == nil)
        #expect(m.publicKey(of: .replica(ReplicaID(4)), epoch: Epoch(3)) == nil)
        #expect(m.publicKey(of: .replica(ReplicaID(2)), epoch: Epoch(2)) == nil)
    }

    @Test func maxFaultTolerance() {
        #expect([1, 3, 4, 6, 7, 10, 100].map { Membership.maxFaultTolerance(replicas: $0) } == [0, 0, 1, 1, 2, 3, 33])
    }
}
