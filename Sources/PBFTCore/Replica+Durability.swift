public import PBFTWire

// Durability. What a replica signed and must not contradict after a restart is handed to
// the shell as `.persist` actions, always before the send that depends on it; the shell
// appends them to its write-ahead log and syncs before it sends. A restarted replica is
// rebuilt from those records and its last stable checkpoint's state (`recover`).

/// One write-ahead-log record.
public enum DurableRecord: Hashable, Sendable {
    /// A pre-prepare this replica accepted (backup) or sent (primary), with its batch:
    /// after a restart it must not accept or send another for that view and sequence number.
    case prePrepare(Frame)
    /// A prepared certificate: P of any later VIEW-CHANGE must still hold it.
    case prepared(PreparedCertificate)
    /// This replica's VIEW-CHANGE: it moved to that view.
    case viewChange(Envelope)
    /// The NEW-VIEW this replica accepted or sent: the view is active.
    case newView(Envelope)
    /// 2f+1 checkpoint messages proving a checkpoint stable.
    case stable([Envelope])

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func put(_ envelopes: [Envelope]) {
            Bytes.append(UInt64(envelopes.count), to: &out)
            for envelope in envelopes {
                let bytes = envelope.encoded()
                Bytes.append(UInt64(bytes.count), to: &out)
                out += bytes
            }
        }
        switch self {
        case .prePrepare(let frame): out.append(1); put([frame.envelope]); put(frame.batch)
        case .prepared(let c): out.append(2); put([c.prePrepare]); put(c.batch); put(c.prepares)
        case .viewChange(let e): out.append(3); put([e])
        case .newView(let e): out.append(4); put([e])
        case .stable(let proof): out.append(5); put(proof)
        }
        return out
    }

    /// Nil for bytes that are not a record (the log's CRC makes that a bug or tampering).
    public static func decode(_ bytes: [UInt8], limits: WireLimits = .default) -> DurableRecord? {
        var offset = 1
        func list() -> [Envelope]? {
            guard let count = Bytes.readU64(bytes, &offset), count <= UInt64(bytes.count) else { return nil }
            var envelopes: [Envelope] = []
            for _ in 0..<count {
                guard let length = Bytes.readU64(bytes, &offset), length <= UInt64(bytes.count - offset) else { return nil }
                let slice = Array(bytes[offset..<(offset + Int(length))])
                offset += Int(length)
                guard let envelope = try? Envelope.decode(slice, limits: limits) else { return nil }
                envelopes.append(envelope)
            }
            return envelopes
        }
        guard let kind = bytes.first else { return nil }
        let record: DurableRecord?
        switch kind {
        case 1:
            guard let head = list(), head.count == 1, let batch = list() else { return nil }
            record = .prePrepare(Frame(envelope: head[0], batch: batch))
        case 2:
            guard let head = list(), head.count == 1, let batch = list(), let prepares = list() else { return nil }
            record = .prepared(PreparedCertificate(prePrepare: head[0], batch: batch, prepares: prepares))
        case 3:
            guard let head = list(), head.count == 1 else { return nil }
            record = .viewChange(head[0])
        case 4:
            guard let head = list(), head.count == 1 else { return nil }
            record = .newView(head[0])
        case 5:
            guard let proof = list() else { return nil }
            record = .stable(proof)
        default:
            record = nil
        }
        return offset == bytes.count ? record : nil
    }
}

extension Replica {
    mutating func persist(_ record: DurableRecord) { emit(.persist(record)) }

    /// The records that describe this replica's promises now: what a compacted log must
    /// hold after a stable checkpoint (everything at or below h is no longer needed).
    public func durableRecords() -> [DurableRecord] {
        var records: [DurableRecord] = []
        if waterMarks.low.rawValue > 0, !stableProof.isEmpty { records.append(.stable(stableProof)) }
        for n in preparedCertificates.keys.sorted() { records.append(.prepared(preparedCertificates[n]!)) }
        if let newView = newViewEnvelope, viewActive { records.append(.newView(newView)) }
        if !viewActive, let own = viewChangeMessages[id], own.message.newView == view { records.append(.viewChange(own.envelope)) }
        for n in log.keys.sorted() {
            if let prePrepare = log[n]?.prePrepare { records.append(.prePrepare(Frame(envelope: prePrepare, batch: log[n]!.batch))) }
        }
        return records
    }

    /// Rebuilds a replica after a restart from its write-ahead log and the state of its last
    /// stable checkpoint (if one was saved). It resumes in the highest view it had reached,
    /// holds the pre-prepares and prepared certificates it signed or accepted, and catches
    /// up (retransmission, state transfer) from there; it never signs anything that
    /// contradicts a record.
    public static func recover(
        configuration: Configuration, id: ReplicaID, app: App, signer: any MessageSigner, digester: any MessageDigester,
        records: [DurableRecord], checkpoint: (sequence: SequenceNumber, digest: Digest, state: [UInt8])?,
        previousMembership: Membership? = nil
    ) throws(ConfigurationError) -> Replica {
        var replica = try Replica(
            configuration: configuration, id: id, app: app, signer: signer, digester: digester, previousMembership: previousMembership)
        replica.replay(records, checkpoint: checkpoint)
        return replica
    }

