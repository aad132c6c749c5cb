// The search for one key: Wing & Gong's algorithm with Lowe's memoisation.
//
// Wing & Gong ("Testing and verifying concurrent objects", 1993) list the calls and returns
// in time order and search, depth first, for a sequential order of the operations that
// respects real time and the store's semantics: at each point, any pending call may be
// linearized next if the model accepts it; reaching the return of an operation that is not
// yet linearized means this branch failed, so the search undoes its latest choice. Lowe
// ("Testing for linearizability", 2017) makes this practical: a configuration is the set of
// linearized operations together with the model's state, and a configuration seen before is
// never explored again, since what can follow depends only on it. This is the algorithm of
// Knossos and Porcupine.
//
// Proving a violation means exhausting every configuration before it, and in a contended
// history with stalls and abandoned operations that is millions of them. Each reduction below
// removes only configurations or branches that another one covers, so the verdict is the
// algorithm's; LinearizabilityReferenceTests checks it against brute force.
//
//   - Unobserved values are one state. The model is one key's value: absent, a value some
//     operation observes (a get returns it, a compare-and-set expects or reports it), or
//     "unobserved": which unobserved value is current cannot change what any later
//     operation may return.
//   - Reads go first. A read (a get, a failed compare-and-set) that the state allows can be
//     moved to the present in any order that completes the search: it changes nothing, was
//     invoked and has not returned. So it is linearized at once, without branching.
//   - Invisible writes ride along. A completed put of an unobserved value can only be
//     followed by a put or delete; it is placed just before the next one (or at its own
//     return), not branched on.
//   - Dead values end a branch early. Moving away from a value that an unlinearized
//     completed operation requires, when nothing left can write it again, dooms the branch;
//     it is cut there instead of at that operation's return. This keeps a stalled write from
//     doubling the configurations of everything it overlaps.
//   - Operations that never completed ("optional") may be linearized any time after their
//     invocation, or never. One whose value nothing could observe after its invocation is
//     dropped (only writes could follow it, so the order without it is as good). Otherwise
//     an "expiry" entry after the last operation that could observe its value resolves it as
//     never taken effect, merging the branches that differ only in it. Of several pending
//     optional operations alike (abandoned deletes), only the one expiring first may take
//     effect, so the search does not branch on which of them it was.

/// One key's search; it can be paused at a deadline and resumed.
struct LinearizabilitySearch {
    enum Outcome: Equatable {
        case linearizable
        /// Every order fails. Where: some order reached the return of `reached`, and none got
        /// past the return of `bound` (indices into the key's operations); see
        /// `firstFailingOperation` for the exact point.
        case violation(reached: Int, bound: Int)
        case outOfTime
        case outOfMemory
    }

    private enum EntryKind: UInt8 {
        case call
        case `return`
        case expiry
    }

    private struct Frame {
        var call: Int32
        var previousState: Int32
        /// A read, an expiry's resolution, or an invisible write at its return: the only
        /// choice at that point, so undoing it means undoing the choice before it too.
        var forced: Bool
        /// An optional operation resolved as never taking effect.
        var neverHappened: Bool
        /// Invisible writes placed just before this one, on top of `absorbed`.
        var absorbedCount: Int32
    }

    /// Any state is accepted (puts, deletes).
    fileprivate static let anyState: Int32 = -1
    /// No state is accepted: a result the call cannot return.
    fileprivate static let noState: Int32 = -2
    /// The key is absent.
    fileprivate static let absent: Int32 = 0
    /// The key holds a value no operation observes.
    fileprivate static let unobserved: Int32 = 1

    // The problem: model operations (ids), and the entries sorted by time.
    private let requirement: [Int32]
    /// The state after the operation; `anyState` for "unchanged".
    private let effect: [Int32]
    /// Changes nothing when the model accepts it: linearized eagerly.
    private let isRead: [Bool]
    /// A put or delete: accepted in any state.
    private let isBlindWrite: [Bool]
    /// A completed put of a value nobody observes. Nothing but a blind write can follow it,
    /// so it is placed just before the next blind write (or, failing that, at its return)
    /// instead of being branched on: see `linearize`.
    private let isInvisible: [Bool]
    /// The state a completed operation requires (counted in `observersLeft`), or -1.
    private let observes: [Int32]
    /// The state an operation may write (counted in `writersLeft`), or -1.
    private let writes: [Int32]
    /// Never completed: may be linearized, or resolved as never taking effect.
    private let isOptional: [Bool]
    /// For an optional operation, the time of its expiry entry (+∞ if none).
    private let expiryTime: [Double]
    private let zobrist: [UInt64]
    /// Model operation id → index into the key's operations.
    private let source: [Int]
    private let entryKind: [EntryKind]
    private let entryOperation: [Int32]
    /// For a call, its return or expiry entry (or -1); for a return or expiry, its call.
    private let partner: [Int32]

