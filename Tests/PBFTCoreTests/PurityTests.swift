import Foundation
import Testing

/// The core and the wire format must stay pure: no Foundation, no NIO, no clocks, no
/// randomness, no printing. This test reads their sources and fails on any of these.
@Suite struct PurityTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let allowedImports: [String: Set<String>] = [
        "PBFTCore": ["PBFTWire"],
        "PBFTWire": [],
    ]

    static let forbidden = [
        "Date(", "Date.now", "ContinuousClock", "SuspendingClock", "DispatchQueue", "DispatchTime",
        ".random(", "Int.random", "SystemRandomNumberGenerator", "UUID(", "Task.sleep", "print(",
        "ProcessInfo", "arc4random", "gettimeofday", "clock_gettime",
    ]

    @Test(arguments: ["PBFTCore", "PBFTWire"])
    func moduleIsPure(_ module: String) throws {
        let directory = Self.root.appendingPathComponent("Sources").appendingPathComponent(module)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        #expect(!files.isEmpty)
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                let words = code.split(separator: " ").map(String.init)
                if let index = words.firstIndex(of: "import"), index + 1 < words.count {
                    let imported = words[index + 1]
                    #expect(Self.allowedImports[module]!.contains(imported), "\(module)/\(file) imports \(imported)")
                }
                for token in Self.forbidden where code.contains(token) {
                    Issue.record("\(module)/\(file): uses \(token): \(line)")
                }
            }
        }
    }
}
