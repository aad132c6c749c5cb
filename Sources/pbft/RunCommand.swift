import ArgumentParser
import Foundation
import PBFTCheck
import PBFTTestbed

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an experiment file: cluster, load, faults; check the results and write the report.",
        discussion: """
            Writes results/NAME-TIME/ (or --out DIR): scenario.toml and scenario.json (as run, with
            the seed and version), events.jsonl, history.jsonl, metrics.csv, the replicas' logs and
            data, summary.json with the verdicts and report.html. Exits 1 if any verdict failed.
            See docs/experiments.md and experiments/.
            """
    )

    @Argument(help: "The experiment file (TOML).") var file: String
    @Option(help: "The results folder (default: results/NAME-TIME).") var out: String?
    @Option(help: "Override the file's seed.") var seed: UInt64?
    @Flag(help: "No progress lines.") var quiet = false

    func run() async throws {
        var experiment: Experiment
        do { experiment = try Experiment.load(file) } catch { throw Failure("\(error)") }
        if let seed { experiment.seed = seed }
        // Refuse a timeline over the budget before anything is created or started.
        do { _ = try ExperimentRunner.plan(experiment) } catch { throw Failure("\(file): \(error)") }
        let directory: String
        if let out {
            guard !FileManager.default.fileExists(atPath: out + "/scenario.json") else { throw Failure("\(out) already holds a run; choose another --out") }
            directory = URL(fileURLWithPath: out).standardizedFileURL.path
        } else {
            let stamp = DateFormatter()
            stamp.dateFormat = "yyyyMMdd-HHmmss"
            stamp.timeZone = TimeZone(identifier: "UTC")
            directory = FileManager.default.currentDirectoryPath + "/results/\(experiment.name)-\(stamp.string(from: Date()))"
        }
        var options = ExperimentRunner.Options(
            experiment: experiment, directory: directory, executable: try LaunchCommand.executablePath(),
            version: PBFTCommand.configuration.version)
        if !quiet { options.progress = { Output.line($0) } }
        Output.line("running \(experiment.name) (seed \(experiment.seed)): \(experiment.description)")
        let started = Date()
        let outcome: ExperimentRunner.Outcome
        do { outcome = try await ExperimentRunner(options: options).run() } catch let error as FaultError {
            throw Failure("\(file): \(error)")
        }
        Output.line("load done: \(outcome.completed) of \(outcome.operations) operations completed; checking")
        let report = try Judge.judge(directory)
        CheckCommand.print(report)
        Output.line(String(format: "pbft run took %.1f s; results in %@ (report.html)", Date().timeIntervalSince(started), directory))
        if !report.passed { throw ExitCode(1) }
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a results folder again: agreement, integrity, checkpoints, epochs, linearizability, liveness, evidence, convergence.",
        discussion: "Rewrites metrics.csv, summary.json and report.html in the folder. Exits 1 if any verdict failed; a verdict whose records the folder lacks (an older run) is skipped, with the reason."
    )

    @Argument(help: "A results folder written by pbft run.") var results: String

    func run() async throws {
        let report: RunReport
        do { report = try Judge.judge(results) } catch let error as CheckError {
            throw Failure(error.description)
        }
        Self.print(report)
        if !report.passed { throw ExitCode(1) }
    }

    static func print(_ report: RunReport) {
        for verdict in report.verdicts {
            let lines = verdict.detail.split(separator: "\n")
            Output.line("\(verdict.skipped ? "SKIP" : verdict.word)  \(verdict.name): \(lines.first ?? "")")
            for line in lines.dropFirst() { Output.line("      \(line)") }
        }
        let skipped = report.verdicts.filter(\.skipped).map(\.name)
        let skippedNote = skipped.isEmpty ? "" : " (skipped: \(skipped.joined(separator: ", ")))"
        Output.line(report.passed ? "all verdicts passed" + skippedNote : "FAILED: \(report.verdicts.filter(\.failed).map(\.name).joined(separator: ", "))" + skippedNote)
    }
}