    // The list of entries not yet linearized (dancing links), with `head` as its sentinel.
    private var next: [Int32]
    private var previous: [Int32]
    private let head: Int32
    private var cursor: Int32
    /// The configuration was just reached: look for a read to linearize before branching.
    private var fresh = true

    // The configuration: linearized operations and the key's state.
    private var bits: [UInt64]
    private var fullWords = 0
    private var topWord = -1
    private var bitsHash: UInt64 = 0
    private var state: Int32 = LinearizabilitySearch.absent
    private var stack: [Frame] = []
    /// The call entries of invisible writes placed before a blind write, by frame.
    private var absorbed: [Int32] = []
    private var cache = ConfigurationCache()
    /// The cache's form of the current set, rebuilt for each configuration.
    private var key: [UInt64] = []
    private let baseBytes: Int

    // Per state: completed operations that require it and operations that may still write
    // it, among those not yet linearized. A state left while the first is non-zero and the
    // second zero can never come back for the operations that need it: see `linearize`.
    private var observersLeft: [Int32]
    private var writersLeft: [Int32]

    /// The latest return some branch is known to have reached: where it failed, or for a dead
    /// branch the first return still ahead of it.
    private var reachedEntry: Int32 = -1
    /// The latest return a branch might have reached: where it failed, or for a dead branch the
    /// return of the operation it doomed.
    private var boundEntry: Int32 = -1
    private var steps = 0

    /// Operations whose times are not finite, or that completed before their invocation,
    /// must have been rejected before.
    init(_ operations: [HistoryOperation]) {
        let model = KeyModel(operations)
        let modelled = model.operations
        // At equal times calls come first: operations that touch at an instant count as
        // concurrent, so a coarse clock cannot produce a false violation.
        var events: [(time: Double, rank: UInt8, operation: Int32, kind: EntryKind)] = []
        for (id, operation) in modelled.enumerated() {
            events.append((operation.invoke, 0, Int32(id), .call))
            if let complete = operation.complete {
                events.append((complete, 1, Int32(id), .return))
            } else if let expiry = operation.expiry, expiry < .infinity {
                events.append((expiry, 2, Int32(id), .expiry))
            }
        }
        events.sort { ($0.time, $0.rank, $0.operation) < ($1.time, $1.rank, $1.operation) }
        var callEntry = [Int32](repeating: -1, count: modelled.count)
        var partner = [Int32](repeating: -1, count: events.count)
        for (position, event) in events.enumerated() {
            let id = Int(event.operation)
            if event.kind == .call {
                callEntry[id] = Int32(position)
            } else {
                partner[position] = callEntry[id]
                partner[Int(callEntry[id])] = Int32(position)
            }
        }

        requirement = modelled.map(\.requirement)
        effect = modelled.map(\.effect)
        isRead = modelled.map { $0.effect == Self.anyState || $0.effect == $0.requirement }
        isBlindWrite = modelled.map { $0.requirement == Self.anyState && $0.effect != Self.anyState }
        isInvisible = modelled.map { $0.complete != nil && $0.requirement == Self.anyState && $0.effect == Self.unobserved }
        observes = modelled.map { $0.complete != nil && $0.requirement >= 0 ? $0.requirement : -1 }
        writes = modelled.map { $0.effect >= 0 && $0.effect != $0.requirement ? $0.effect : -1 }
        observersLeft = [Int32](repeating: 0, count: model.stateCount)
        writersLeft = [Int32](repeating: 0, count: model.stateCount)
        for v in observes where v >= 0 { observersLeft[Int(v)] += 1 }
        for v in writes where v >= 0 { writersLeft[Int(v)] += 1 }
        isOptional = modelled.map { $0.complete == nil }
        expiryTime = modelled.map { $0.expiry ?? .infinity }
        source = modelled.map(\.index)
        zobrist = modelled.indices.map { Self.mix(UInt64($0) &+ 0x5EED) }
        entryKind = events.map(\.kind)
        entryOperation = events.map(\.operation)
        self.partner = partner
        // The list in time order: head, then each entry to the next, the last to -1.
        let count = events.count
        head = Int32(count)
        next = (0...count).map { $0 + 1 < count ? Int32($0 + 1) : -1 }
        next[count] = count > 0 ? 0 : -1
        previous = (0...count).map { $0 == 0 ? Int32(count) : Int32($0 - 1) }
        cursor = next[count]
        bits = [UInt64](repeating: 0, count: (modelled.count + 63) / 64)
        baseBytes = events.count * 16 + modelled.count * 48 + bits.count * 8 + model.stateCount * 8
    }

