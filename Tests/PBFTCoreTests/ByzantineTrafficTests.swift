import PBFTByzantine
import PBFTCore
import PBFTKeyValue
import PBFTSimulator
import PBFTWire
import Testing

/// The faulty replica's traffic itself: what the layer sends for `badSignatures`,
/// `forgedSender` and `garbageFlood`, checked by the real authenticator.
@Suite struct ByzantineTrafficTests {
    let harness: Harness
    let faulty = ReplicaID(1)

    init() throws { harness = try Harness(n: 4) }

    func layer(_ behaviour: ByzantineBehaviour) -> ByzantineLayer {
        ByzantineLayer(behaviour: behaviour, signer: harness.signer(.replica(faulty)), membership: harness.membership)
    }

    func prepare() -> Frame { harness.vote(.prepare, sequence: 1, digest: Digest(w0: 1, w1: 2, w2: 3, w3: 4), from: faulty.rawValue) }

    func rejection(_ frame: Frame) -> Rejection? {
        do { _ = try harness.authenticator.open(frame.encoded()) } catch { return error }
        return nil
    }

    @Test func badSignaturesCorruptAboutHalfOfWhatEachReceiverGets() {
        var layer = layer(.badSignatures)
        var rng = SplitMix64(seed: 5)
        var good = 0
        var bad = 0
        for _ in 0..<300 {
            let actions = layer.rewrite(.broadcast(prepare()), replica: harness.replicas[1], now: 0, rng: &rng)
            #expect(actions.count == 3, "a broadcast becomes one send per other replica")
            for case .send(let frame, let to) in actions {
                #expect(to != faulty)
                switch rejection(frame) {
                case nil: good += 1
                case .badSignature(let sender, _)?: #expect(sender == .replica(faulty)); bad += 1
                case let other?: Issue.record("unexpected \(other)")
                }
            }
        }
        #expect((350...550).contains(bad), "\(bad) of \(good + bad) corrupted")
    }

    @Test func badSignaturesReachRepliesAndNestedEnvelopes() {
        var layer = layer(.badSignatures)
        var rng = SplitMix64(seed: 6)
        let answer = Reply(view: ViewNumber(0), timestamp: Timestamp(1), requester: .client(ClientID(0)), result: [1])
        let tree = ReplyTree([answer], digester: harness.replicas[1].digester)
        let reply = Frame(envelope: harness.seal(.reply(tree.root), as: .replica(faulty)), reply: ProvenReply(reply: answer, index: 0, path: []))
        let checkpoints = (0..<3).map { harness.seal(.checkpoint(Checkpoint(sequence: SequenceNumber(4), stateDigest: .zero)), as: .replica(ReplicaID($0))) }
        let viewChange = Frame(envelope: harness.seal(
            .viewChange(ViewChange(newView: ViewNumber(1), stableSequence: SequenceNumber(4), checkpointProof: checkpoints, prepared: [])), as: .replica(faulty)))
        var badReplies = 0
        var unproven = 0
        var nested = 0
        for _ in 0..<200 {
            for case .reply(let frame, _) in layer.rewrite(.reply(reply, to: .client(ClientID(0))), replica: harness.replicas[1], now: 0, rng: &rng) {
                guard rejection(frame) == nil else {
                    badReplies += 1
                    continue
                }
                guard case .reply(let root) = frame.envelope.message, let proven = frame.reply else { continue }
                // A good signature over a root the reply no longer leads to.
                if !root.proves(proven, digester: harness.replicas[1].digester) {
                    badReplies += 1
                    unproven += 1
                }
            }
            for case .send(let frame, _) in layer.rewrite(.broadcast(viewChange), replica: harness.replicas[1], now: 0, rng: &rng) {
                if case .badSignature(_, let field)? = rejection(frame), field != "envelope" { nested += 1 }
            }
        }
        #expect((60...140).contains(badReplies))
        #expect(unproven > 0 && unproven < badReplies, "some replies are tampered under a good signature, others carry a bad one")
        #expect(nested > 0, "some view-changes carry a bad checkpoint signature under a good outer one")
    }

