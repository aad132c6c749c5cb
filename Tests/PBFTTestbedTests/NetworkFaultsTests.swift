import PBFTTestbed
import PBFTWire
import Testing

@Suite("Network faults")
struct NetworkFaultsTests {
    let replicas = (0..<4).map { ReplicaID(UInt32($0)) }

    @Test("a partition cuts the links between its groups, both ways or one way")
    func partitionLinks() throws {
        let two = try Partition(groups: [[ReplicaID(0), ReplicaID(1)]], oneWay: false, replicas: replicas)
        #expect(two.groups == [[ReplicaID(0), ReplicaID(1)], [ReplicaID(2), ReplicaID(3)]])
        #expect(two.blockedLinks.count == 8)
        #expect(two.blockedLinks.contains(Link(from: ReplicaID(0), to: ReplicaID(3))))
        #expect(two.blockedLinks.contains(Link(from: ReplicaID(3), to: ReplicaID(0))))
        #expect(!two.blockedLinks.contains(Link(from: ReplicaID(0), to: ReplicaID(1))))

        let oneWay = try Partition(groups: [[ReplicaID(2)]], oneWay: true, replicas: replicas)
        #expect(oneWay.blockedLinks == Set(replicas.filter { $0 != ReplicaID(2) }.map { Link(from: ReplicaID(2), to: $0) }))

        var faults = NetworkFaults()
        faults.partition = oneWay
        #expect(faults.effective(from: .replica(ReplicaID(2)), to: .replica(ReplicaID(0))) == nil)
        #expect(faults.effective(from: .replica(ReplicaID(0)), to: .replica(ReplicaID(2))) != nil)
        #expect(faults.effective(from: .client, to: .replica(ReplicaID(2))) != nil, "clients are outside partitions")
    }

    @Test("partitions that name strangers, repeat a replica or leave one group are refused")
    func badPartitions() {
        #expect(throws: FaultError.self) { try Partition(groups: [[ReplicaID(7)]], oneWay: false, replicas: replicas) }
        #expect(throws: FaultError.self) { try Partition(groups: [[ReplicaID(1)], [ReplicaID(1), ReplicaID(2)]], oneWay: false, replicas: replicas) }
        #expect(throws: FaultError.self) { try Partition(groups: [replicas], oneWay: false, replicas: replicas) }
        #expect(throws: FaultError.self) { try Partition(groups: [[]], oneWay: false, replicas: replicas) }
    }

    @Test("faults of all traffic, both replicas and the link add up on a path")
    func composition() {
        var faults = NetworkFaults()
        faults.everywhere = PacketFault.drop(0.5).applied(to: PacketFaults())
        faults.replicas[ReplicaID(1)] = PacketFault.delay(ms: 10, jitterMs: 2).applied(to: PacketFault.drop(0.5).applied(to: PacketFaults()))
        faults.links[Link(from: ReplicaID(1), to: ReplicaID(2))] = PacketFault.delay(ms: 5, jitterMs: 0).applied(to: PacketFaults())
        let path = faults.effective(from: .replica(ReplicaID(1)), to: .replica(ReplicaID(2)))!
        #expect(path.drop == 0.75)
        #expect(path.delayMs == 15)
        #expect(path.jitterMs == 2)
        let reverse = faults.effective(from: .replica(ReplicaID(2)), to: .replica(ReplicaID(1)))!
        #expect(reverse.delayMs == 10, "the link's delay is one direction only")
        let untouched = faults.effective(from: .replica(ReplicaID(2)), to: .replica(ReplicaID(3)))!
        #expect(untouched.drop == 0.5 && untouched.delayMs == 0)
    }

    @Test("fault values out of range are refused with the reason")
    func validation() throws {
        #expect(throws: FaultError.self) { try PacketFault.drop(1.5).validate() }
        #expect(throws: FaultError.self) { try PacketFault.corrupt(-0.1).validate() }
        #expect(throws: FaultError.self) { try PacketFault.delay(ms: .nan, jitterMs: 0).validate() }
        #expect(throws: FaultError.self) { try PacketFault.delay(ms: 10, jitterMs: 100_000).validate() }
        try PacketFault.reorder(1).validate()
        var request = LaunchRequest(verb: .fault)
        request.fault = "jam"
        request.value = 0.1
        #expect(throws: FaultError.self) { try request.packetFault() }
        #expect(throws: FaultError.self) { try ReplicaTarget("9", replicas: replicas) }
        #expect(throws: FaultError.self) { try ReplicaTarget("leader", replicas: replicas) }
        #expect(try ReplicaTarget("primary", replicas: replicas) == .primary)
        #expect(try ReplicaTarget("3", replicas: replicas) == .id(ReplicaID(3)))
    }
}
