import PBFTBench
import Testing

@Suite("Crypto-bound ceiling")
struct CeilingTests {
    func ceiling(batch: Double, n: Int = 4) -> CryptoCeiling {
        CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: n, batchSize: batch)
    }

    @Test("s = 16.2 µs, v = 47.8 µs, n = 4, C = 2: about 1,216 requests/s at b = 1, 4,036 at b = 10, 5,255 at b = 100")
    func referenceFigures() {
        #expect(Int(ceiling(batch: 1).requestsPerSecond) == 1_216)
        #expect(Int(ceiling(batch: 10).requestsPerSecond) == 4_036)
        #expect(Int(ceiling(batch: 100).requestsPerSecond) == 5_255)
        #expect(abs(ceiling(batch: 1).microsecondsPerRequest - 1_644.6) < 1e-9)
    }

    @Test("the counts: per request 1 + n signatures and n + f + 1 verifications; per batch 2n and (n-1)(2n), for n = 4, 7, 10")
    func counts() {
        #expect(ceiling(batch: 1).perRequest == (5, 6) as (Int, Int))
        #expect(ceiling(batch: 1).perBatch == (8, 24) as (Int, Int))
        let seven = ceiling(batch: 1, n: 7)
        #expect(seven.f == 2 && seven.perRequest == (8, 10) as (Int, Int) && seven.perBatch == (14, 6 + 36 + 42) as (Int, Int))
        let ten = ceiling(batch: 1, n: 10)
        #expect(ten.f == 3 && ten.perRequest == (11, 14) as (Int, Int) && ten.perBatch == (20, 9 + 81 + 90) as (Int, Int))
    }

    @Test("replies signed per batch: the n reply signatures move from each request to each batch")
    func repliesPerBatch() {
        for n in [4, 7, 10] {
            let each = ceiling(batch: 8, n: n)
            var rooted = each
            rooted.replies = .perBatch
            #expect(rooted.perRequest == (1, each.perRequest.verifies) as (Int, Int))
            #expect(rooted.perBatch == (each.perBatch.signs + n, each.perBatch.verifies) as (Int, Int))
            let saved = 16.2 * Double(n) * (1 - 1.0 / 8)
            #expect(abs(each.microsecondsPerRequest - rooted.microsecondsPerRequest - saved) < 1e-9)
            #expect(rooted.clientMicrosecondsPerRequest == each.clientMicrosecondsPerRequest)
        }
        var single = ceiling(batch: 1)
        single.replies = .perBatch
        #expect(abs(single.microsecondsPerRequest - ceiling(batch: 1).microsecondsPerRequest) < 1e-9, "a batch of one signs as many replies")
    }

    @Test("the ceiling grows with the cores and the batch, falls with the replicas and the costs")
    func monotone() {
        let base = ceiling(batch: 8)
        var more = base
        more.cores = 4
        #expect(abs(more.requestsPerSecond - 2 * base.requestsPerSecond) < 1e-6)
        #expect(ceiling(batch: 9).requestsPerSecond > base.requestsPerSecond)
        #expect(ceiling(batch: 8, n: 7).requestsPerSecond < base.requestsPerSecond)
        var slower = base
        slower.verifyMicroseconds *= 2
        #expect(slower.requestsPerSecond < base.requestsPerSecond)
        // However large the batch, the per-request part remains: 2e6 / (5 s + 6 v).
        #expect(ceiling(batch: 1e12).requestsPerSecond < 2e6 / (5 * 16.2 + 6 * 47.8))
    }
}

@Suite("Crypto cost")
struct CryptoCostTests {
    @Test("the replicas' share is everything but the client's one signature and f+1 verifications")
    func replicaShare() {
        let model = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 7, batchSize: 4)
        #expect(abs(model.clientMicrosecondsPerRequest - (16.2 + 3 * 47.8)) < 1e-9)
        let replicas = 16.2 * (7 + 14.0 / 4) + 47.8 * (7 + 84.0 / 4)
        #expect(abs(model.replicaMicrosecondsPerRequest - replicas) < 1e-9)
    }

    @Test("clients that share their checks of reply roots check f+1 per batch; the replicas' share does not change")
    func sharedRoots() {
        let alone = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 7, batchSize: 4, replies: .perBatch)
        let sharing = CryptoCeiling(cores: 2, signMicroseconds: 16.2, verifyMicroseconds: 47.8, replicas: 7, batchSize: 4, replies: .perBatch, clientsShareRoots: true)
        #expect(abs(alone.clientMicrosecondsPerRequest - (16.2 + 3 * 47.8)) < 1e-9)
        #expect(abs(sharing.clientMicrosecondsPerRequest - (16.2 + 3 * 47.8 / 4)) < 1e-9)
        #expect(abs(sharing.replicaMicrosecondsPerRequest - alone.replicaMicrosecondsPerRequest) < 1e-9)
        #expect(abs(sharing.verifiesPerRequest - (alone.verifiesPerRequest - 3 + 3.0 / 4)) < 1e-9)
        #expect(sharing.requestsPerSecond > alone.requestsPerSecond)
    }

    @Test("a measurement signs and verifies every iteration, in whole rounds, and reports medians inside the rounds' range")
    func measurement() throws {
        let cost = try CryptoCost.measure(iterations: 103, messageBytes: 64, rounds: 5)
        #expect(cost.iterations == 100 && cost.messageBytes == 64)
        #expect(cost.signRangeMicroseconds.contains(cost.signMicroseconds))
        #expect(cost.verifyRangeMicroseconds.contains(cost.verifyMicroseconds))
        #expect(cost.signMicroseconds > 0 && cost.verifyMicroseconds > 0)
    }
}
