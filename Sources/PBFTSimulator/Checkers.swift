import PBFTCore
import PBFTCrypto
import PBFTWire

/// The checks every simulated run must pass; each returns human-readable violations.
public enum Checkers {
    public static func check(_ result: SimulationResult) -> [String] {
        var correct = result
        correct.executions = result.executions.filter { result.correctReplicas.contains($0.key) }
        correct.checkpoints = result.checkpoints.filter { result.correctReplicas.contains($0.key) }
        return agreement(correct) + integrity(correct) + checkpoints(correct) + replies(correct) + liveness(result) + evidence(result)
            + epochs(result) + reconfigurations(result) + convergence(result)
    }

    /// Convergence: once the network has healed (GST) and the load has ended, the correct
    /// replicas that are up agree on where they stand (`unconverged`). A run that stalls
    /// otherwise fails, naming the replica and the state it is stuck in: a cluster that
    /// answered every client but left a replica alone in a view change, passive, joining, or
    /// an epoch behind has lost a replica's worth of fault tolerance for good.
    public static func convergence(_ result: SimulationResult) -> [String] {
        let options = result.options
        guard let heal = options.healTick ?? (options.isolations.isEmpty && options.crashes.isEmpty && options.byzantine.isEmpty ? 0 : nil),
              result.ticks > heal
        else { return [] }
        let judged = result.endStates.values.filter { result.correctReplicas.contains($0.id) && !$0.down }
        return unconverged(judged.sorted { $0.id < $1.id })
    }

    /// What keeps `states` (correct replicas that are up) from having converged: each member
    /// of the newest epoch among them must be in that epoch, past joining and amnesia, in the
    /// same active view and at the same stable checkpoint as the others; a replica that the
    /// newest epoch left out must have retired.
    public static func unconverged(_ states: [ReplicaEndState]) -> [String] {
        guard let newest = states.max(by: { $0.epoch < $1.epoch }) else { return [] }
        let epoch = newest.epoch
        let members = Set(newest.members)
        let inEpoch = states.filter { members.contains($0.id) && $0.epoch == epoch && !$0.joining && !$0.passive }
        let view = inEpoch.filter(\.viewActive).map(\.view).max()
        let stable = inEpoch.map(\.stableSequence).max()
        var violations: [String] = []
        for state in states {
            let problem: String?
            if !members.contains(state.id) {
                problem = state.retired ? nil : "left out of \(epoch) but not retired"
            } else if state.epoch != epoch {
                problem = "still in \(state.epoch), the others in \(epoch)"
            } else if state.joining {
                problem = "still joining"
            } else if state.passive {
                problem = "still passive after amnesia"
            } else if !state.viewActive {
                problem = "in a view change to \(state.view)" + (view.map { $0 != state.view ? " (the others active in \($0))" : "" } ?? "")
            } else if let view, state.view != view {
                problem = "in \(state.view), the others in \(view)"
            } else if let stable, state.stableSequence != stable {
                problem = "stable checkpoint \(state.stableSequence.rawValue), the others \(stable.rawValue)"
            } else {
                problem = nil
            }
            if let problem { violations.append("convergence: \(state.id) \(problem) (\(state))") }
        }
        return violations
    }

    /// Epochs: every correct replica that entered an epoch entered it with the same
    /// membership at the same sequence number, and none executed a sequence number of an
    /// epoch it was not a member of.
    public static func epochs(_ result: SimulationResult) -> [String] {
        var violations: [String] = []
        var reference: [Epoch: (ReplicaID, Membership, SequenceNumber)] = [:]
        for replica in result.epochs.keys.sorted() where result.correctReplicas.contains(replica) {
            for entered in result.epochs[replica]! {
                let epoch = entered.membership.epoch
                if let (other, membership, first) = reference[epoch] {
                    if membership != entered.membership || first != entered.firstSequence {
                        violations.append("epochs: \(replica) entered \(epoch) as \(entered.membership) from \(entered.firstSequence), \(other) as \(membership) from \(first)")
                    }
                } else {
                    reference[epoch] = (replica, entered.membership, entered.firstSequence)
                }
            }
            if let retiredAt = result.retired[replica], let epochs = result.epochs[replica], let last = epochs.last,
               let batches = result.executions[replica], let executed = batches.last, executed.sequence >= last.firstSequence {
                violations.append("epochs: \(replica) retired at tick \(retiredAt) but executed \(executed.sequence) of \(last.membership.epoch)")
            }
        }
        return violations
    }

    /// Every reconfiguration the operator submitted was answered, once the network healed,
    /// within the liveness bound, and by the outcome the scenario expects ("ok" for all of
    /// them: scenarios schedule valid changes).
    public static func reconfigurations(_ result: SimulationResult) -> [String] {
        let scheduled = result.options.reconfigurations.count
        var violations: [String] = []
        if result.reconfigurations.count < scheduled, liveness(result).isEmpty, result.options.healTick != nil || result.options.byzantine.isEmpty {
            violations.append("reconfiguration: \(result.reconfigurations.count) of \(scheduled) submitted by the end")
        }
        for outcome in result.reconfigurations {
            guard let answer = outcome.result else {
                violations.append("reconfiguration: \(outcome.change) submitted at tick \(outcome.submittedTick) was never answered")
                continue
            }
            if !answer.hasPrefix("ok:") { violations.append("reconfiguration: \(outcome.change) answered \"\(answer)\"") }
        }
        return violations
    }