    @Test func forgedSenderSendsRefusedForgeriesThenTheGenuineMessage() {
        var layer = layer(.forgedSender)
        var rng = SplitMix64(seed: 7)
        var unknown = 0
        for _ in 0..<100 {
            let actions = layer.rewrite(.broadcast(prepare()), replica: harness.replicas[1], now: 0, rng: &rng)
            let frames = actions.compactMap { action -> Frame? in if case .broadcast(let frame) = action { frame } else { nil } }
            #expect(frames.count == actions.count)
            #expect(frames.last == prepare(), "the genuine message goes last, unchanged")
            #expect(rejection(frames.last!) == nil)
            let forgeries = frames.dropLast()
            #expect((2...3).contains(forgeries.count), "f+1 claimed replicas, now and then one more")
            #expect(Set(forgeries.map(\.envelope.message)).count == 1, "the forgeries agree with each other")
            for forged in forgeries {
                #expect(forged.envelope.sender != .replica(faulty))
                #expect(forged.envelope.message != prepare().envelope.message, "a wrong digest")
                switch rejection(forged) {
                case .badSignature?: break
                case .unknownSigner?: unknown += 1
                case let other: Issue.record("a forgery was not refused on its signature: \(String(describing: other))")
                }
            }
        }
        #expect(unknown > 0, "some forgeries claim a replica outside the membership")
    }

    @Test func garbageIsBoundedGoesOnlyToOthersAndAuthenticatesOnlyAsItsSender() {
        var layer = layer(.garbageFlood)
        layer.garbagePerPeerMax = 20
        var rng = SplitMix64(seed: 8)
        _ = layer.rewrite(.broadcast(prepare()), replica: harness.replicas[1], now: 0, rng: &rng)
        var counts: [ReplicaID: Int] = [:]
        var kinds = Set<UInt8?>()
        var authenticated = 0
        var total = 0
        for _ in 0..<50 {
            var perTick: [ReplicaID: Int] = [:]
            for (to, bytes) in layer.garbage(rng: &rng) {
                perTick[to, default: 0] += 1
                kinds.insert(bytes.first)
                total += 1
                // 'P' then a frame: what the runtime hands the authenticator.
                guard bytes.first == 0x50, let frame = try? harness.authenticator.open(Array(bytes.dropFirst())) else { continue }
                #expect(frame.value.envelope.sender == .replica(faulty), "junk authenticates only as the faulty replica itself")
                authenticated += 1
            }
            #expect(perTick[faulty] == nil)
            #expect(perTick.values.allSatisfy { $0 <= 20 })
            for (to, n) in perTick { counts[to, default: 0] += n }
        }
        #expect(Set(counts.keys) == [ReplicaID(0), ReplicaID(2), ReplicaID(3)])
        #expect(kinds.contains(0x50) && kinds.contains(0x46) && kinds.contains(0x42), "whole, fragment and bundle datagrams")
        #expect(authenticated > 0 && authenticated < total / 4, "\(authenticated) of \(total)")
        #expect(layer.garbage(rng: &rng).count <= 3 * 20)
    }

    @Test func otherBehavioursSendNoGarbage() {
        var rng = SplitMix64(seed: 9)
        for behaviour in ByzantineBehaviour.allCases where behaviour != .garbageFlood {
            var layer = layer(behaviour)
            #expect(layer.garbage(rng: &rng).isEmpty, "\(behaviour)")
        }
    }
}

/// One faulty replica among four under load, for each of the traffic-level behaviours:
/// every checker passes, and the correct replicas (and clients) did receive and refuse its
/// bad traffic.
@Suite struct ByzantineTrafficSimulationTests {
    func options(seed: UInt64, behaviour: ByzantineBehaviour, faulty: UInt32, realSignatures: Bool = false) -> SimulationOptions {
        var o = SimulationOptions(
            seed: seed, replicas: 4, clients: 4, requestsPerClient: 30,
            faults: NetworkFaults(loss: 0.02, duplication: 0.02, delayTicks: 1...3), realSignatures: realSignatures,
            checkpointInterval: 4, logWindow: 8, batchSizeMax: 4, sequencesInFlightMax: 2, clientRetransmitTicks: 80, ticksMax: 60_000)
        o.viewChangeTimeoutTicks = 150
        o.byzantine = [ReplicaID(faulty): behaviour]
        // Liveness is checked from the start: the faults last the whole run.
        o.healTick = 0
        return o
    }

