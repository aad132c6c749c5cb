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
        /// Every order fails; `stuckOperation` (an index into the key's operations) is the
        /// operation at which the furthest-reaching orders failed.
        case violation(stuckOperation: Int)
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
    private static let anyState: Int32 = -1
    /// No state is accepted: a result the call cannot return.
    private static let noState: Int32 = -2
    /// The key is absent.
    private static let absent: Int32 = 0
    /// The key holds a value no operation observes.
    private static let unobserved: Int32 = 1

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

    /// The latest entry at which a branch failed: the return of the operation that no order
    /// could fit (for a dead branch, of the operation that doomed it).
    private var furthestStuckEntry: Int32 = -1
    private var steps = 0

    /// Operations whose times are not finite, or that completed before their invocation,
    /// must have been rejected before.
    init(_ operations: [HistoryOperation]) {
        var observed: Set<String> = []
        for operation in operations {
            if case .some(.some(let value)) = Self.observedValue(operation) { observed.insert(value) }
        }
        var values: [String: Int32] = [:]
        func intern(_ value: String?) -> Int32 {
            guard let value else { return Self.absent }
            guard observed.contains(value) else { return Self.unobserved }
            if let id = values[value] { return id }
            let id = Int32(values.count + 2)
            values[value] = id
            return id
        }

        struct Candidate {
            var index: Int
            var requirement: Int32
            var effect: Int32
            var invoke: Double
            var complete: Double?
        }
        var completed: [Candidate] = []
        var optional: [Candidate] = []
        for (index, operation) in operations.enumerated() {
            let (requirement, effect) = Self.model(operation, intern: intern)
            let candidate = Candidate(
                index: index, requirement: requirement, effect: effect,
                invoke: operation.invokeSeconds, complete: operation.completion?.seconds
            )
            if operation.completion != nil {
                completed.append(candidate)
            } else if effect != Self.anyState, effect != requirement {
                optional.append(candidate)  // one that could change nothing is as if never run
            }
        }

        // How long each optional write stays useful: until the last completed operation that
        // observes its value returns, or the last optional one that does stops being useful.
        let stateCount = values.count + 2
        var lastObserverReturn = [Double](repeating: -.infinity, count: stateCount)
        for candidate in completed where candidate.requirement >= 0 {
            let r = Int(candidate.requirement)
            lastObserverReturn[r] = max(lastObserverReturn[r], candidate.complete ?? .infinity)
        }
        var expiry = optional.map { $0.effect == Self.unobserved ? -.infinity : lastObserverReturn[Int($0.effect)] }
        var optionalWriters = [[Int]](repeating: [], count: stateCount)
        for (i, candidate) in optional.enumerated() { optionalWriters[Int(candidate.effect)].append(i) }
        var changed = true
        while changed {
            changed = false
            for (o, observer) in optional.enumerated() where observer.requirement >= 0 && expiry[o] >= observer.invoke {
                for w in optionalWriters[Int(observer.requirement)] where expiry[w] < expiry[o] {
                    expiry[w] = expiry[o]
                    changed = true
                }
            }
        }
        let useful = optional.indices.filter { expiry[$0] >= optional[$0].invoke }
        // Ids follow invocation: the linearized set is then a run of full words and a short
        // tail (every optional operation is resolved by its expiry at the latest), which the
        // cache stores compactly.
        struct Modelled {
            var candidate: Candidate
            var expiry: Double?
        }
        let modelled = (completed.map { Modelled(candidate: $0, expiry: nil) } + useful.map { Modelled(candidate: optional[$0], expiry: expiry[$0]) })
            .sorted { ($0.candidate.invoke, $0.candidate.index) < ($1.candidate.invoke, $1.candidate.index) }
        struct Event {
            var time: Double
            var rank: UInt8
            var operation: Int32
            var kind: EntryKind
        }
        var events: [Event] = []
        for (id, item) in modelled.enumerated() {
            let c = item.candidate
            events.append(Event(time: c.invoke, rank: 0, operation: Int32(id), kind: .call))
            if let complete = c.complete {
                events.append(Event(time: complete, rank: 1, operation: Int32(id), kind: .return))
            } else if let expiry = item.expiry, expiry < .infinity {
                events.append(Event(time: expiry, rank: 2, operation: Int32(id), kind: .expiry))
            }
        }
        let modelRequirement = modelled.map(\.candidate.requirement)
        let modelEffect = modelled.map(\.candidate.effect)
        let modelSource = modelled.map(\.candidate.index)
        // At equal times calls come first: operations that touch at an instant count as
        // concurrent, so a coarse clock cannot produce a false violation.
        events.sort { ($0.time, $0.rank, $0.operation) < ($1.time, $1.rank, $1.operation) }

        var callEntry = [Int32](repeating: -1, count: modelSource.count)
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

        requirement = modelRequirement
        effect = modelEffect
        isRead = zip(modelRequirement, modelEffect).map { $0.1 == Self.anyState || $0.1 == $0.0 }
        isBlindWrite = zip(modelRequirement, modelEffect).map { $0.0 == Self.anyState && $0.1 != Self.anyState }
        isInvisible = modelled.map { $0.candidate.complete != nil && $0.candidate.requirement == Self.anyState && $0.candidate.effect == Self.unobserved }
        observes = modelled.map { $0.candidate.complete != nil && $0.candidate.requirement >= 0 ? $0.candidate.requirement : -1 }
        writes = modelled.map { $0.candidate.effect >= 0 && $0.candidate.effect != $0.candidate.requirement ? $0.candidate.effect : -1 }
        observersLeft = [Int32](repeating: 0, count: stateCount)
        writersLeft = [Int32](repeating: 0, count: stateCount)
        for v in observes where v >= 0 { observersLeft[Int(v)] += 1 }
        for v in writes where v >= 0 { writersLeft[Int(v)] += 1 }
        isOptional = modelled.map { $0.candidate.complete == nil }
        expiryTime = modelled.map { $0.expiry ?? .infinity }
        source = modelSource
        zobrist = (0..<modelSource.count).map { Self.mix(UInt64($0) &+ 0x5EED) }
        entryKind = events.map(\.kind)
        entryOperation = events.map(\.operation)
        self.partner = partner
        let count = Int32(events.count)
        head = count
        var next = [Int32](repeating: -1, count: events.count + 1)
        var previous = [Int32](repeating: -1, count: events.count + 1)
        var last = count
        for entry in 0..<count {
            next[Int(last)] = entry
            previous[Int(entry)] = last
            last = entry
        }
        self.next = next
        self.previous = previous
        cursor = next[Int(count)]
        bits = [UInt64](repeating: 0, count: (modelSource.count + 63) / 64)
        baseBytes = events.count * 16 + modelSource.count * 48 + bits.count * 8 + stateCount * 8
    }

    /// Bytes held now: the cache, the stack and the fixed tables.
    var memoryBytes: Int { baseBytes + cache.memoryBytes + stack.capacity * MemoryLayout<Frame>.stride + absorbed.capacity * 4 }

    /// Configurations seen so far.
    var configurationCount: Int { cache.count }

    /// How many operations the search orders (incomplete gets and unobservable incomplete
    /// writes are left out).
    var modelledOperationCount: Int { source.count }

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
                furthestStuckEntry = max(furthestStuckEntry, entry)
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
        precondition(furthestStuckEntry >= 0, "a failed search reached no return")
        return .violation(stuckOperation: source[Int(entryOperation[Int(furthestStuckEntry)])])
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
    /// can never be linearized. The dead branch counts as having failed at that operation's
    /// return, so that the violation names the read that cannot be satisfied rather than the
    /// write that made it so.
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
            furthestStuckEntry = max(furthestStuckEntry, firstObserverReturn(of: state, besides: operation))
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

    /// The value (nil: absent) an operation requires the key to hold, if any.
    private static func observedValue(_ operation: HistoryOperation) -> String?? {
        switch (operation.call, operation.completion?.outcome) {
        case (.get, .value(let value)?): .some(value)
        case (.compareAndSet(_, let expected, _), .ok?), (.compareAndSet(_, let expected, _), nil): .some(expected)
        case (.compareAndSet, .mismatch(let current)?): .some(current)
        default: nil
        }
    }

    /// (requirement, effect) of one operation; see the store's `apply`.
    private static func model(_ operation: HistoryOperation, intern: (String?) -> Int32) -> (Int32, Int32) {
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