    mutating func replay(_ records: [DurableRecord], checkpoint: (sequence: SequenceNumber, digest: Digest, state: [UInt8])?) {
        // The stable checkpoint: the newest proof, and its state if it was saved.
        var proof: [Envelope] = []
        var proven = SequenceNumber(0)
        for case .stable(let envelopes) in records {
            if case .checkpoint(let c)? = envelopes.first?.message, c.sequence >= proven {
                proven = c.sequence
                proof = envelopes
            }
        }
        if let checkpoint, checkpoint.sequence >= proven, restoreState(checkpoint.state, digest: checkpoint.digest) {
            lastExecuted = checkpoint.sequence
            lastAssigned = checkpoint.sequence
            waterMarks.advance(to: checkpoint.sequence)
            ownCheckpoints[checkpoint.sequence] = (checkpoint.digest, checkpoint.state)
            if checkpoint.sequence == proven { stableProof = proof }
            if nextEpoch?.end == checkpoint.sequence {
                enterNextEpoch()
                outbox.removeAll()
            }
        } else if proven.rawValue > 0, let digest = checkpointProofDigest(proven, proof) {
            // Proven stable but the state was not saved: fetch it.
            waterMarks.advance(to: proven)
            stableProof = proof
            startFetch(Checkpoint(sequence: proven, stateDigest: digest), proof: proof)
            outbox.removeAll()
        }
        let h = waterMarks.low

        // The view: the highest this replica reached, active if it accepted or sent the
        // NEW-VIEW (or it is view 0), otherwise still changing to it.
        var highest = ViewNumber(0)
        var active = true
        var newView: Envelope?
        var ownViewChange: (ViewChange, Envelope)?
        // Records of an earlier epoch promise nothing in this one.
        let records = records.filter { record in
            switch record {
            case .prePrepare(let frame): frame.envelope.epoch == epoch
            case .prepared(let certificate): certificate.prePrepare.epoch == epoch
            case .viewChange(let e), .newView(let e): e.epoch == epoch
            case .stable: true
            }
        }
        for record in records {
            switch record {
            case .viewChange(let e):
                // Records come in the order they were written; a later view supersedes.
                if case .viewChange(let v) = e.message, v.newView > highest {
                    highest = v.newView
                    active = false
                    ownViewChange = (v, e)
                }
            case .newView(let e):
                if case .newView(let nv) = e.message, nv.view >= highest {
                    highest = nv.view
                    active = true
                    newView = e
                }
            case .prePrepare(let frame):
                if case .prePrepare(let p) = frame.envelope.message, p.view > highest {
                    highest = p.view
                    active = true
                }
            case .prepared, .stable: break
            }
        }
        view = highest
        viewActive = active
        newViewEnvelope = newView
        if let (message, envelope) = ownViewChange, message.newView == view, !active { viewChangeMessages[id] = (message, envelope) }

        for record in records {
            switch record {
            case .prepared(let certificate):
                guard case .prePrepare(let p) = certificate.prePrepare.message, p.sequence > h else { continue }
                if let held = preparedCertificates[p.sequence], case .prePrepare(let q) = held.prePrepare.message, q.view > p.view { continue }
                preparedCertificates[p.sequence] = certificate
            case .prePrepare(let frame):
                guard active, case .prePrepare(let p) = frame.envelope.message, p.view == view, p.sequence > h,
                      waterMarks.contains(p.sequence)
                else { continue }
                accept(p, envelope: frame.envelope, batch: frame.batch)
                lastAssigned = max(lastAssigned, p.sequence)
                if !isPrimary {
                    // Ed25519 is deterministic: re-signing gives back the very prepare sent before.
                    let prepare = sign(.prepare(Vote(view: view, sequence: p.sequence, batchDigest: p.batchDigest)))
                    _ = log[p.sequence, default: Slot()].prepares.insert(prepare, digest: p.batchDigest, from: id)
                }
            case .viewChange, .newView, .stable: continue
            }
        }
        viewChangeTimeoutTicks = configuration.viewChangeTimeoutTicks
        lastProgressTick = 0
    }

    /// Restores the application and the reply cache from checkpointed state bytes whose
    /// digest is `digest`; false if they do not match or do not parse.
    mutating func restoreState(_ state: [UInt8], digest: Digest) -> Bool {
        digester.digest(state) == digest && restoreState(state)
    }

    /// Restores the application and the reply cache from state bytes (`checkpointState()`'s
    /// layout); false, with nothing changed, if they do not parse.
    mutating func restoreState(_ state: [UInt8]) -> Bool {
        var offset = 0
        guard let length = Bytes.readU64(state, &offset), length <= UInt64(state.count - offset) else { return false }
        let snapshot = Array(state[offset..<(offset + Int(length))])
        offset += Int(length)
        guard let cache = ReplyCache.decode(state, offset: &offset),
              let config = Self.decodeConfigurationState(state, offset: &offset), offset == state.count,
              config.current.n <= configuration.limits.replicasMax
        else { return false }
        var restored = app
        do { try restored.restore(snapshot) } catch { return false }
        app = restored
        replyCache = cache
        adoptConfiguration(current: config.current, start: config.start, next: config.next)
        return true
    }
}
