import Foundation

/// A results folder as `pbft run` writes it (docs/experiments.md), read back for checking:
/// the scenario as run, the event log, the client history and each replica's execution log.
public struct ResultsFolder: Sendable {
    public let path: String
    public let name: String
    public let purpose: String
    public let seed: UInt64
    public let version: String
    public let started: String
    /// n and f of the first epoch.
    public let replicas: Int
    public let f: Int
    /// Every replica the run started: the first ones and any a reconfiguration added.
    public let replicaIDs: [Int]
    /// Replicas that were ever Byzantine or twinned: not judged as correct.
    public let byzantineReplicas: Set<Int>
    public let livenessBoundSeconds: Double
    public let settings: [RunReport.Setting]
    public let events: [Event]
    /// Seconds from the launch's start to the load's start: event times minus this are load times.
    public let loadOffset: Double
    public let durationSeconds: Double
    /// Where each replica stood when the runner stopped waiting after the load (its
    /// `final_status` events); empty in a folder written before the runner recorded them.
    public let finalStates: [ReplicaFinalState]

    /// One line of events.jsonl, its time moved to the load's clock.
    public struct Event: Sendable {
        public let time: Double
        public let kind: String
        public let fields: [String: String]
        public func int(_ key: String) -> Int? { fields[key].flatMap { Int($0) } }
    }

    public static func open(_ path: String) throws -> ResultsFolder {
        func read(_ name: String) throws -> Data {
            guard let data = FileManager.default.contents(atPath: path + "/" + name) else {
                throw CheckError("\(path)/\(name): missing; is this a results folder written by pbft run?")
            }
            return data
        }
        guard let scenario = try JSONSerialization.jsonObject(with: read("scenario.json")) as? [String: Any],
              let cluster = scenario["cluster"] as? [String: Any], let n = cluster["replicas"] as? Int, let f = cluster["f"] as? Int
        else { throw CheckError("\(path)/scenario.json: not a scenario written by pbft run") }
        var events: [(Double, String, [String: String])] = []
        var finalStates: [ReplicaFinalState] = []
        for (index, line) in String(decoding: try read("events.jsonl"), as: UTF8.self).split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let elapsed = (object["elapsed"] as? NSNumber)?.doubleValue, let kind = object["event"] as? String
            else { throw CheckError("\(path)/events.jsonl: line \(index + 1) is not an event") }
            if kind == "final_status" {
                do { finalStates.append(try JSONDecoder().decode(ReplicaFinalState.self, from: Data(line.utf8))) } catch {
                    throw CheckError("\(path)/events.jsonl: line \(index + 1): not a replica's final status (\(error))")
                }
            }
            var fields: [String: String] = [:]
            for (key, value) in object where key != "elapsed" && key != "event" && key != "time" {
                if let groups = value as? [[Any]] {
                    fields[key] = groups.map { $0.map { "\($0)" }.joined(separator: ",") }.joined(separator: " / ")
                } else if let array = value as? [Any] {
                    fields[key] = array.map { "\($0)" }.joined(separator: ",")
                } else {
                    fields[key] = "\(value)"
                }
            }
            events.append((elapsed, kind, fields))
        }
        let offset = events.first { $0.1 == "load_start" }?.0 ?? 0
        let load = scenario["load"] as? [String: Any] ?? [:]
        var settings: [RunReport.Setting] = []
        for key in ["replicas", "f", "tick_ms", "view_change_timeout_ticks", "checkpoint_interval", "log_window", "batch_size", "allow_byzantine", "sync"] {
            if let value = cluster[key] { settings.append(RunReport.Setting(key, "\(value)")) }
        }
        for key in ["clients", "rate", "duration_s", "keys"] { if let value = load[key] { settings.append(RunReport.Setting("load." + key, "\(value)")) } }
        if let budget = scenario["budget"] as? [String: Any] { settings.append(RunReport.Setting("fault budget", "\(budget["faulty"] ?? "?")\((budget["beyond"] as? Bool) == true ? " (exceeded on purpose)" : "")")) }
        return ResultsFolder(
            path: path, name: scenario["name"] as? String ?? "?", purpose: scenario["description"] as? String ?? "",
            seed: (scenario["seed"] as? NSNumber)?.uint64Value ?? 0, version: scenario["version"] as? String ?? "?",
            started: scenario["started"] as? String ?? "?", replicas: n, f: f,
            replicaIDs: (scenario["replica_ids"] as? [Int]) ?? startedReplicas(path, first: n),
            byzantineReplicas: Set(scenario["byzantine_replicas"] as? [Int] ?? []),
            livenessBoundSeconds: (scenario["liveness_bound_s"] as? NSNumber)?.doubleValue ?? 10,
            settings: settings,
            events: events.map { Event(time: $0.0 - offset, kind: $0.1, fields: $0.2) },
            loadOffset: offset, durationSeconds: (load["duration_s"] as? NSNumber)?.doubleValue ?? 0, finalStates: finalStates)
    }

    public var correctReplicas: [Int] { replicaIDs.filter { !byzantineReplicas.contains($0) } }

    /// The replicas with a data directory (data/rI), and at least the first `n`.
    static func startedReplicas(_ path: String, first n: Int) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path + "/data")) ?? []
        let found = names.compactMap { $0.hasPrefix("r") ? Int($0.dropFirst()) : nil }
        return Set(found).union(0..<n).sorted()
    }

    public func events(_ kind: String) -> [Event] { events.filter { $0.kind == kind } }

    public func executionLogPath(_ replica: Int) -> String { path + "/data/r\(replica)/execution.jsonl" }
}

