#if canImport(Glibc)
import Glibc
#endif

/// What Linux says about a process in /proc: CPU time and resident memory.
public enum ProcFS {
    /// utime + stime in clock ticks from the text of /proc/PID/stat, or nil if it does not
    /// parse. The command name (field 2) is in parentheses and may itself hold spaces and
    /// parentheses, so fields are counted from the last ')': utime and stime are fields 14
    /// and 15 of proc(5).
    public static func cpuTicks(stat text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state), so field k is fields[k - 3].
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// VmRSS in kilobytes from the text of /proc/PID/status, or nil if absent (a zombie).
    public static func residentKilobytes(status text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let words = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 2, words[1] == "kB", let kilobytes = Int(words[0]) else { return nil }
            return kilobytes
        }
        return nil
    }

    /// Seconds of CPU (user + system) process `pid` has used, or nil if it is gone.
    public static func cpuSeconds(pid: Int32) -> Double? {
        guard let text = read("/proc/\(pid)/stat"), let ticks = cpuTicks(stat: text) else { return nil }
        return Double(ticks) / Double(clockTicksPerSecond)
    }

    /// The resident set of process `pid` in kilobytes, or nil if it is gone.
    public static func residentKilobytes(pid: Int32) -> Int? {
        read("/proc/\(pid)/status").flatMap { residentKilobytes(status: $0) }
    }

    static let clockTicksPerSecond: Int = max(1, sysconf(Int32(_SC_CLK_TCK)))

    /// A whole /proc file (their size reads as 0, so read to the end).
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// This process's own CPU time (user + system, every thread), from getrusage.
public enum OwnCPU {
    public static func seconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Processors online (the ceiling's C unless told otherwise).
    public static func coresOnline() -> Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
