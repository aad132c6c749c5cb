public import PBFTWire

/// The replicated application behind the protocol. It must be deterministic: the same
/// operations in the same order give the same results and the same snapshot bytes on
/// every replica.
public protocol StateMachine: Sendable {
    /// Applies one operation, ordered by the protocol, and returns its result.
    mutating func execute(_ operation: [UInt8], from requester: Principal) -> [UInt8]
    /// The whole state, canonically encoded: equal states give equal bytes.
    func snapshot() -> [UInt8]
    /// Replaces the state with a snapshot taken by `snapshot()`; throws on bytes that are not one.
    mutating func restore(_ snapshot: [UInt8]) throws(StateMachineError)
}

public struct StateMachineError: Error, Hashable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
