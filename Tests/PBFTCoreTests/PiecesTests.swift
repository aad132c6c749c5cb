import PBFTByzantine
import PBFTCore
import PBFTWire
import Testing

private func envelope(_ n: UInt8) -> Envelope {
    Envelope(sender: .replica(ReplicaID(UInt32(n))), epoch: Epoch(0), message: .checkpoint(Checkpoint(sequence: SequenceNumber(1), stateDigest: .zero)), signature: .zero)
}

private func digest(_ n: UInt8) -> Digest { Digest(bytes: [UInt8](repeating: n, count: 32))! }

@Suite struct VoteSetTests {
    @Test func countsDistinctReplicasPerDigest() {
        var votes = VoteSet()
        #expect(votes.insert(envelope(1), digest: digest(1), from: ReplicaID(1)) == .added)
        #expect(votes.insert(envelope(2), digest: digest(1), from: ReplicaID(2)) == .added)
        #expect(votes.insert(envelope(3), digest: digest(2), from: ReplicaID(3)) == .added)
        #expect(votes.count(matching: digest(1)) == 2)
        #expect(votes.count(matching: digest(2)) == 1)
        #expect(votes.count(matching: digest(3)) == 0)
        #expect(votes.count(matching: digest(1), excluding: ReplicaID(1)) == 1)
        #expect(votes.digest(withAtLeast: 2) == digest(1))
        #expect(votes.digest(withAtLeast: 3) == nil)
        #expect(votes.envelopes(matching: digest(1)).map(\.sender) == [.replica(ReplicaID(1)), .replica(ReplicaID(2))])
    }

    @Test func duplicateAndConflictingVotesDoNotCount() {
        var votes = VoteSet()
        #expect(votes.insert(envelope(1), digest: digest(1), from: ReplicaID(1)) == .added)
        #expect(votes.insert(envelope(1), digest: digest(1), from: ReplicaID(1)) == .duplicate)
        #expect(votes.insert(envelope(1), digest: digest(2), from: ReplicaID(1)) == .conflicting)
        #expect(votes.count(matching: digest(1)) == 1)
        #expect(votes.count(matching: digest(2)) == 0)
        #expect(votes.count == 1)
    }
}

@Suite struct WaterMarkTests {
    @Test func boundaries() {
        var marks = WaterMarks(low: SequenceNumber(10), window: 8)
        #expect(marks.high == SequenceNumber(18))
        #expect(!marks.contains(SequenceNumber(10)), "at h: already stable")
        #expect(marks.contains(SequenceNumber(11)))
        #expect(marks.contains(SequenceNumber(18)), "at H")
        #expect(!marks.contains(SequenceNumber(19)), "beyond H")
        #expect(!marks.contains(SequenceNumber(0)))
        let older = marks.advance(to: SequenceNumber(9))
        #expect(!older, "an older checkpoint does not move h")
        let same = marks.advance(to: SequenceNumber(10))
        #expect(!same)
        #expect(marks.low == SequenceNumber(10))
        let newer = marks.advance(to: SequenceNumber(14))
        #expect(newer)
        #expect(marks.high == SequenceNumber(22))
    }
}

@Suite struct ReplyCacheTests {
    @Test func exactlyOnceBoundaries() {
        var cache = ReplyCache()
        let c = Principal.client(ClientID(3))
        #expect(!cache.hasExecuted(c, Timestamp(1)))
        cache.record(c, Timestamp(5), result: [9])
        #expect(cache.hasExecuted(c, Timestamp(4)), "older")
        #expect(cache.hasExecuted(c, Timestamp(5)), "the same")
        #expect(!cache.hasExecuted(c, Timestamp(6)), "newer")
        #expect(!cache.hasExecuted(.client(ClientID(4)), Timestamp(1)), "another client")
        #expect(cache.entry(for: c)?.result == [9])
    }

    @Test func encodingIsCanonicalAndDecodes() {
        var a = ReplyCache(), b = ReplyCache()
        a.record(.client(ClientID(2)), Timestamp(7), result: [1, 2])
        a.record(.operator, Timestamp(1), result: [])
        a.record(.client(ClientID(1)), Timestamp(3), result: [3])
        b.record(.client(ClientID(1)), Timestamp(3), result: [3])
        b.record(.operator, Timestamp(1), result: [])
        b.record(.client(ClientID(2)), Timestamp(7), result: [1, 2])
        #expect(a.encoded() == b.encoded(), "insertion order does not matter")
        var offset = 0
        #expect(ReplyCache.decode(a.encoded(), offset: &offset) == a)
        #expect(offset == a.encoded().count)
    }

    @Test func garbageDoesNotDecode() {
        var rng = SplitMix64(seed: 4)
        let good = { () -> [UInt8] in
            var c = ReplyCache()
            c.record(.client(ClientID(1)), Timestamp(3), result: [3, 4, 5])
            return c.encoded()
        }()
        for length in 0..<good.count {
            var offset = 0
            let decoded = ReplyCache.decode(Array(good.prefix(length)), offset: &offset)
            #expect(decoded == nil, "a cache cut to \(length) of \(good.count) bytes decoded")
        }
        for _ in 0..<2000 {
            let count = Int(rng.next() % 40)
            var bytes: [UInt8] = []
            for _ in 0..<count { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
            var offset = 0
            _ = ReplyCache.decode(bytes, offset: &offset)  // must not trap
        }
    }
}

@Suite struct ConfigurationTests {
    func membership() throws -> Membership {
        var replicas: [ReplicaDescriptor] = []
        for i in 0..<4 {
            let key = PublicKey(bytes: [UInt8](repeating: UInt8(i + 1), count: 32))!
            replicas.append(ReplicaDescriptor(id: ReplicaID(UInt32(i)), host: "h", port: UInt16(1 + i), publicKey: key))
        }
        return try Membership(epoch: Epoch(0), f: 1, replicas: replicas, clients: [], operatorKey: PublicKey(bytes: [UInt8](repeating: 99, count: 32))!)
    }

    @Test func defaultsAreValid() throws {
        try Configuration(membership: membership()).validate()
    }

    @Test func inconsistentSettingsAreRejected() throws {
        let m = try membership()
        let bad: [(Configuration, String)] = [
            (Configuration(membership: m, checkpointInterval: 0), "checkpointInterval"),
            (Configuration(membership: m, checkpointInterval: 64, logWindow: 100), "multiple of checkpointInterval"),
            (Configuration(membership: m, checkpointInterval: 64, logWindow: 32), "multiple of checkpointInterval"),
            (Configuration(membership: m, checkpointInterval: 512, logWindow: 2048), "logWindowMax"),
            (Configuration(membership: m, sequencesInFlightMax: 0), "sequencesInFlightMax"),
            (Configuration(membership: m, logWindow: 128, sequencesInFlightMax: 129), "sequencesInFlightMax"),
            (Configuration(membership: m, batchSizeMax: 0), "batchSizeMax"),
            (Configuration(membership: m, batchSizeMax: 513), "batchRequestsMax"),
            (Configuration(membership: m, batchSizeMax: 64, requestsPendingMax: 10), "requestsPendingMax"),
            (Configuration(membership: m, viewChangeTimeoutTicks: 10, statusIntervalTicks: 10), "statusIntervalTicks"),
            (Configuration(membership: m, stateChunkBytes: 1 << 20), "stateChunkBytes"),
        ]
        for (configuration, fragment) in bad {
            do {
                try configuration.validate()
                Issue.record("accepted a configuration with bad \(fragment)")
            } catch {
                #expect(error.description.contains(fragment), "\(error)")
            }
        }
    }
}
