import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import PBFTTestSupport
import PBFTTestbed
import Testing

/// Experiment files, the fault budget, seeded schedules, and real runs of shipped experiments.
@Suite(.serialized) struct ExperimentTests {
    static let experiments: String = {
        // The package root, from this file's path: Tests/PBFTTestbedTests/ExperimentTests.swift.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/experiments"
    }()

    static let header = """
        name = "t"
        description = "a test"

        """

    func error(_ text: String) -> String {
        do {
            _ = try Experiment.parse(Self.header + text, file: "x.toml")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("mistakes in a file name the line and the field")
    func fileErrors() {
        let unknownCommand = error("""
            [[timeline]]
            at = 1
            do = "kil primary"
            """)
        #expect(unknownCommand.contains("line 5") && unknownCommand.contains("timeline[0].do") && unknownCommand.contains("unknown command 'kil'"), "\(unknownCommand)")
        let badTrigger = error("""
            [[timeline]]
            at = 1
            do = "heal"

            [[timeline]]
            when = "view > 2"
            do = "heal"
            """)
        #expect(badTrigger.contains("line 8") && badTrigger.contains("timeline[1].when"), "\(badTrigger)")
        let window = error("""
            [cluster]
            checkpoint_interval = 10
            log_window = 25
            """)
        #expect(window.contains("line 5") && window.contains("cluster.log_window"), "\(window)")
        let unknownField = error("""
            [load]
            clients = 4
            durration_s = 3
            """)
        #expect(unknownField.contains("load.durration_s"), "\(unknownField)")
        let byzantine = error("""
            [[timeline]]
            at = 1
            do = "byzantine 1 silent"
            """)
        #expect(byzantine.contains("allow_byzantine"), "\(byzantine)")
        let stranger = error("""
            [[timeline]]
            at = 1
            do = "kill 7"
            """)
        #expect(stranger.contains("replica 7 is not in the cluster"), "\(stranger)")
        #expect(error("").contains("no error"))
    }

    @Test("a timeline over the fault budget is refused unless the file says that is the point")
    func budget() throws {
        let twoDown = Self.header + """
            [[timeline]]
            at = 1
            do = "kill primary"

            [[timeline]]
            at = 2
            do = "pause 3"
            """
        #expect(throws: (any Error).self) { try ExperimentRunner.plan(try Experiment.parse(twoDown, file: "x.toml")) }
        let onPurpose = twoDown + "\n[budget]\nbeyond = true\n"
        #expect(try ExperimentRunner.plan(try Experiment.parse(onPurpose, file: "x.toml")).count == 2)
        let oneAtATime = Self.header + """
            [[timeline]]
            at = 1
            do = "kill primary"

            [[timeline]]
            at = 3
            do = "restart primary"

            [[timeline]]
            at = 5
            do = "partition primary"

            [[timeline]]
            at = 7
            do = "heal"
            """
        #expect(try ExperimentRunner.plan(try Experiment.parse(oneAtATime, file: "x.toml")).count == 4)
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.experiments) where file.hasSuffix(".toml") {
            let experiment = try Experiment.load(Self.experiments + "/" + file)
            #expect(!experiment.description.isEmpty)
            _ = try ExperimentRunner.plan(experiment)
        }
    }

    @Test("reconfiguration steps: the words parse, an added replica may be named later, 'epoch >= E' triggers, the budget follows f")
    func reconfigurationSteps() throws {
        let grow = Self.header + """
            [[timeline]]
            at = 1
            do = "add-replica"

            [[timeline]]
            when = "epoch >= 1"
            do = "add-replica 7 --port 21999"

            [[timeline]]
            when = "epoch >= 2"
            do = "replace-replica primary"

            [[timeline]]
            when = "epoch >= 3"
            do = "kill 7"
            """
        let experiment = try Experiment.parse(grow, file: "x.toml")
        #expect(experiment.timeline.map(\.trigger) == [.time(1), .epoch(atLeast: 1), .epoch(atLeast: 2), .epoch(atLeast: 3)])
        #expect(experiment.timeline.map(\.action.verb) == [.addReplica, .addReplica, .replaceReplica, .kill])
        #expect(experiment.timeline[1].action.newReplica == "7" && experiment.timeline[1].action.port == 21999)
        #expect(error("[[timeline]]\nat = 1\ndo = \"kill 4\"").contains("replica 4 is not in the cluster"))
        #expect(error("[[timeline]]\nat = 1\ndo = \"set-f two\"").contains("timeline[0].do"))
        #expect(error("[[timeline]]\nat = 1\ndo = \"add-replica 2\"").contains("replica 2 is already in the cluster"))
        #expect(error("[[timeline]]\nwhen = \"epoch > 1\"\ndo = \"heal\"").contains("epoch >= E"))

        // Two replicas down at once: over f = 1, within f = 2 once n = 7.
        let twoDown = """
            [[timeline]]
            at = 20
            do = "kill 1"

            [[timeline]]
            at = 21
            do = "kill 2"
            """
        let adds = (1...3).map { "[[timeline]]\nat = \($0)\ndo = \"add-replica\"\n" }.joined(separator: "\n")
        #expect(throws: (any Error).self) { try ExperimentRunner.plan(try Experiment.parse(Self.header + adds + "\n" + twoDown, file: "x.toml")) }
        let raised = Self.header + adds + "\n[[timeline]]\nat = 10\ndo = \"set-f 2\"\n\n" + twoDown
        #expect(try ExperimentRunner.plan(try Experiment.parse(raised, file: "x.toml")).count == 6)
        let fixed = raised + "\n[budget]\nfaulty = 1\n"
        #expect(throws: (any Error).self) { try ExperimentRunner.plan(try Experiment.parse(fixed, file: "x.toml")) }
    }

    @Test("the same seed draws the same fault timeline; another seed another")
    func seededSchedule() throws {
        var experiment = try Experiment.load(Self.experiments + "/random-faults.toml")
        let once = try ExperimentRunner.plan(experiment).map { "\($0.trigger) \($0.text)" }
        let again = try ExperimentRunner.plan(try Experiment.load(Self.experiments + "/random-faults.toml")).map { "\($0.trigger) \($0.text)" }
        #expect(once == again)
        #expect(once.count >= 4)
        experiment.seed += 1
        #expect(try ExperimentRunner.plan(experiment).map { "\($0.trigger) \($0.text)" } != once)
    }

    // MARK: Real runs

    struct Run {
        let directory: String
        let result: PBFTBinary.Result
        var summary: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/summary.json"))) as? [String: Any]) ?? [:]
        }
        var verdicts: [String: Bool] {
            Dictionary(uniqueKeysWithValues: (summary["verdicts"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["passed"] as! Bool) })
        }
    }

