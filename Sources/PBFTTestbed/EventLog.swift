import Foundation

/// The run directory's `events.jsonl`: one JSON object per line for every fault, mode,
/// process start and exit, with its wall-clock time and the seconds since the launch began:
///
///     {"time":"2026-11-21T08:30:01.250Z","elapsed":12.5,"event":"kill","replica":0,"pid":4242,"signal":"SIGKILL"}
///
/// Lines are appended whole and flushed at once, so a reader (the experiment runner, a
/// checker) may follow the file while the launch runs.
public final class EventLog: @unchecked Sendable {
    public let path: String
    let handle: FileHandle
    let lock = NSLock()
    let start = Date()
    let formatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw FaultError("\(path): cannot create the event log")
            }
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    /// Appends one event. `fields` hold JSON values: strings, numbers, booleans, arrays, objects.
    public func record(_ event: String, _ fields: [String: Any] = [:]) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        var line = "{\"time\":\"\(formatter.string(from: now))\",\"elapsed\":\(String(format: "%.3f", now.timeIntervalSince(start))),\"event\":\(Self.quoted(event))"
        if !fields.isEmpty, let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) {
            line += "," + String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        line += "}\n"
        handle.write(Data(line.utf8))
    }

    static func quoted(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"?\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