public struct CheckError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A replica's execution.jsonl (docs/runtime.md).
public struct ExecutionRecord: Sendable {
    public struct Request: Sendable, Hashable {
        public let requester: String
        public let timestamp: UInt64
        public let request: String
        public let result: String
    }

    /// Executed batches by sequence number: the batch digest and its requests. A restart
    /// may execute a sequence number again; the later record is kept, and a difference
    /// between the two is reported in `reexecutedDifferently`.
    public var batches: [UInt64: (batch: String, requests: [Request])] = [:]
    /// Checkpoint digests by sequence number (taken, or installed by state transfer).
    public var checkpoints: [UInt64: String] = [:]
    public var reexecutedDifferently: [UInt64] = []
    public var installed: [UInt64] = []
    /// The epochs the replica entered, by epoch: the first sequence number and the members.
    public var epochs: [UInt64: EpochEntry] = [:]
    /// Epochs it recorded entering twice, differently.
    public var epochsDiffering: [UInt64] = []

    /// An "epoch" line: `epoch` is in force from sequence number `first` on.
    public struct EpochEntry: Sendable, Hashable {
        public let first: UInt64
        public let n: Int
        public let f: Int
        public let replicas: [Int]

        public var description: String { "from \(first) (n = \(n), f = \(f); \(replicas.map { "r\($0)" }.joined(separator: ",")))" }
    }

    public static func read(_ path: String) throws -> ExecutionRecord {
        var record = ExecutionRecord()
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return record }
        for (index, line) in text.split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let type = object["type"] as? String, let seq = (object["seq"] as? NSNumber)?.uint64Value
            else { throw CheckError("\(path): line \(index + 1) is not an execution record") }
            switch type {
            case "executed":
                let requests = (object["requests"] as? [[String: Any]] ?? []).map {
                    Request(requester: $0["requester"] as? String ?? "?", timestamp: ($0["timestamp"] as? NSNumber)?.uint64Value ?? 0,
                            request: $0["request"] as? String ?? "?", result: $0["result"] as? String ?? "?")
                }
                let batch = object["batch"] as? String ?? "?"
                if let previous = record.batches[seq], previous.batch != batch || previous.requests != requests {
                    record.reexecutedDifferently.append(seq)
                }
                record.batches[seq] = (batch, requests)
            case "checkpoint", "installed":
                if let digest = object["digest"] as? String { record.checkpoints[seq] = digest }
                if type == "installed" { record.installed.append(seq) }
            case "epoch":
                guard let epoch = (object["epoch"] as? NSNumber)?.uint64Value else { throw CheckError("\(path): line \(index + 1): an epoch line without its epoch") }
                let entry = EpochEntry(first: seq, n: object["n"] as? Int ?? 0, f: object["f"] as? Int ?? 0, replicas: object["replicas"] as? [Int] ?? [])
                if let earlier = record.epochs[epoch] {
                    if earlier != entry { record.epochsDiffering.append(epoch) }
                } else {
                    record.epochs[epoch] = entry
                }
            default:
                break
            }
        }
        return record
    }
}