    func run(_ options: SimulationOptions) throws -> (SimulationResult, correct: RejectionCounters, clients: RejectionCounters) {
        var simulation = try Simulation(options)
        let result = simulation.run()
        let label = "\(options.byzantine.values.first!.rawValue) seed \(options.seed)"
        #expect(result.passed, "\(label): \(result.violations.prefix(5)) \(result.finalStates)")
        #expect(result.completedOperations == options.clients * options.requestsPerClient, "\(label): \(result.finalStates)")
        var correct = RejectionCounters()
        var clients = RejectionCounters()
        for (node, counts) in result.rejections {
            switch node {
            case .replica(let id) where result.correctReplicas.contains(id): correct = correct + counts
            case .client: clients = clients + counts
            default: break
            }
        }
        return (result, correct, clients)
    }

    // The faulty replica is the first primary (1 is a backup) in half the cases.
    @Test(arguments: [(UInt64(51), UInt32(0)), (52, 1), (53, 2)])
    func badSignatures(_ seed: UInt64, _ faulty: UInt32) throws {
        let (_, correct, clients) = try run(options(seed: seed, behaviour: .badSignatures, faulty: faulty))
        #expect(correct.badSignature > 0, "\(correct)")
        #expect(clients.badSignature > 0, "replies too: \(clients)")
    }

    @Test(arguments: [(UInt64(61), UInt32(0)), (62, 1), (63, 2)])
    func forgedSender(_ seed: UInt64, _ faulty: UInt32) throws {
        let (_, correct, clients) = try run(options(seed: seed, behaviour: .forgedSender, faulty: faulty))
        #expect(correct.badSignature > 0, "\(correct)")
        #expect(correct.unknownSigner > 0, "\(correct)")
        #expect(clients.badSignature > 0, "forged replies: \(clients)")
    }

    @Test(arguments: [(UInt64(71), UInt32(0)), (72, 1), (73, 2)])
    func garbageFlood(_ seed: UInt64, _ faulty: UInt32) throws {
        var o = options(seed: seed, behaviour: .garbageFlood, faulty: faulty)
        o.garbagePerPeerMax = 4
        let (result, correct, _) = try run(o)
        #expect(correct.malformed > 0, "\(correct)")
        #expect(correct.badSignature > 0, "\(correct)")
        #expect(correct.datagramsDropped > 0, "\(correct)")
        // The junk it signed as itself reached the cores, which refused it on its merits.
        let refused = result.replicaCounters.filter { result.correctReplicas.contains($0.key) }.values
            .map { counters in DropReason.allCases.map { counters[$0] }.reduce(0, +) }.reduce(0, +)
        #expect(refused > 0)
    }

    @Test func allThreeWithRealSignatures() throws {
        for (i, behaviour) in [ByzantineBehaviour.badSignatures, .forgedSender, .garbageFlood].enumerated() {
            var o = options(seed: 80 + UInt64(i), behaviour: behaviour, faulty: 0, realSignatures: true)
            o.requestsPerClient = 10
            let (_, correct, _) = try run(o)
            #expect(correct.total > 0, "\(behaviour): \(correct)")
        }
    }
}

extension RejectionCounters {
    static func + (a: Self, b: Self) -> Self {
        var sum = a
        sum.malformed += b.malformed
        sum.unknownSigner += b.unknownSigner
        sum.badSignature += b.badSignature
        sum.datagramsDropped += b.datagramsDropped
        return sum
    }
}

/// The primary equivocates and votes for both of its batches (`equivocatingVoter`), at
/// n = 5, f = 1: the case where quorums of 2f + 1 = 3 could meet only in the faulty primary.
@Suite struct EquivocatingVoterTests {
    let primary = ReplicaID(0)

    /// Per backup, the digest of each message the primary sent it, checked by the real
    /// authenticator.
    func told(_ actions: [Action], _ harness: Harness) throws -> [ReplicaID: [Digest]] {
        var told: [ReplicaID: [Digest]] = [:]
        for action in actions {
            guard case .send(let frame, let to) = action else {
                Issue.record("only sends to chosen backups: \(action)")
                continue
            }
            let message = try harness.authenticated(frame).value.envelope.message
            switch message {
            case .prePrepare(let p): told[to, default: []].append(p.batchDigest)
            case .prepare(let v), .commit(let v): told[to, default: []].append(v.batchDigest)
            default: Issue.record("unexpected \(message)")
            }
        }
        return told
    }

