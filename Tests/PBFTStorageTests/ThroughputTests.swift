import PBFTTestSupport
import PBFTStorage
import Testing

/// A rough figure, printed and never asserted: timing depends on the machine and the disk.
@Suite struct ThroughputTests {
    static let appends = 10_000
    static let appendsPerSync = 10

    @Test(arguments: [true, false])
    func appendThroughput(syncEnabled: Bool) throws {
        try withTemporaryDirectory { directory in
            var random = SplitMix64(seed: 30)
            let record = random.bytes(200)
            let (log, _, _) = try WriteAheadLog.open(directory: directory, syncEnabled: syncEnabled)
            let elapsed = try ContinuousClock().measure {
                for index in 1...Self.appends {
                    try log.append(record)
                    if index % Self.appendsPerSync == 0 { try log.sync() }
                }
            }
            log.close()
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            print("WAL throughput, sync \(syncEnabled ? "on" : "off"): \(Self.appends) appends of 200 bytes, sync every \(Self.appendsPerSync): \(Int(Double(Self.appends) / seconds)) records/s (\(elapsed))")
            #expect(try reopen(directory).get().records.count == Self.appends)
        }
    }
}