/// The checkers of a results folder that need only the replicas' execution logs, the event
/// log and the history's times: agreement, integrity, checkpoint digests and liveness. The
/// linearizability checker is `checkLinearizability`.
public enum ResultsCheck {
    /// Every correct replica executed the same batch, requests and results at every
    /// sequence number they both executed, and none executed one twice differently.
    public static func agreement(_ logs: [Int: ExecutionRecord]) -> RunReport.Verdict {
        var problems: [String] = []
        let ids = logs.keys.sorted()
        var compared = 0
        for id in ids where !logs[id]!.reexecutedDifferently.isEmpty {
            problems.append("r\(id) executed \(logs[id]!.reexecutedDifferently.prefix(3).map { "\($0)" }.joined(separator: ", ")) twice with different batches")
        }
        for (i, a) in ids.enumerated() {
            for b in ids[(i + 1)...] {
                for (seq, x) in logs[a]!.batches.sorted(by: { $0.key < $1.key }) {
                    guard let y = logs[b]!.batches[seq] else { continue }
                    compared += 1
                    if x.batch != y.batch || x.requests != y.requests {
                        problems.append("r\(a) and r\(b) executed different batches at \(seq): \(x.batch.prefix(16)) vs \(y.batch.prefix(16))")
                        break
                    }
                }
            }
        }
        let top = ids.map { logs[$0]!.batches.keys.max() ?? 0 }
        let detail = problems.isEmpty
            ? "\(ids.count) correct replicas (\(ids.map { "r\($0)" }.joined(separator: ", "))) agree on \(compared) shared sequence-number pairs; last executed \(top.map { "\($0)" }.joined(separator: "/"))"
            : problems.joined(separator: "\n")
        return RunReport.Verdict("agreement", passed: problems.isEmpty, detail: detail)
    }

    /// Each request executed at most once per replica, only by clients of the cluster (or
    /// the operator's reconfigurations), and no client has more requests executed than it
    /// invoked operations, nor the operator more than it submitted.
    public static func integrity(_ logs: [Int: ExecutionRecord], invokedPerClient: [Int: Int], operatorSubmitted: Int = 0) -> RunReport.Verdict {
        var problems: [String] = []
        for (id, log) in logs.sorted(by: { $0.key < $1.key }) {
            var seen: [String: UInt64] = [:]
            var perClient: [String: Set<UInt64>] = [:]
            for (seq, batch) in log.batches.sorted(by: { $0.key < $1.key }) {
                for request in batch.requests {
                    let key = "\(request.requester)/\(request.timestamp)"
                    if let first = seen[key] {
                        problems.append("r\(id) executed \(key) twice (at \(first) and \(seq))")
                    }
                    seen[key] = seq
                    perClient[request.requester, default: []].insert(request.timestamp)
                }
            }
            for (requester, timestamps) in perClient {
                if requester == "operator" {
                    if timestamps.count > operatorSubmitted {
                        problems.append("r\(id) executed \(timestamps.count) reconfigurations of the operator, which submitted only \(operatorSubmitted)")
                    }
                    continue
                }
                guard requester.hasPrefix("c"), let client = Int(requester.dropFirst()) else {
                    problems.append("r\(id) executed requests of \(requester), which is not a client")
                    continue
                }
                if let invoked = invokedPerClient[client], timestamps.count > invoked {
                    problems.append("r\(id) executed \(timestamps.count) requests of \(requester), which invoked only \(invoked)")
                }
            }
        }
        let executed = logs.values.map { $0.batches.values.reduce(0) { $0 + $1.requests.count } }.max() ?? 0
        let operatorPart = operatorSubmitted > 0 ? " (the operator's reconfigurations included: \(operatorSubmitted) submitted)" : ""
        return RunReport.Verdict("integrity", passed: problems.isEmpty,
                                 detail: problems.isEmpty ? "\(executed) requests executed, each once, all from clients that invoked them\(operatorPart)" : problems.prefix(10).joined(separator: "\n"))
    }