    /// Bytes held now: the cache, the stack and the fixed tables.
    var memoryBytes: Int { baseBytes + cache.memoryBytes + stack.capacity * MemoryLayout<Frame>.stride + absorbed.capacity * 4 }

    /// Searches until an answer, `deadline`, or the cache and stack needing more than
    /// `memoryBytesMax`. After `.outOfTime` it may be called again to continue.
    mutating func run(until deadline: ContinuousClock.Instant, memoryBytesMax: Int) -> Outcome {
        let clock = ContinuousClock()
        if clock.now >= deadline { return .outOfTime }
        while true {
            steps &+= 1
            if steps & 0x3FF == 0, clock.now >= deadline { return .outOfTime }
            if fresh {
                fresh = false
                if let read = applicableRead() {
                    if linearize(call: read, operation: entryOperation[Int(read)], after: state, forced: true) {
                        if memoryBytes > memoryBytesMax { return .outOfMemory }
                    } else if !backtrack() {
                        return violation()
                    }
                    continue
                }
                cursor = next[Int(head)]
            }
            let entry = cursor
            guard entry >= 0 else { return .linearizable }  // only never-completed calls remain
            let operation = entryOperation[Int(entry)]
            switch entryKind[Int(entry)] {
            case .call:
                // A read the state allowed would have been linearized already, and an invisible
                // write waits for a blind write or its return.
                if !isRead[Int(operation)], !isInvisible[Int(operation)],
                   let after = apply(operation), !(isOptional[Int(operation)] && hasPreferredTwin(operation)),
                   linearize(call: entry, operation: operation, after: after, forced: false) {
                    if memoryBytes > memoryBytesMax { return .outOfMemory }
                } else {
                    cursor = next[Int(entry)]
                }
            case .return where isInvisible[Int(operation)]:
                if linearize(call: partner[Int(entry)], operation: operation, after: Self.unobserved, forced: true) {
                    if memoryBytes > memoryBytesMax { return .outOfMemory }
                } else if !backtrack() {
                    return violation()
                }
            case .return:
                reachedEntry = max(reachedEntry, entry)
                boundEntry = max(boundEntry, entry)
                if !backtrack() { return violation() }
            case .expiry:
                if linearize(call: partner[Int(entry)], operation: operation, after: state, forced: true, neverHappened: true) {
                    if memoryBytes > memoryBytesMax { return .outOfMemory }
                } else if !backtrack() {
                    return violation()
                }
            }
        }
    }

    /// The first pending read the current state allows, before the first return.
    private func applicableRead() -> Int32? {
        var entry = next[Int(head)]
        while entry >= 0, entryKind[Int(entry)] == .call {
            let operation = entryOperation[Int(entry)]
            if isRead[Int(operation)], apply(operation) != nil { return entry }
            entry = next[Int(entry)]
        }
        return nil
    }

    private func violation() -> Outcome {
        // Every branch ends at a return, as dead, or at a configuration explored before, whose
        // own branches ended so; each of the first two records its entry.
        precondition(reachedEntry >= 0 && boundEntry >= reachedEntry, "a failed search reached no return")
        return .violation(
            reached: source[Int(entryOperation[Int(reachedEntry)])], bound: source[Int(entryOperation[Int(boundEntry)])]
        )
    }

    /// The state after `operation`, or nil if the model refuses it in the current state.
    private func apply(_ operation: Int32) -> Int32? {
        let required = requirement[Int(operation)]
        if required == Self.noState || (required >= 0 && required != state) { return nil }
        let after = effect[Int(operation)]
        return after == Self.anyState ? state : after
    }

