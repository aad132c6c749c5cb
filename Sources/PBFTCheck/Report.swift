/// What one experiment run showed, as `ReportRenderer.html(_:)` draws it: the run's identity,
/// per-second client measurements, the faults injected, the view changes seen, notable events
/// and the checkers' verdicts.
///
/// Times are seconds since the run started. All text fields are untrusted (they may quote
/// replica output or fault descriptions) and are escaped by the renderer.
public struct RunReport: Sendable, Equatable, Codable {
    /// The experiment's name, e.g. "primary-crash".
    public var name: String
    /// What the experiment demonstrates, in a sentence or two.
    public var purpose: String
    /// The seed that reproduces the run's choices (workload, fault timing).
    public var seed: UInt64
    /// The version of `pbft` that ran it.
    public var version: String
    /// When the run started, ISO-8601 UTC ("2026-11-21T08:30:00Z").
    public var started: String
    public var durationSeconds: Double
    /// Cluster settings shown in the header, in this order (n, f, timeouts, ...).
    public var cluster: [Setting]
    /// One entry per second of the run, in any order. A second without an entry completed no
    /// operations and has no latency.
    public var seconds: [SecondMetrics]
    public var faults: [FaultInterval]
    public var viewChanges: [ViewMark]
    public var events: [TimelineEvent]
    public var verdicts: [Verdict]

    public init(
        name: String,
        purpose: String,
        seed: UInt64,
        version: String,
        started: String,
        durationSeconds: Double,
        cluster: [Setting] = [],
        seconds: [SecondMetrics] = [],
        faults: [FaultInterval] = [],
        viewChanges: [ViewMark] = [],
        events: [TimelineEvent] = [],
        verdicts: [Verdict] = []
    ) {
        self.name = name
        self.purpose = purpose
        self.seed = seed
        self.version = version
        self.started = started
        self.durationSeconds = durationSeconds
        self.cluster = cluster
        self.seconds = seconds
        self.faults = faults
        self.viewChanges = viewChanges
        self.events = events
        self.verdicts = verdicts
    }

    /// True only if no verdict failed and at least one passed: a run nothing was checked on
    /// has not passed. A skipped verdict fails nothing, and passes nothing either.
    public var passed: Bool { verdicts.contains(where: \.passed) && !verdicts.contains(where: \.failed) }

    /// One line of the cluster settings: "n" = "4", "view change timeout" = "500 ms".
    public struct Setting: Sendable, Equatable, Codable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The client measurements of one second of the run, [second, second + 1).
    public struct SecondMetrics: Sendable, Equatable, Codable {
        /// Seconds since the start, from 0.
        public var second: Int
        /// Operations whose reply arrived in this second.
        public var completed: Int
        /// Latency percentiles of those operations, in milliseconds; nil when none completed.
        public var latencyP50Ms: Double?
        public var latencyP99Ms: Double?
        public var latencyMaxMs: Double?
        /// The view the clients saw at the end of the second, if known.
        public var view: Int?

        public init(
            second: Int,
            completed: Int,
            latencyP50Ms: Double? = nil,
            latencyP99Ms: Double? = nil,
            latencyMaxMs: Double? = nil,
            view: Int? = nil
        ) {
            self.second = second
            self.completed = completed
            self.latencyP50Ms = latencyP50Ms
            self.latencyP99Ms = latencyP99Ms
            self.latencyMaxMs = latencyMaxMs
            self.view = view
        }
    }

    /// A fault in force from `start` to `end`: "kill r0", "partition 0 / 1,2,3",
    /// "drop 20% all traffic", "byzantine r2 equivocatingPrimary".
    public struct FaultInterval: Sendable, Equatable, Codable {
        public var label: String
        public var start: Double
        /// Nil: in force until the end of the run.
        public var end: Double?

        public init(_ label: String, start: Double, end: Double? = nil) {
            self.label = label
            self.start = start
            self.end = end
        }
    }

    /// The moment the cluster entered `view`, led by replica `primary` when known; in an
    /// epoch after the first (a reconfiguration), `epoch` says which: views restart at 0 in
    /// each epoch, so view 0 of a later epoch marks the epoch's start.
    public struct ViewMark: Sendable, Equatable, Codable {
        public var time: Double
        public var view: Int
        public var primary: Int?
        public var epoch: Int?

        public init(time: Double, view: Int, primary: Int? = nil, epoch: Int? = nil) {
            self.time = time
            self.view = view
            self.primary = primary
            self.epoch = epoch
        }

        /// "v3 (r3)", or "v3" when the primary is unknown; "e1 v0 (r0)" in epoch 1.
        public var label: String {
            (epoch.map { "e\($0) " } ?? "") + (primary.map { "v\(view) (r\($0))" } ?? "v\(view)")
        }

        /// The start of a later epoch rather than a view change.
        public var startsEpoch: Bool { epoch != nil && view == 0 }
    }

    /// Something that happened at one moment: "restart r0", "client 2 gave up".
    public struct TimelineEvent: Sendable, Equatable, Codable {
        public var time: Double
        public var label: String

        public init(time: Double, _ label: String) {
            self.time = time
            self.label = label
        }
    }

    /// One checker's judgement: agreement, integrity, checkpoints, linearizability, liveness,
    /// Byzantine evidence, convergence. `detail` is one or more lines of evidence and figures.
    public struct Verdict: Sendable, Equatable, Codable {
        public var name: String
        public var passed: Bool
        /// Not judged: the records the checker needs are missing (a results folder older
        /// than the checker), and `detail` says which and why. Neither passed nor failed.
        public var skipped: Bool
        public var detail: String

        public init(_ name: String, passed: Bool, detail: String = "") {
            self.name = name
            self.passed = passed
            self.skipped = false
            self.detail = detail
        }

        /// A verdict the checker could not reach, and why.
        public static func skipped(_ name: String, because reason: String) -> Verdict {
            var verdict = Verdict(name, passed: false, detail: reason)
            verdict.skipped = true
            return verdict
        }

        public var failed: Bool { !passed && !skipped }

        /// "PASS", "FAIL" or "SKIPPED".
        public var word: String { skipped ? "SKIPPED" : passed ? "PASS" : "FAIL" }
    }
}