    /// Every checkpoint the correct replicas took or installed at a sequence number has one digest.
    public static func checkpoints(_ logs: [Int: ExecutionRecord]) -> RunReport.Verdict {
        var digests: [UInt64: [String: [Int]]] = [:]
        for (id, log) in logs { for (seq, digest) in log.checkpoints { digests[seq, default: [:]][digest, default: []].append(id) } }
        let split = digests.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }
        let detail = split.isEmpty
            ? "\(digests.count) checkpoints, one digest each"
            : split.prefix(5).map { seq, by in "at \(seq): " + by.map { "\($0.key.prefix(16)) by \($0.value.sorted().map { "r\($0)" }.joined(separator: ","))" }.joined(separator: " vs ") }.joined(separator: "\n")
        return RunReport.Verdict("checkpoints", passed: split.isEmpty, detail: detail)
    }

    /// The longest time without any completion while the load ran (from its first to its last completion).
    public static func longestGap(_ operations: [(invoked: Double, completed: Double?)]) -> (length: Double, from: Double)? {
        let times = operations.compactMap(\.completed).sorted()
        guard times.count >= 2 else { return nil }
        var best = (length: 0.0, from: times[0])
        for (a, b) in zip(times, times.dropFirst()) where b - a > best.length { best = (b - a, a) }
        return best
    }

    /// After the last fault was healed, operations complete again within the bound.
    /// `operations` are (invoked, completed) in load time; `lastHeal` is when the last fault ended.
    public static func liveness(_ operations: [(invoked: Double, completed: Double?)], lastHeal: Double, duration: Double, bound: Double) -> RunReport.Verdict {
        let after = operations.filter { $0.invoked >= lastHeal }
        // An operation invoked too close to the end may still be in flight when the load stops.
        let judged = after.filter { $0.invoked <= duration - bound || $0.completed != nil }
        let late = judged.filter { op in op.completed.map { $0 - op.invoked > bound } ?? true }
        let firstCompletion = operations.compactMap(\.completed).filter { $0 >= lastHeal }.min()
        var problems: [String] = []
        if lastHeal + bound < duration, firstCompletion.map({ $0 - lastHeal > bound }) ?? true {
            problems.append("no operation completed within \(bound) s of the last fault ending at \(String(format: "%.1f", lastHeal)) s")
        }
        if let last = operations.compactMap(\.completed).max(), last < duration - bound {
            problems.append(String(format: "the service stopped: the last operation completed at %.2f s, more than %.1f s before the load ended at %.1f s", last, bound, duration))
        }
        if !late.isEmpty {
            problems.append("\(late.count) of \(judged.count) operations invoked after \(String(format: "%.1f", lastHeal)) s took longer than \(bound) s or never completed")
        }
        let gap = (firstCompletion.map { String(format: "first completion %.2f s after the last fault ended", $0 - lastHeal) } ?? "no completion after the last fault")
            + (longestGap(operations).map { String(format: "; longest gap in service %.2f s, from %.2f s", $0.length, $0.from) } ?? "")
        return RunReport.Verdict("liveness", passed: problems.isEmpty,
                                 detail: problems.isEmpty ? "\(judged.count) operations after the last fault (at \(String(format: "%.1f", lastHeal)) s) completed within \(bound) s; \(gap)" : problems.joined(separator: "\n"))
    }
}
