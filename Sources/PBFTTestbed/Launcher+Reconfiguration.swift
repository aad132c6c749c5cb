import Foundation
import PBFTCluster
import PBFTCore
import PBFTRuntime
import PBFTWire

/// A reconfiguration the replicas accepted, until a member reports being in its epoch.
struct PendingReconfiguration {
    var membership: Membership
    /// The replicas' answer ("ok: e1 (n = 5, f = 1) starts after sequence 96").
    var answer: String
    var submitted: ContinuousClock.Instant
}

// Reconfigurations (docs/faults.md, "Reconfiguration"): the launcher prepares a new replica
// (key, ports, proxy sockets, cluster file, process), submits the operator-signed change
// through a client of its own, and reports the replicas' answer. It submits one at a time
// and only once the epoch the last one decided has begun: a new replica's cluster file
// names the epoch it joins, which must be exactly the membership the replicas will enter.
extension Launcher {
    /// How long the replicas have to answer a reconfiguration.
    static let answerMilliseconds = 20_000
    /// How long a reconfiguration waits for the epoch the previous one decided.
    static let epochWaitSeconds = 30
    static let localHosts: Set<String> = ["127.0.0.1", "localhost", "::1", "[::1]"]

    func reconfigure(_ request: LaunchRequest) async throws -> String {
        guard !reconfiguring else { throw FaultError("another reconfiguration is in progress; try again once it is answered") }
        reconfiguring = true
        defer { reconfiguring = false }
        try await waitForPendingEpoch()
        switch request.verb {
        case .addReplica:
            return try await addReplica(request, replacing: nil)
        case .replaceReplica:
            return try await addReplica(request, replacing: try await resolve(request.target(replicas: ids)))
        case .removeReplica:
            let old = try await resolve(request.target(replicas: ids))
            return try await submit(.removeReplica(old), next: nil, removing: old)
        case .setF:
            guard let f = request.faultTolerance, (1...Int(UInt32.max)).contains(f) else { throw FaultError("set-f: f is a whole number, at least 1") }
            return try await submit(.setFaultTolerance(UInt32(f)), next: nil, removing: nil)
        default:
            throw FaultError("\(request.verb.rawValue) is not a reconfiguration")
        }
    }