    /// Linearizes the call (or, with `neverHappened`, resolves an optional one as never taking
    /// effect) unless the resulting configuration was seen before or is dead.
    ///
    /// Before a put or delete, every pending invisible write is placed too: it can only ever
    /// be followed by a put or delete, and placing it at the first one costs nothing later,
    /// since it changes no state anyone sees and only removes an obligation.
    ///
    /// A configuration is dead when the state moves away from a value that a completed,
    /// unlinearized operation requires and that nothing left can write again: that operation
    /// can never be linearized. The dead branch failed somewhere between the first return ahead
    /// of it and that operation's return.
    private mutating func linearize(call: Int32, operation: Int32, after: Int32, forced: Bool, neverHappened: Bool = false) -> Bool {
        let absorbedBefore = absorbed.count
        if isBlindWrite[Int(operation)], !neverHappened {
            var entry = next[Int(head)]
            while entry >= 0, entryKind[Int(entry)] != .return {
                let other = entryOperation[Int(entry)]
                let following = next[Int(entry)]
                if entryKind[Int(entry)] == .call, isInvisible[Int(other)], entry != call {
                    insertBit(other)
                    lift(entry)
                    absorbed.append(entry)
                }
                entry = following
            }
        }
        count(operation, neverHappened: neverHappened, by: -1)
        if after != state, observersLeft[Int(state)] > 0, writersLeft[Int(state)] == 0 {
            reachedEntry = max(reachedEntry, firstPendingReturn())
            boundEntry = max(boundEntry, firstObserverReturn(of: state, besides: operation))
            count(operation, neverHappened: neverHappened, by: 1)
            unabsorb(downTo: absorbedBefore)
            return false
        }
        insertBit(operation)
        key.removeAll(keepingCapacity: true)
        for word in fullWords..<max(fullWords, topWord + 1) where bits[word] != ~0 {
            key.append(UInt64(word - fullWords))
            key.append(bits[word])
        }
        let hash = bitsHash ^ Self.mix(UInt64(bitPattern: Int64(after)))
        guard cache.insert(hash: hash, state: after, fullWords: fullWords, tailWords: max(0, topWord + 1 - fullWords), sparseTail: key) else {
            removeBit(operation)
            count(operation, neverHappened: neverHappened, by: 1)
            unabsorb(downTo: absorbedBefore)
            return false
        }
        stack.append(Frame(
            call: call, previousState: state, forced: forced, neverHappened: neverHappened,
            absorbedCount: Int32(absorbed.count - absorbedBefore)
        ))
        state = after
        lift(call)
        fresh = true
        return true
    }

    /// Whether another pending optional operation with the same requirement and effect
    /// expires first (or as late, with a lower id). Those two are interchangeable except that
    /// the later-expiring one can take effect for longer; so taking effect is left to the
    /// earliest, and the search does not branch on which of several abandoned deletes (say)
    /// was the one that happened.
    private func hasPreferredTwin(_ operation: Int32) -> Bool {
        let required = requirement[Int(operation)], written = effect[Int(operation)]
        let expiry = expiryTime[Int(operation)]
        var entry = next[Int(head)]
        while entry >= 0, entryKind[Int(entry)] != .return {
            let other = entryOperation[Int(entry)]
            if entryKind[Int(entry)] == .call, other != operation, isOptional[Int(other)],
               requirement[Int(other)] == required, effect[Int(other)] == written,
               (expiryTime[Int(other)], other) < (expiry, operation) {
                return true
            }
            entry = next[Int(entry)]
        }
        return false
    }

    /// Adjusts `observersLeft` and `writersLeft` for linearizing (-1) or undoing (+1).
    private mutating func count(_ operation: Int32, neverHappened: Bool, by delta: Int32) {
        let written = writes[Int(operation)]
        if written >= 0 { writersLeft[Int(written)] += delta }
        let observed = observes[Int(operation)]
        if observed >= 0, !neverHappened { observersLeft[Int(observed)] += delta }
    }

    /// The first return entry still in the list: the operation that must be linearized first.
    private func firstPendingReturn() -> Int32 {
        var entry = next[Int(head)]
        while entry >= 0, entryKind[Int(entry)] != .return { entry = next[Int(entry)] }
        return entry
    }

