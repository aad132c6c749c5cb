import Foundation
import PBFTCluster
import PBFTCore
import PBFTCrypto
import PBFTWire

/// The Byzantine-evidence checker: every pair of conflicting messages a replica reported
/// (data/rI/evidence.jsonl) is verified again here, both signatures under the signer's key
/// in the cluster file of the epoch it was signed in (keys/cluster.toml, and after a
/// reconfiguration keys/cluster-epoch-E.toml) and the conflict itself, and the replicas it
/// proves faulty are named.
/// The verdict fails if a replica the experiment did not make faulty is proven faulty (or if
/// a reported pair does not check out: a replica lied in its evidence file, or it is damaged).
public enum EvidenceCheck {
    public struct Proof: Sendable {
        public let signer: String
        public let message: String
        public let slot: String
        public let reportedBy: Int
    }

    public static func verdict(_ folder: ResultsFolder) -> RunReport.Verdict {
        let keys: EpochKeys
        do { keys = try memberships(folder.path + "/keys") } catch {
            return RunReport.Verdict("byzantine evidence", passed: false, detail: "\(error)")
        }
        var limits = WireLimits.default
        limits.replicasMax = max(limits.replicasMax, keys.memberships.values.map(\.n).max() ?? 0)
        let authenticator = Authenticator(verifier: Ed25519Verifier(), keys: keys, limits: limits)
        var proofs: [Int: [Proof]] = [:]
        var problems: [String] = []
        for reporter in folder.replicaIDs {
            let path = folder.path + "/data/r\(reporter)/evidence.jsonl"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            for (index, line) in text.split(separator: "\n").enumerated() {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let firstHex = object["first"] as? String, let secondHex = object["second"] as? String,
                      let firstBytes = Hex.decode(firstHex), let secondBytes = Hex.decode(secondHex),
                      let first = try? Envelope.decode(firstBytes), let second = try? Envelope.decode(secondBytes)
                else {
                    problems.append("r\(reporter)'s evidence.jsonl line \(index + 1) is not a pair of envelopes")
                    continue
                }
                guard (try? authenticator.authenticate(Frame(envelope: first))) != nil, (try? authenticator.authenticate(Frame(envelope: second))) != nil else {
                    problems.append("r\(reporter)'s evidence.jsonl line \(index + 1): a signature does not verify")
                    continue
                }
                guard first.conflicts(with: second), case .replica(let signer) = first.sender else {
                    problems.append("r\(reporter)'s evidence.jsonl line \(index + 1): the two messages do not conflict")
                    continue
                }
                proofs[Int(signer.rawValue), default: []].append(Proof(signer: "r\(signer.rawValue)", message: "\(first.message.type)", slot: slot(first, second), reportedBy: reporter))
            }
        }
        let framed = proofs.keys.filter { !folder.byzantineReplicas.contains($0) }.sorted()
        for id in framed { problems.append("r\(id) was not made faulty by the experiment, yet it signed conflicting messages: \(proofs[id]!.first!.message) \(proofs[id]!.first!.slot)") }
        var lines: [String] = []
        for (id, list) in proofs.sorted(by: { $0.key < $1.key }) {
            let first = list[0]
            let reporters = Set(list.map(\.reportedBy)).sorted().map { "r\($0)" }.joined(separator: ",")
            lines.append("r\(id) proven faulty: \(list.count) conflicting pairs, e.g. two \(first.message) messages \(first.slot) (reported by \(reporters))")
        }
        let quiet = folder.byzantineReplicas.subtracting(proofs.keys).sorted()
        if !quiet.isEmpty { lines.append("no conflicting pair from \(quiet.map { "r\($0)" }.joined(separator: ", ")) (a mode that lies without contradicting itself leaves none)") }
        if proofs.isEmpty, folder.byzantineReplicas.isEmpty { lines.append("no replica signed conflicting messages") }
        return RunReport.Verdict("byzantine evidence", passed: problems.isEmpty, detail: (problems + lines).joined(separator: "\n"))
    }

    /// The membership of every epoch of the run: cluster.toml, and cluster-epoch-E.toml for
    /// each epoch a reconfiguration made (with the epoch before it).
    static func memberships(_ keys: String) throws -> EpochKeys {
        var all: [Epoch: Membership] = [:]
        let first = try ClusterFile.load(keys + "/cluster.toml")
        all[first.epoch] = first
        let names = (try? FileManager.default.contentsOfDirectory(atPath: keys)) ?? []
        for name in names where name.hasPrefix("cluster-epoch-") && name.hasSuffix(".toml") {
            let contents = try ClusterFile.loadContents(keys + "/" + name)
            all[contents.membership.epoch] = contents.membership
            if let previous = contents.previous, all[previous.epoch] == nil { all[previous.epoch] = previous }
        }
        return EpochKeys(all)
    }

    static func slot(_ first: Envelope, _ second: Envelope) -> String {
        func digest(_ e: Envelope) -> String {
            switch e.message {
            case .prePrepare(let p): "\(p.batchDigest)".prefix(12).description
            case .prepare(let v), .commit(let v): "\(v.batchDigest)".prefix(12).description
            case .checkpoint(let c): "\(c.stateDigest)".prefix(12).description
            default: "?"
            }
        }
        let at: String = switch first.message {
        case .prePrepare(let p): "for view \(p.view.rawValue), sequence \(p.sequence.rawValue)"
        case .prepare(let v), .commit(let v): "for view \(v.view.rawValue), sequence \(v.sequence.rawValue)"
        case .checkpoint(let c): "for checkpoint \(c.sequence.rawValue)"
        default: ""
        }
        return "\(at): \(digest(first))… vs \(digest(second))…"
    }
}