    /// Waits for the epoch the last reconfiguration decided to begin, polling the replicas.
    func waitForPendingEpoch() async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(Self.epochWaitSeconds))
        while pending != nil, ContinuousClock.now < deadline {
            _ = await replicaStatuses()
            if pending == nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        if let waiting = pending {
            throw FaultError("\(waiting.membership.epoch), which '\(waiting.answer)' decided, has not begun after \(Self.epochWaitSeconds) s; a further reconfiguration waits for it")
        }
    }

    /// `add-replica` and `replace-replica`: a new replica started from the cluster file of
    /// the next epoch, then the change that makes it a member.
    func addReplica(_ request: LaunchRequest, replacing old: ReplicaID?) async throws -> String {
        let id = try newReplicaID(request.newReplica)
        let host = request.host ?? "127.0.0.1"
        guard Self.localHosts.contains(host) else { throw FaultError("--host \(host): the launch runs every replica on this machine (127.0.0.1)") }
        let port = try request.port ?? consecutiveFreeUDPPorts(count: 1)
        guard proxy != nil || isFreeUDPPort(port) else { throw FaultError("--port \(port): the port is in use on this machine") }
        let joiner: Joiner
        do { joiner = try Joiner.make(id: id, host: host, port: UInt16(port), joining: membership, replacing: old) } catch {
            throw FaultError("cannot add replica \(id.rawValue): \(error)")
        }
        try await prepare(joiner)
        do {
            try await startReplica(id, lostState: false)
        } catch {
            await abandon(id, reason: "did not start: \(error)")
            throw error
        }
        events.record("replica_added", [
            "replica": Int(id.rawValue), "pid": Int(slots[id]!.child!.pid), "address": "\(host):\(port)",
            "private": privateAddresses[id]!.description, "epoch": Int(joiner.membership.epoch.rawValue),
            "cluster": startingClusterFile(id, twin: false), "replaces": old.map { Int($0.rawValue) } ?? -1,
        ])
        try writeLaunchFile()
        do {
            return try await submit(joiner.change, next: joiner.membership, removing: old)
        } catch {
            await abandon(id, reason: "the cluster did not add it: \(error)")
            throw error
        }
    }

    /// The id given, which no replica of this launch may have had, or the next unused one.
    func newReplicaID(_ text: String?) throws -> ReplicaID {
        guard let text else { return ReplicaID((slots.keys.map(\.rawValue).max() ?? 0) + 1) }
        guard let raw = UInt32(text) else { throw FaultError("'\(text)' is not a replica id") }
        if let slot = slots[ReplicaID(raw)] {
            throw FaultError("replica \(raw) was started by this launch before (now \(slot.state.rawValue)); a new replica needs an id never used")
        }
        return ReplicaID(raw)
    }

    /// Its key and the next epoch's public cluster file in the keys directory, its proxy
    /// sockets and private addresses, its slot; the other replicas' files get its route.
    func prepare(_ joiner: Joiner) async throws {
        let id = joiner.descriptor.id
        let written: (key: String, cluster: String)
        do { written = try joiner.write(to: keysDirectory, overwrite: false) } catch { throw FaultError("\(error)") }
        let front = HostPort(host: joiner.descriptor.host, port: Int(joiner.descriptor.port))
        var privateAddress = front, twinAddress = front
        if let proxy {
            do {
                // Held while the proxy binds, so none of its sockets gets these ports.
                let reserved = try ReservedPorts(count: 2)
                privateAddress = HostPort(host: "127.0.0.1", port: reserved.ports[0])
                twinAddress = HostPort(host: "127.0.0.1", port: reserved.ports[1])
                try await proxy.addReplica(id, front: front, address: privateAddress, twin: twinAddress)
                reserved.release()
            } catch {
                try? FileManager.default.removeItem(atPath: written.key)
                try? FileManager.default.removeItem(atPath: written.cluster)
                throw FaultError("cannot give replica \(id.rawValue) its address \(front): \(error)")
            }
        }
        privateAddresses[id] = privateAddress
        twinAddresses[id] = twinAddress
        slots[id] = Slot(joined: joiner.membership, previous: joiner.previous, epoch: joiner.membership.epoch)
        // Its status replies are signed in the epoch it joins.
        memberships[joiner.membership.epoch] = joiner.membership
        updateControlTargets()
        if proxy != nil {
            // For their next start; the running processes reach it at its public address.
            for other in slots.keys where other != id && slots[other]!.state != .retired {
                try writeClusterFile(for: other, twin: false, linked: Set(slots.keys).subtracting([other]))
            }
        }
    }

    /// A new replica the cluster did not take: its process is stopped, its id stays used.
    func abandon(_ id: ReplicaID, reason: String) async {
        if let child = slots[id]?.child {
            slots[id]!.state = .stopped
            await terminate(child, grace: 2)
        }
        if let epoch = slots[id]?.joined.epoch, pending?.membership.epoch != epoch, epoch != membership.epoch {
            memberships[epoch] = nil
            updateControlTargets()
        }
        events.record("replica_abandoned", ["replica": Int(id.rawValue), "reason": reason])
        try? writeLaunchFile()
    }

    /// Submits `change` signed by the operator and returns the replicas' answer; an
    /// "error: ..." answer, or none, is thrown as the reason.
    func submit(_ change: ReconfigurationChange, next: Membership?, removing old: ReplicaID?) async throws -> String {
        let text = Self.describe(change)
        let client = try ClientNode(membership: membership, key: operatorKey, tickMilliseconds: 10, retransmitTicks: 50)
        try await client.start(host: "127.0.0.1")
        events.record("reconfiguration_submitted", ["change": text, "epoch": Int(membership.epoch.rawValue)])
        let submitted = ContinuousClock.now
        let answer: String
        do { answer = try await client.submit(change, timeoutMilliseconds: Self.answerMilliseconds) } catch {
            await client.close()
            events.record("reconfiguration_answered", ["change": text, "answer": "", "timed_out": true])
            throw FaultError("no answer from f+1 = \(membership.weakQuorum) replicas within \(Self.answerMilliseconds / 1000) s (\(error)); the change may still be ordered")
        }
        await client.close()
        let seconds = Self.seconds(ContinuousClock.now - submitted)
        events.record("reconfiguration_answered", ["change": text, "answer": answer, "seconds": seconds])
        guard answer.hasPrefix("ok") else { throw FaultError(answer) }
        guard let decided = next ?? (try? membership.applying(change)) else {
            return answer + " (the launcher cannot tell the new membership: it no longer follows the epochs)"
        }
        pending = PendingReconfiguration(membership: decided, answer: answer, submitted: submitted)
        memberships[decided.epoch] = decided
        if let old { removing.insert(old) }
        try? ClusterFile.write(decided, previous: membership, to: keysDirectory + "/" + Joiner.clusterFileName(epoch: decided.epoch), overwrite: true)
        updateControlTargets()
        watchForEpoch()
        return answer
    }

    /// Polls the replicas until the decided epoch begins, so its `epoch` event has its time
    /// even when nobody asks for status.
    func watchForEpoch() {
        guard watcher == nil else { return }
        watcher = Task { [weak self] in
            let deadline = ContinuousClock.now.advanced(by: .seconds(120))
            while ContinuousClock.now < deadline {
                guard let self, await self.waitsForEpoch else { break }
                await self.pollStatuses()
                try? await Task.sleep(for: .milliseconds(50))
            }
            await self?.watcherDone()
        }
    }

    var waitsForEpoch: Bool { pending != nil && !shuttingDown }

    func pollStatuses() async { _ = await replicaStatuses() }

    func watcherDone() { watcher = nil }

    /// Notes the epoch each replica reports, if it is a member of it (its commands are
    /// signed in it, and it answers in it; a retired replica keeps its last own epoch) and,
    /// once a member of the decided epoch is in it, makes that epoch the one in force.
    func observeEpochs(_ statuses: [ReplicaID: [String: Any]]) {
        var moved = false
        for (id, status) in statuses {
            guard let raw = (status["epoch"] as? NSNumber)?.uint64Value, memberships[Epoch(raw)]?.replica(id) != nil, slots[id]?.epoch != Epoch(raw) else { continue }
            slots[id]!.epoch = Epoch(raw)
            moved = true
        }
        defer { if moved { updateControlTargets() } }
        guard let next = pending else { return }
        let entered = statuses.filter { id, status in
            next.membership.replica(id) != nil && (status["joining"] as? Bool) == false
                && ((status["epoch"] as? NSNumber)?.uint64Value ?? 0) >= next.membership.epoch.rawValue
        }
        guard let (reporter, status) = entered.min(by: { $0.key < $1.key }) else { return }
        membership = next.membership
        pending = nil
        events.record("epoch", [
            "epoch": Int(next.membership.epoch.rawValue), "n": next.membership.n, "f": next.membership.f,
            "members": next.membership.replicas.map { Int($0.id.rawValue) }, "first_sequence": (status["epoch_start"] as? NSNumber)?.intValue ?? -1,
            "seconds_after_submitted": Self.seconds(ContinuousClock.now - next.submitted), "reported_by": Int(reporter.rawValue),
        ])
        try? writeLaunchFile()
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func describe(_ change: ReconfigurationChange) -> String {
        switch change {
        case .addReplica(let r): "add replica \(r.id.rawValue) at \(r.host):\(r.port)"
        case .removeReplica(let id): "remove replica \(id.rawValue)"
        case .replaceReplica(let old, let r): "replace replica \(old.rawValue) by \(r.id.rawValue) at \(r.host):\(r.port)"
        case .setFaultTolerance(let f): "set f = \(f)"
        }
    }
}
