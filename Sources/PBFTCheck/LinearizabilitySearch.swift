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
// The model is one key's value: absent, a value some operation observes (a get returns it,
// a compare-and-set expects it or reports it), or "unobserved". Values nobody observes are
// one state: which of them is current cannot change what any later operation may return, so
// configurations that differ only in that are merged.
//
// Reads are linearized eagerly. A read (a get, a compare-and-set that failed) that the
// current state allows can be moved to the present in any order that completes the search:
// it changes nothing, it was invoked, and it has not returned; so it is linearized at once,
// without branching on the alternative. Only writes branch.
//
// Operations that never completed are "optional": they may be linearized at any point after
// their invocation, or never. Two reductions keep them from doubling the configurations for
// the rest of the key's history:
//   - an optional write whose value no operation could observe after its invocation is
//     dropped: were it linearized, only writes could follow it before the value changed, so
//     the order without it is just as valid;
//   - otherwise, once the last operation that could observe its value is done (a completed
//     one has returned; an optional compare-and-set is itself past this point), linearizing
//     it is pointless for the same reason, so an "expiry" entry there resolves it as never
//     taken effect, merging the branches that differ only in it.

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
        /// An expiry's resolution, the only choice at that point: undoing it means
        /// undoing the choice before it too.
        var forced: Bool
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
    private var cache = ConfigurationCache()
    private let baseBytes: Int

    /// The latest entry at which a branch failed: the return of the operation that no order
    /// could fit.
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
        let expiries = useful.map { expiry[$0] }
        optional = useful.map { optional[$0] }

        // Completed operations take the low ids, so that the linearized set is mostly a run of
        // full words followed by a short tail, which the cache stores compactly.
        let byInvoke = { (a: Candidate, b: Candidate) in (a.invoke, a.index) < (b.invoke, b.index) }
        let completedOrder = completed.indices.sorted { byInvoke(completed[$0], completed[$1]) }
        let optionalOrder = optional.indices.sorted { byInvoke(optional[$0], optional[$1]) }
        var modelRequirement: [Int32] = [], modelEffect: [Int32] = [], modelSource: [Int] = []
        struct Event {
            var time: Double
            var rank: UInt8
            var operation: Int32
            var kind: EntryKind
        }
        var events: [Event] = []
        for i in completedOrder {
            let c = completed[i]
            let id = Int32(modelSource.count)
            modelRequirement.append(c.requirement); modelEffect.append(c.effect); modelSource.append(c.index)
            events.append(Event(time: c.invoke, rank: 0, operation: id, kind: .call))
            events.append(Event(time: c.complete ?? .infinity, rank: 1, operation: id, kind: .return))
        }
        for i in optionalOrder {
            let c = optional[i]
            let id = Int32(modelSource.count)
            modelRequirement.append(c.requirement); modelEffect.append(c.effect); modelSource.append(c.index)
            events.append(Event(time: c.invoke, rank: 0, operation: id, kind: .call))
            if expiries[i] < .infinity { events.append(Event(time: expiries[i], rank: 2, operation: id, kind: .expiry)) }
        }
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
        baseBytes = events.count * 16 + modelSource.count * 28 + bits.count * 8
    }

    /// Bytes held now: the cache, the stack and the fixed tables.
    var memoryBytes: Int { baseBytes + cache.memoryBytes + stack.capacity * MemoryLayout<Frame>.stride }

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
                // A read the state allowed would have been linearized already.
                if !isRead[Int(operation)], let after = apply(operation), linearize(call: entry, operation: operation, after: after, forced: false) {
                    if memoryBytes > memoryBytesMax { return .outOfMemory }
                } else {
                    cursor = next[Int(entry)]
                }
            case .return:
                furthestStuckEntry = max(furthestStuckEntry, entry)
                if !backtrack() { return violation() }
            case .expiry:
                if linearize(call: partner[Int(entry)], operation: operation, after: state, forced: true) {
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
        // A branch can only end at a return or at an expiry whose configuration was explored
        // before, which itself ended at a return; so a return was reached.
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

    /// Linearizes the call unless the resulting configuration was seen before.
    private mutating func linearize(call: Int32, operation: Int32, after: Int32, forced: Bool) -> Bool {
        insertBit(operation)
        let tail = fullWords..<max(fullWords, topWord + 1)
        let hash = bitsHash ^ Self.mix(UInt64(bitPattern: Int64(after)))
        guard cache.insert(hash: hash, state: after, fullWords: fullWords, tail: bits[tail]) else {
            removeBit(operation)
            return false
        }
        stack.append(Frame(call: call, previousState: state, forced: forced))
        state = after
        lift(call)
        fresh = true
        return true
    }

    /// Undoes choices until one leaves an alternative; false when none is left.
    private mutating func backtrack() -> Bool {
        while let frame = stack.popLast() {
            unlift(frame.call)
            removeBit(entryOperation[Int(frame.call)])
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
/// stored as its count of leading full words and the words after them up to the last
/// non-zero one, which is a few words however long the history.
struct ConfigurationCache {
    private var slots = [Int32](repeating: -1, count: 1 << 10)
    private var hashes: [UInt64] = []
    private var states: [Int32] = []
    private var fullWords: [Int32] = []
    /// Configuration i's tail is `words[starts[i]..<starts[i + 1]]`.
    private var starts: [Int] = [0]
    private var words: [UInt64] = []

    var count: Int { hashes.count }

    var memoryBytes: Int {
        slots.capacity * 4 + hashes.capacity * 8 + states.capacity * 4 + fullWords.capacity * 4 + starts.capacity * 8 + words.capacity * 8
    }

    /// Adds the configuration; false if it was already present.
    mutating func insert(hash: UInt64, state: Int32, fullWords full: Int, tail: ArraySlice<UInt64>) -> Bool {
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            let i = Int(slots[slot])
            if hashes[i] == hash, states[i] == state, fullWords[i] == Int32(full), words[starts[i]..<starts[i + 1]].elementsEqual(tail) {
                return false
            }
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(count)
        hashes.append(hash)
        states.append(state)
        fullWords.append(Int32(full))
        words.append(contentsOf: tail)
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
