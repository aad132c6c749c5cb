#if canImport(Glibc)
import Glibc
#endif
import PBFTCore
import PBFTWire

/// The per-replica execution log, `execution.jsonl` in the data directory, one JSON object
/// per line (docs/runtime.md defines the lines and their digests):
///
///     {"type":"executed","seq":12,"view":0,"batch":"<hex>","requests":[{"requester":"c1","timestamp":7,"request":"<hex>","result":"<hex>"}]}
///     {"type":"checkpoint","seq":16,"digest":"<hex>"}
///     {"type":"installed","seq":32,"digest":"<hex>"}     state transfer replaced the state
///     {"type":"epoch","seq":97,"epoch":1,"n":5,"f":1,"replicas":[0,1,2,3,4]}
///     {"type":"restart","seq":16}                         restarted from the checkpoint at seq
///
/// It is for checking, not for recovery (the write-ahead log is), so it is written without
/// syncing; lines are appended whole.
final class ExecutionLog {
    private let fd: Int32
    let path: String

    init(directory: String, file: String = "execution.jsonl") throws(RuntimeError) {
        path = directory + "/" + file
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .storage("\(path): cannot open: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func executed(_ batch: ExecutedBatch) {
        let requests = batch.requests.map { r in
            "{\"requester\":\"\(r.requester)\",\"timestamp\":\(r.timestamp.rawValue),\"request\":\"\(r.requestDigest)\",\"result\":\"\(r.resultDigest)\"}"
        }
        line("{\"type\":\"executed\",\"seq\":\(batch.sequence.rawValue),\"view\":\(batch.view.rawValue),\"batch\":\"\(batch.batchDigest)\",\"requests\":[\(requests.joined(separator: ","))]}")
    }

    func checkpoint(_ c: Checkpoint, type: String = "checkpoint") {
        line("{\"type\":\"\(type)\",\"seq\":\(c.sequence.rawValue),\"digest\":\"\(c.stateDigest)\"}")
    }

    /// An epoch came into force from `firstSequence` on (`seq` is the first sequence number).
    func epoch(_ membership: Membership, firstSequence: SequenceNumber) {
        let replicas = membership.replicas.map { String($0.id.rawValue) }.joined(separator: ",")
        line("{\"type\":\"epoch\",\"seq\":\(firstSequence.rawValue),\"epoch\":\(membership.epoch.rawValue),\"n\":\(membership.n),\"f\":\(membership.f),\"replicas\":[\(replicas)]}")
    }

    func restart(at sequence: SequenceNumber) {
        line("{\"type\":\"restart\",\"seq\":\(sequence.rawValue)}")
    }

    /// For `evidence.jsonl`: two conflicting messages one replica signed, each as the hex
    /// of its encoded envelope (docs/experiments.md), so a checker can verify both signatures.
    func evidence(_ first: Envelope, _ second: Envelope) {
        func hex(_ bytes: [UInt8]) -> String {
            let digits = Array("0123456789abcdef".utf8)
            var out = [UInt8]()
            out.reserveCapacity(bytes.count * 2)
            for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 15)]) }
            return String(decoding: out, as: UTF8.self)
        }
        line("{\"type\":\"conflict\",\"signer\":\"\(first.sender)\",\"message\":\"\(first.message.type)\",\"first\":\"\(hex(first.encoded()))\",\"second\":\"\(hex(second.encoded()))\"}")
    }

    private func line(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