    @Test func eachHalfOfTheBackupsIsToldOneBatchAndTheVotesForItWhateverThePrimarySendsLater() throws {
        let harness = try Harness(n: 5)
        var layer = ByzantineLayer(behaviour: .equivocatingVoter, signer: harness.signer(.replica(primary)), membership: harness.membership)
        var rng = SplitMix64(seed: 12)
        let batch = [harness.request(client: 0, timestamp: 1), harness.request(client: 1, timestamp: 1)]
        let own = harness.batchDigest(batch)
        let other = harness.batchDigest(batch.reversed())
        let prePrepare = harness.prePrepare(sequence: 1, batch: batch)

        let first = try told(layer.rewrite(.broadcast(prePrepare), replica: harness.replicas[0], now: 0, rng: &rng), harness)
        #expect(first[ReplicaID(1)] == [own, own, own] && first[ReplicaID(3)] == [own, own, own], "pre-prepare, prepare and commit")
        #expect(first[ReplicaID(2)] == [other, other, other] && first[ReplicaID(4)] == [other, other, other])
        #expect(first[primary] == nil)

        // The core's own commit once its batch prepared, and a retransmitted pre-prepare:
        // each backup hears the story it was told.
        let commit = harness.vote(.commit, sequence: 1, digest: own, from: primary.rawValue)
        let later = try told(layer.rewrite(.broadcast(commit), replica: harness.replicas[0], now: 1, rng: &rng), harness)
        #expect(later == [ReplicaID(1): [own], ReplicaID(2): [other], ReplicaID(3): [own], ReplicaID(4): [other]])
        let resent = try told(layer.rewrite(.send(prePrepare, to: ReplicaID(4)), replica: harness.replicas[0], now: 2, rng: &rng), harness)
        #expect(resent == [ReplicaID(4): [other]])

        // Another sequence number's vote goes out unchanged; so does a first pre-prepare of
        // a single request (no batch before it to tell instead).
        let unrelated = harness.vote(.commit, sequence: 2, digest: own, from: primary.rawValue)
        #expect(layer.rewrite(.broadcast(unrelated), replica: harness.replicas[0], now: 3, rng: &rng) == [.broadcast(unrelated)])
        let single = harness.prePrepare(sequence: 1, batch: [harness.request(client: 2, timestamp: 1)])
        var fresh = ByzantineLayer(behaviour: .equivocatingVoter, signer: harness.signer(.replica(primary)), membership: harness.membership)
        #expect(fresh.rewrite(.broadcast(single), replica: harness.replicas[0], now: 4, rng: &rng) == [.broadcast(single)])
    }

    /// With quorums of ceil((n + f + 1) / 2) = 4, neither half (two backups) can prepare or
    /// commit its batch, so the correct replicas never diverge and a view change replaces
    /// the primary. With quorums of 2f + 1 = 3 each half commits its own batch (its two
    /// prepares, its two commits and the primary's) and agreement fails.
    @Test(arguments: [UInt64(181), 182, 183, 184, 185])
    func equivocatingVoterAtFiveReplicasNeverSplitsTheCorrectOnes(_ seed: UInt64) throws {
        var o = SimulationOptions(
            seed: seed, replicas: 5, clients: 6, requestsPerClient: 20,
            faults: NetworkFaults(loss: 0.03, duplication: 0.02, delayTicks: 1...3), checkpointInterval: 4, logWindow: 8,
            batchSizeMax: 4, sequencesInFlightMax: 1, clientRetransmitTicks: 80, ticksMax: 60_000)
        o.viewChangeTimeoutTicks = 150
        o.byzantine = [primary: .equivocatingVoter]
        o.healTick = 0
        var simulation = try Simulation(o)
        let result = simulation.run()
        #expect(result.passed, "seed \(seed): \(result.violations.prefix(5)) \(result.finalStates)")
        #expect(result.completedOperations == o.clients * o.requestsPerClient, "seed \(seed): \(result.finalStates)")

        // The equivocation reached the backups: correct replicas prepared different batches
        // at one view and sequence number, and the primary was replaced.
        var digests: [SequenceNumber: Set<Digest>] = [:]
        for (replica, votes) in result.votesSent where result.correctReplicas.contains(replica) {
            for vote in votes where vote.view == ViewNumber(0) { digests[vote.sequence, default: []].insert(vote.digest) }
        }
        #expect(digests.values.contains { $0.count == 2 }, "seed \(seed): no two correct replicas voted for different batches")
        #expect(result.highestView >= ViewNumber(1), "seed \(seed)")
    }
}
