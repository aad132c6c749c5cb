import PBFTCore
import PBFTWire

/// One-line descriptions of frames, for `SimulationResult.trace`.
enum Trace {
    static func describe(_ frame: Frame) -> String {
        "\(describe(frame.envelope.message)) from \(frame.envelope.sender) \(frame.envelope.epoch)"
    }

    static func describe(_ message: Message) -> String {
        switch message {
        case .request(let r): "request t\(r.timestamp.rawValue)"
        case .reconfiguration(let r): "reconfiguration t\(r.timestamp.rawValue)"
        case .prePrepare(let p): "pre-prepare \(p.view) \(p.sequence) \(p.batchDigest.short)"
        case .prepare(let v): "prepare \(v.view) \(v.sequence) \(v.batchDigest.short)"
        case .commit(let v): "commit \(v.view) \(v.sequence) \(v.batchDigest.short)"
        case .reply: "reply"
        case .checkpoint(let c): "checkpoint \(c.sequence) \(c.stateDigest.short)"
        case .viewChange(let v): "view-change to \(v.newView) h=\(v.stableSequence.rawValue) P=\(v.prepared.count)"
        case .newView(let v): "new-view \(v.view) V=\(v.viewChanges.count) O=\(v.prePrepares.count)"
        case .stateRequest(let r): "state-request \(r.sequence) chunk \(r.chunkIndex)"
        case .stateChunk(let c): "state-chunk \(c.sequence) \(c.chunkIndex)/\(c.chunkCount)"
        case .status(let s): "status \(s.view)\(s.viewChanging ? " changing" : "")\(s.passive ? " passive" : "")\(s.suspecting ? " suspecting" : "") h=\(s.stableSequence.rawValue) executed=\(s.lastExecuted.rawValue)"
        case .control: "control"
        case .controlReply: "control-reply"
        case .epochAnnouncement(let a): "epoch-announcement \(a.configuration.epoch) from \(a.firstSequence)"
        }
    }
}