    /// Evidence (two conflicting messages one replica signed) never names a correct replica.
    public static func evidence(_ result: SimulationResult) -> [String] {
        result.evidence.keys.compactMap { principal in
            guard case .replica(let id) = principal, result.correctReplicas.contains(id) else { return nil }
            return "evidence: correct replica \(id) signed two conflicting messages (\(result.evidence[principal]!) reports)"
        }
    }

    /// Liveness after the network heals (GST): every operation completes, and none takes
    /// longer than the stated bound from the later of its invocation and GST.
    public static func liveness(_ result: SimulationResult) -> [String] {
        let options = result.options
        let expected = options.clients * options.requestsPerClient
        guard let heal = options.healTick ?? (options.isolations.isEmpty && options.crashes.isEmpty && options.byzantine.isEmpty ? 0 : nil) else {
            return []
        }
        var violations: [String] = []
        if result.completedOperations < expected {
            violations.append("liveness: \(result.completedOperations) of \(expected) operations completed in \(result.ticks) ticks")
        }
        for operation in result.history {
            let start = max(operation.invokedTick, heal)
            let end = operation.completedTick ?? result.ticks
            if end > start + options.livenessBoundTicks {
                violations.append("liveness: c\(operation.client.rawValue)/\(operation.timestamp) took \(end - start) ticks after GST (bound \(options.livenessBoundTicks))")
                break
            }
        }
        return violations
    }

    /// Agreement: every replica executed the same batch, with the same requests and results,
    /// at each sequence number; and each replica's log is gap-free from 1.
    public static func agreement(_ result: SimulationResult) -> [String] {
        var violations: [String] = []
        var reference: [SequenceNumber: (ReplicaID, ExecutedBatch)] = [:]
        for replica in result.executions.keys.sorted() {
            let installs = Set(result.stateTransfers[replica] ?? [])
            var previous = SequenceNumber(0)
            for batch in result.executions[replica]! {
                // Execution is gap-free, except right after a state installed by transfer.
                let next = SequenceNumber(previous.rawValue + 1)
                if batch.sequence != next, !(batch.sequence > next && installs.contains { $0 >= previous && $0 < batch.sequence }) {
                    violations.append("agreement: \(replica) executed \(batch.sequence) after \(previous)")
                    break
                }
                previous = batch.sequence
                if let (other, theirs) = reference[batch.sequence] {
                    if theirs.batchDigest != batch.batchDigest || theirs.requests != batch.requests {
                        violations.append("agreement: \(replica) and \(other) executed different batches at \(batch.sequence)")
                    }
                } else {
                    reference[batch.sequence] = (replica, batch)
                }
            }
        }
        return violations
    }

    /// Integrity: each request executes at most once per replica, and only requests a
    /// client signed execute.
    public static func integrity(_ result: SimulationResult) -> [String] {
        var violations: [String] = []
        for replica in result.executions.keys.sorted() {
            var seen = Set<String>()
            for batch in result.executions[replica]! {
                for request in batch.requests {
                    if !seen.insert("\(request.requester)/\(request.timestamp)").inserted {
                        violations.append("integrity: \(replica) executed \(request.requester)/\(request.timestamp) twice")
                    }
                    if !result.signedRequests.contains(request.requestDigest) {
                        violations.append("integrity: \(replica) executed a request no client signed at \(batch.sequence)")
                    }
                }
            }
        }
        return violations
    }

    /// Checkpoint digests agree: all replicas that took a checkpoint at a sequence number
    /// computed the same state digest.
    public static func checkpoints(_ result: SimulationResult) -> [String] {
        var violations: [String] = []
        var reference: [SequenceNumber: (ReplicaID, Digest)] = [:]
        for replica in result.checkpoints.keys.sorted() {
            for checkpoint in result.checkpoints[replica]! {
                if let (other, digest) = reference[checkpoint.sequence] {
                    if digest != checkpoint.stateDigest {
                        violations.append("checkpoint: \(replica) and \(other) disagree on the state at \(checkpoint.sequence)")
                    }
                } else {
                    reference[checkpoint.sequence] = (replica, checkpoint.stateDigest)
                }
            }
        }
        return violations
    }

    /// A client's accepted result is the one the replicas computed for that request.
    public static func replies(_ result: SimulationResult) -> [String] {
        var executed: [String: Digest] = [:]
        for batches in result.executions.values {
            for batch in batches {
                for request in batch.requests { executed["\(request.requester)/\(request.timestamp)"] = request.resultDigest }
            }
        }
        var violations: [String] = []
        for operation in result.history where operation.completedTick != nil {
            let key = "\(Principal.client(operation.client))/\(operation.timestamp)"
            guard let resultDigest = executed[key] else {
                violations.append("reply: \(key) completed at its client but no replica executed it")
                continue
            }
            guard let value = operation.result, SHA256Digester().digest(value.encoded()) == resultDigest else {
                violations.append("reply: \(key) completed with a result no replica computed")
                continue
            }
        }
        return violations
    }
}