    /// The return entry of the earliest-returning unlinearized operation that requires
    /// `value`, other than `operation`.
    private func firstObserverReturn(of value: Int32, besides operation: Int32) -> Int32 {
        var entry = next[Int(head)]
        while entry >= 0 {
            let other = entryOperation[Int(entry)]
            if entryKind[Int(entry)] == .return, observes[Int(other)] == value, other != operation { return entry }
            entry = next[Int(entry)]
        }
        return -1
    }

    private mutating func unabsorb(downTo count: Int) {
        while absorbed.count > count, let entry = absorbed.popLast() {
            unlift(entry)
            removeBit(entryOperation[Int(entry)])
        }
    }

    /// Undoes choices until one leaves an alternative; false when none is left.
    private mutating func backtrack() -> Bool {
        while let frame = stack.popLast() {
            let operation = entryOperation[Int(frame.call)]
            unlift(frame.call)
            removeBit(operation)
            count(operation, neverHappened: frame.neverHappened, by: 1)
            unabsorb(downTo: absorbed.count - Int(frame.absorbedCount))
            state = frame.previousState
            if !frame.forced {
                cursor = next[Int(frame.call)]
                fresh = false
                return true
            }
        }
        return false
    }

    private mutating func lift(_ call: Int32) {
        remove(call)
        let match = partner[Int(call)]
        if match >= 0 { remove(match) }
    }

    private mutating func unlift(_ call: Int32) {
        let match = partner[Int(call)]
        if match >= 0 { restore(match) }
        restore(call)
    }

    private mutating func remove(_ entry: Int32) {
        let before = previous[Int(entry)], after = next[Int(entry)]
        next[Int(before)] = after
        if after >= 0 { previous[Int(after)] = before }
    }

    private mutating func restore(_ entry: Int32) {
        let before = previous[Int(entry)], after = next[Int(entry)]
        next[Int(before)] = entry
        if after >= 0 { previous[Int(after)] = entry }
    }

    private mutating func insertBit(_ operation: Int32) {
        let word = Int(operation >> 6)
        bits[word] |= 1 << UInt64(operation & 63)
        bitsHash ^= zobrist[Int(operation)]
        topWord = max(topWord, word)
        while fullWords < bits.count, bits[fullWords] == ~0 { fullWords += 1 }
    }

    private mutating func removeBit(_ operation: Int32) {
        let word = Int(operation >> 6)
        bits[word] &= ~(1 << UInt64(operation & 63))
        bitsHash ^= zobrist[Int(operation)]
        fullWords = min(fullWords, word)
        while topWord >= 0, bits[topWord] == 0 { topWord -= 1 }
    }

    /// (requirement, effect) of one operation; see the store's `apply`.
    fileprivate static func model(_ operation: HistoryOperation, intern: (String?) -> Int32) -> (Int32, Int32) {
        guard let outcome = operation.completion?.outcome else {
            switch operation.call {
            case .get: return (anyState, anyState)
            case .put(_, let value): return (anyState, intern(value))
            case .delete: return (anyState, absent)
            case .compareAndSet(_, let expected, let new): return (intern(expected), intern(new))
            }
        }
        switch (operation.call, outcome) {
        case (.get, .value(let value)): return (intern(value), anyState)
        case (.get, .notFound): return (absent, anyState)
        case (.put(_, let value), .ok): return (anyState, intern(value))
        case (.delete, .ok): return (anyState, absent)
        case (.compareAndSet(_, let expected, let new), .ok): return (intern(expected), intern(new))
        case (.compareAndSet(_, let expected, _), .mismatch(let current)):
            // The state was `current`, and that is not what the call expected.
            return current == expected ? (noState, anyState) : (intern(current), anyState)
        default:
            return (noState, anyState)  // a result this call never returns
        }
    }

    /// SplitMix64's finaliser: a well-spread 64-bit value per input.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One key's operations as the search models them: the states interned (absent,
/// unobserved, then each observed value), and the operations it orders, by invocation. A get
/// that never completed, or any never-completed operation that could change nothing or that
/// no one could observe, is left out.
private struct KeyModel {
    struct Operation {
        /// Index into the key's operations.
        var index: Int
        var requirement: Int32
        var effect: Int32
        var invoke: Double
        var complete: Double?
        /// For a never-completed operation: after this, it no longer matters whether it
        /// took effect (+∞: never).
        var expiry: Double?
    }

