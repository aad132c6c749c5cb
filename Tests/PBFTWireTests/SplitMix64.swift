import PBFTTestSupport

extension SplitMix64 {
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count + 7)
        while out.count < count {
            let word = next()
            for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        out.removeLast(out.count - count)
        return out
    }

    mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        Int.random(in: 0..<denominator, using: &self) < numerator
    }

    /// Mostly small values, sometimes the edges of the type: edges are where encodings break.
    mutating func edgy64() -> UInt64 {
        switch Int.random(in: 0..<8, using: &self) {
        case 0: [0, 1, UInt64.max, UInt64.max - 1, 1 << 63, UInt64(UInt32.max)].randomElement(using: &self)!
        case 1, 2: next()
        default: UInt64.random(in: 0..<1000, using: &self)
        }
    }

    mutating func edgy32() -> UInt32 {
        switch Int.random(in: 0..<8, using: &self) {
        case 0: [0, 1, UInt32.max, UInt32.max - 1, 1 << 31, UInt32(UInt16.max)].randomElement(using: &self)!
        case 1, 2: UInt32.random(in: 0...UInt32.max, using: &self)
        default: UInt32.random(in: 0..<100, using: &self)
        }
    }

    /// A length in `0...limit`, usually short, sometimes 0 or exactly the limit.
    mutating func length(upTo limit: Int, typical: Int) -> Int {
        switch Int.random(in: 0..<32, using: &self) {
        case 0: 0
        case 1: limit
        case 2: Int.random(in: 0...limit, using: &self)
        default: Int.random(in: 0...min(typical, limit), using: &self)
        }
    }
}