    func run(_ file: String, in directory: TemporaryDirectory) throws -> Run {
        let out = directory.file("results")
        return Run(directory: out, result: try PBFTBinary.run(["run", file, "--out", out, "--quiet"]))
    }

    /// Parses report.html and counts elements by class.
    final class ReportCounter: NSObject, XMLParserDelegate {
        var classes: [String: Int] = [:]
        var svgs: [String] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            for word in (attributes["class"] ?? "").split(separator: " ") { classes["\(name).\(word)", default: 0] += 1 }
            if name == "svg" { svgs.append(attributes["class"] ?? "") }
        }
    }

    func report(_ run: Run) throws -> ReportCounter {
        let data = try Data(contentsOf: URL(fileURLWithPath: run.directory + "/report.html"))
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("https://") && !text.contains("<script"), "self-contained")
        let parser = XMLParser(data: Data(text.replacingOccurrences(of: "<!DOCTYPE html>", with: "").utf8))
        let counter = ReportCounter()
        parser.delegate = counter
        #expect(parser.parse(), "report.html parses: \(String(describing: parser.parserError))")
        return counter
    }

    @Test("kill the primary: all verdicts pass, one view change, the report has its plots and verdicts; a broken log is caught")
    func killPrimary() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/kill-primary.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.summary["passed"] as? Bool == true)
        #expect(run.verdicts == ["agreement": true, "integrity": true, "checkpoints": true, "epochs": true, "linearizability": true, "liveness": true, "convergence": true, "byzantine evidence": true])
        #expect((run.summary["view_changes"] as? [Any])?.isEmpty == false)
        print("kill-primary: longest gap in service \(run.summary["longest_gap_s"] ?? "?") s")
        let report = try report(run)
        #expect(report.svgs.contains { $0.contains("throughput") } && report.svgs.contains { $0.contains("latency") })
        #expect((report.classes["rect.fault"] ?? 0) >= 2, "the kill is shaded in both plots")
        #expect((report.classes["line.view-change"] ?? 0) >= 2)
        #expect(report.classes["tr.pass"] == 8 && report.classes["tr.fail"] == nil)
        for file in ["scenario.toml", "scenario.json", "events.jsonl", "history.jsonl", "metrics.csv", "logs/replica-0.log"] {
            #expect(FileManager.default.fileExists(atPath: run.directory + "/" + file), "\(file)")
        }

        // Make replica 3 look as if it executed two sequence numbers in the other order.
        let log = run.directory + "/data/r3/execution.jsonl"
        var lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let executed = lines.indices.filter { lines[$0].contains("\"type\":\"executed\"") }
        let (a, b) = (executed[10], executed[11])
        let seqA = lines[a].firstMatch(of: /"seq":(\d+)/)!.1, seqB = lines[b].firstMatch(of: /"seq":(\d+)/)!.1
        lines[a] = lines[a].replacingOccurrences(of: "\"seq\":\(seqA)", with: "\"seq\":\(seqB)")
        lines[b] = lines[b].replacingOccurrences(of: "\"seq\":\(seqB)", with: "\"seq\":\(seqA)")
        try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let check = try PBFTBinary.run(["check", run.directory])
        #expect(check.status == 1)
        #expect(check.stdout.contains("FAIL  agreement") && check.stdout.contains("and r3 executed different batches at \(seqA)"), "\(check.stdout)")
        #expect(try self.report(run).classes["tr.fail"] == 1)

        // The runner recorded where every replica ended; make r2's record look stuck in a view change.
        let events = run.directory + "/events.jsonl"
        var eventLines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n").map(String.init)
        let final = eventLines.indices.filter { eventLines[$0].contains("\"event\":\"final_status\"") }
        #expect(final.count == 4 && check.stdout.contains("PASS  convergence: r0, r1, r2, r3 all in e0 v"), "\(check.stdout)")
        let r2 = try #require(final.first { eventLines[$0].contains("\"replica\":2,") })
        let view = try #require(eventLines[r2].firstMatch(of: /"view":(\d+),"view_active":true/).flatMap { Int($0.1) })
        eventLines[r2] = eventLines[r2].replacingOccurrences(of: "\"view\":\(view),\"view_active\":true", with: "\"view\":\(view + 1),\"view_active\":false")
        try (eventLines.joined(separator: "\n") + "\n").write(toFile: events, atomically: true, encoding: .utf8)
        let stuck = try PBFTBinary.run(["check", run.directory])
        #expect(stuck.status == 1 && stuck.stdout.contains("FAIL  convergence: r2 stuck in a view change to v\(view + 1) (the others in v\(view), e0)"), "\(stuck.stdout)")
    }

    @Test("an equivocating primary: all verdicts pass, and the primary is named with two conflicting pre-prepares it signed")
    func equivocatingPrimary() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/equivocating-primary.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.values.allSatisfy { $0 } && run.verdicts.count == 8, "\(run.result.stdout)")
        #expect(run.result.stdout.contains("PASS  byzantine evidence: r0 proven faulty") && run.result.stdout.contains("two pre-prepare messages for view 0"), "\(run.result.stdout)")
    }

    @Test("n = 5, a primary that equivocates and votes for both of its batches: all verdicts pass (with quorums of 2f+1 agreement, checkpoints and linearizability fail), a view change replaces it")
    func equivocatingVoterOnFive() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/equivocating-voter-n5.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.values.allSatisfy { $0 } && run.verdicts.count == 8, "\(run.result.stdout)")
        let views = run.summary["view_changes"] as? [[String: Any]] ?? []
        #expect(views.contains { $0["primary"] as? Int == 1 }, "\(views)")
    }

    @Test("n = 7 lowered to f = 1, then split 3/4: neither side has a quorum of 5, service stops until the heal, all verdicts pass")
    func splitBrainAfterSetF() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/split-brain-set-f.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.values.allSatisfy { $0 } && run.verdicts.count == 8, "\(run.result.stdout)")
        // With quorums of 2f+1 = 3 both sides kept committing (a gap of a tenth of a second).
        let gap = run.summary["longest_gap_s"] as? Double ?? 0
        #expect(gap > 8, "the partition lasts 10 s; the longest gap in service was \(gap) s")
    }

    @Test("a lossy network: all verdicts pass")
    func lossyNetwork() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/lossy-network.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.values.allSatisfy { $0 } && run.verdicts.count == 8, "\(run.result.stdout)")
    }

    @Test("grow from 4 to 7 replicas and f = 2 under load, then kill the last epoch's primary: all verdicts pass, every epoch entered alike, the clients follow")
    func growFourToSeven() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/grow-4-to-7.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.count == 8 && run.verdicts.values.allSatisfy { $0 }, "\(run.result.stdout)")
        #expect(run.result.stdout.contains("PASS  epochs: e1 from"), "\(run.result.stdout)")
        for epoch in 1...4 { #expect(run.result.stdout.contains("e\(epoch) from"), "e\(epoch)") }
        #expect(run.result.stdout.contains("e4 from") && run.result.stdout.contains("(n = 7, f = 2; r0,r1,r2,r3,r4,r5,r6): entered by r0, r1, r2, r3"), "\(run.result.stdout)")
        let reconfigurations = run.summary["reconfigurations"] as? [[String: Any]] ?? []
        #expect(reconfigurations.count == 4 && reconfigurations.allSatisfy { ($0["to_serving_s"] as? Double).map { $0 < 10 } ?? false }, "\(reconfigurations)")
        for r in reconfigurations { print("grow-4-to-7: \(r["change"] ?? "?"): serving after \(r["to_serving_s"] ?? "?") s, longest gap \(r["longest_gap_s"] ?? "?") s") }
        let events = text(run.directory + "/events.jsonl")
        #expect(events.components(separatedBy: "\"event\":\"replica_added\"").count - 1 == 3)
        #expect(events.contains("\"event\":\"view_change\"") && events.contains("\"epoch\":4"), "the kill in e4 changed its view")
        #expect((try? String(contentsOfFile: run.directory + "/report.html", encoding: .utf8))?.contains("e4 v0 (r0)") == true, "the report marks the epochs")
    }

    @Test("remove the primary under load, then add a replica: the old primary retires (no crash), all verdicts pass")
    func removePrimary() throws {
        let directory = TemporaryDirectory()
        let run = try run(Self.experiments + "/remove-primary.toml", in: directory)
        #expect(run.result.status == 0, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts.values.allSatisfy { $0 } && run.verdicts.count == 8, "\(run.result.stdout)")
        let events = text(run.directory + "/events.jsonl")
        #expect(events.contains("\"event\":\"replica_retired\"") && !events.contains("\"event\":\"exited\""), "retired, not crashed")
        #expect(run.result.stdout.contains("e1 from") && run.result.stdout.contains("(n = 4, f = 1; r1,r2,r3,r4)"), "\(run.result.stdout)")
        #expect(run.result.stdout.contains("e2 from") && run.result.stdout.contains("(n = 5, f = 1; r1,r2,r3,r4,r5)"), "\(run.result.stdout)")
        let reconfigurations = run.summary["reconfigurations"] as? [[String: Any]] ?? []
        #expect(reconfigurations.count == 2 && reconfigurations.allSatisfy { $0["to_serving_s"] is Double }, "\(reconfigurations)")
        for r in reconfigurations { print("remove-primary: \(r["change"] ?? "?"): serving after \(r["to_serving_s"] ?? "?") s, longest gap \(r["longest_gap_s"] ?? "?") s") }
        #expect(!(run.summary["view_changes"] as? [[String: Any]] ?? []).contains { ($0["view"] as? Int ?? 0) > 0 }, "no view change: the new epoch started in view 0")
    }

    @Test("beyond the budget on purpose (two of four replicas killed): the run fails its liveness verdict and exits 1; convergence judges the two left")
    func beyondTheBudget() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("beyond.toml", """
            name = "beyond"
            description = "two of four replicas down: no quorum"
            liveness_bound_s = 2
            settle_s = 3

            [budget]
            beyond = true

            [load]
            clients = 2
            duration_s = 8
            operation_timeout_s = 4

            [[timeline]]
            at = 2
            do = "kill 1"

            [[timeline]]
            at = 2
            do = "kill 2"
            """)
        let run = try run(file, in: directory)
        #expect(run.result.status == 1, "\(run.result.stdout)\(run.result.stderr)")
        #expect(run.verdicts["liveness"] == false && run.verdicts["agreement"] == true && run.verdicts["linearizability"] == true, "\(run.verdicts)")
        #expect(run.result.stdout.contains("FAIL  liveness"))
        // Judged like any run: the two left must agree where they stand (they do unless one
        // started a view change, which no quorum can finish); the killed ones are not judged.
        #expect(run.verdicts["convergence"] != nil && run.result.stdout.contains("not judged: r1 killed, r2 killed"), "\(run.result.stdout)")
    }
}