    private(set) var operations: [Operation] = []
    private(set) var stateCount = 2

    init(_ history: [HistoryOperation]) {
        var observed: Set<String> = []
        for operation in history {
            if case .some(.some(let value)) = Self.observedValue(operation) { observed.insert(value) }
        }
        var values: [String: Int32] = [:]
        func intern(_ value: String?) -> Int32 {
            guard let value else { return LinearizabilitySearch.absent }
            guard observed.contains(value) else { return LinearizabilitySearch.unobserved }
            if let id = values[value] { return id }
            let id = Int32(values.count + 2)
            values[value] = id
            return id
        }
        var completed: [Operation] = []
        var optional: [Operation] = []
        for (index, operation) in history.enumerated() {
            let (requirement, effect) = LinearizabilitySearch.model(operation, intern: intern)
            let modelled = Operation(
                index: index, requirement: requirement, effect: effect,
                invoke: operation.invokeSeconds, complete: operation.completion?.seconds
            )
            if operation.completion != nil {
                completed.append(modelled)
            } else if effect != LinearizabilitySearch.anyState, effect != requirement {
                optional.append(modelled)
            }
        }
        stateCount = values.count + 2
        Self.setExpiries(&optional, completed: completed, stateCount: stateCount)
        // Ids follow invocation: the linearized set is then a run of full words and a short
        // tail (every optional operation is resolved by its expiry at the latest), which the
        // cache stores compactly.
        operations = (completed + optional.filter { ($0.expiry ?? .infinity) >= $0.invoke })
            .sorted { ($0.invoke, $0.index) < ($1.invoke, $1.index) }
    }

    /// An optional write stays useful until the last completed operation that observes its
    /// value returns, or the last optional one that does stops being useful; one whose expiry
    /// comes before its invocation is of no use at all.
    private static func setExpiries(_ optional: inout [Operation], completed: [Operation], stateCount: Int) {
        var lastObserverReturn = [Double](repeating: -.infinity, count: stateCount)
        for operation in completed where operation.requirement >= 0 {
            let r = Int(operation.requirement)
            lastObserverReturn[r] = max(lastObserverReturn[r], operation.complete ?? .infinity)
        }
        var expiry = optional.map { $0.effect == LinearizabilitySearch.unobserved ? -.infinity : lastObserverReturn[Int($0.effect)] }
        var writers = [[Int]](repeating: [], count: stateCount)
        for (i, operation) in optional.enumerated() { writers[Int(operation.effect)].append(i) }
        var changed = true
        while changed {
            changed = false
            for (o, observer) in optional.enumerated() where observer.requirement >= 0 && expiry[o] >= observer.invoke {
                for w in writers[Int(observer.requirement)] where expiry[w] < expiry[o] {
                    expiry[w] = expiry[o]
                    changed = true
                }
            }
        }
        for i in optional.indices { optional[i].expiry = expiry[i] }
    }

    /// The value (nil: absent) an operation requires the key to hold, if any.
    private static func observedValue(_ operation: HistoryOperation) -> String?? {
        switch (operation.call, operation.completion?.outcome) {
        case (.get, .value(let value)?): .some(value)
        case (.compareAndSet(_, let expected, _), .ok?), (.compareAndSet(_, let expected, _), nil): .some(expected)
        case (.compareAndSet, .mismatch(let current)?): .some(current)
        default: nil
        }
    }
}

extension LinearizabilitySearch {
    /// The operation at which every order fails: the first completed operation (by
    /// completion) that no order can linearize together with everything that completed before
    /// it, given all the results, later ones included. `truncated(_:through:)` is the history
    /// that question is about; if it is not linearizable for one operation, it is not for any
    /// later one, so the answer can be searched for between a search's `reached` and `bound`
    /// (each an index into `operations`).
    ///
    /// Each probe is a search of its own, until `deadline`. A probe that passes is quick (an
    /// order is found), one that fails must exhaust every order; and the answer is usually a
    /// few operations after `reached`. So the probes step up from `reached` one operation at a
    /// time, and only after `linearProbesMax` gallop and bisect. If time or memory runs out,
    /// `bound` is the answer, which every order fails at or before.
    static let linearProbesMax = 16

    /// What must be linearized by time `cut`, and what may help: operations invoked by then;
    /// those that completed later become never-completed if they wrote (a put, a delete, a
    /// compare-and-set that succeeded: linearized, they do exactly that), and are left out
    /// otherwise (a read, a failed compare-and-set or an impossible result cannot help any
    /// operation before them).
    static func truncated(_ operations: [HistoryOperation], through cut: Double) -> [HistoryOperation] {
        operations.compactMap { operation in
            guard operation.invokeSeconds <= cut else { return nil }
            guard let completion = operation.completion, completion.seconds > cut else { return operation }
            switch (operation.call, completion.outcome) {
            case (.put, .ok), (.delete, .ok), (.compareAndSet, .ok):
                var pending = operation
                pending.completion = nil
                return pending
            default:
                return nil
            }
        }
    }

    static func firstFailingOperation(
        _ operations: [HistoryOperation], reached: Int, bound: Int, deadline: ContinuousClock.Instant, memoryBytesMax: Int
    ) -> Int {
        let order = operations.indices.filter { operations[$0].completion != nil }.sorted {
            (operations[$0].completion?.seconds ?? 0, $0) < (operations[$1].completion?.seconds ?? 0, $1)
        }
        guard let low = order.firstIndex(of: reached), let high = order.firstIndex(of: bound), low < high else { return bound }
        /// Nil when the probe ran out of time or memory.
        func fails(_ position: Int) -> Bool? {
            let cut = operations[order[position]].completion?.seconds ?? 0
            var search = LinearizabilitySearch(truncated(operations, through: cut))
            switch search.run(until: deadline, memoryBytesMax: memoryBytesMax) {
            case .linearizable: return false
            case .violation: return true
            case .outOfTime, .outOfMemory: return nil
            }
        }
        // Invariant: the prefix through `passes` is linearizable (or `passes` is below `low`),
        // and the one through `failing` is not.
        var passes = low - 1, failing = high
        while passes + 1 < failing, passes + 1 < low + linearProbesMax {
            guard let failed = fails(passes + 1) else { return bound }
            if failed { return order[passes + 1] }
            passes += 1
        }
        var step = 1
        while passes + step < failing {
            guard let failed = fails(passes + step) else { return bound }
            if failed { failing = passes + step; break }
            passes += step
            step *= 2
        }
        while failing - passes > 1 {
            let middle = (passes + failing) / 2
            guard let failed = fails(middle) else { return bound }
            if failed { failing = middle } else { passes = middle }
        }
        return order[failing]
    }
}

/// Lowe's cache of configurations seen: (linearized set, state), open addressing. A set is
/// stored as its count of leading full words, the number of words after them up to the last
/// non-zero one, and only those of these that are not full, each with its offset: a few
/// words however long the history, since only operations still pending leave holes.
struct ConfigurationCache {
    private var slots = [Int32](repeating: -1, count: 1 << 10)
    private var hashes: [UInt64] = []
    private var states: [Int32] = []
    private var fullWords: [Int32] = []
    private var tailWords: [Int32] = []
    /// Configuration i's sparse tail is `words[starts[i]..<starts[i + 1]]`.
    private var starts: [Int] = [0]
    private var words: [UInt64] = []

    var count: Int { hashes.count }

    var memoryBytes: Int {
        slots.capacity * 4 + hashes.capacity * 8 + states.capacity * 4 + fullWords.capacity * 4 + tailWords.capacity * 4
            + starts.capacity * 8 + words.capacity * 8
    }

    /// Adds the configuration; false if it was already present.
    mutating func insert(hash: UInt64, state: Int32, fullWords full: Int, tailWords tail: Int, sparseTail: [UInt64]) -> Bool {
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            let i = Int(slots[slot])
            if hashes[i] == hash, states[i] == state, fullWords[i] == Int32(full), tailWords[i] == Int32(tail),
               words[starts[i]..<starts[i + 1]].elementsEqual(sparseTail) {
                return false
            }
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(count)
        hashes.append(hash)
        states.append(state)
        fullWords.append(Int32(full))
        tailWords.append(Int32(tail))
        words.append(contentsOf: sparseTail)
        starts.append(words.count)
        return true
    }

    private mutating func grow() {
        var larger = [Int32](repeating: -1, count: slots.count * 2)
        let mask = larger.count - 1
        for (i, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & mask
            while larger[slot] >= 0 { slot = (slot + 1) & mask }
            larger[slot] = Int32(i)
        }
        slots = larger
    }
}
