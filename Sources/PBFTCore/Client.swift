public import PBFTWire

/// A PBFT client as a pure state machine (§4.1): it signs a request, sends it to the
/// primary it believes in, waits for f+1 matching replies from different replicas, and
/// on timeout re-broadcasts the request to every replica. One request is outstanding at a
/// time; timestamps only grow.
public struct Client: Sendable {
    public enum Event: Sendable {
        case tick
        case message(Authenticated<Frame>)
    }

    public enum Action: Sendable, Equatable {
        case send(Frame, to: ReplicaID)
        case broadcast(Frame)
        /// The outstanding request completed with this result, vouched for by f+1 replicas.
        case completed(timestamp: Timestamp, result: [UInt8])
    }

    public let membership: Membership
    public let retransmitTimeoutTicks: Int
    let signer: any MessageSigner

    /// The view learned from replies; the primary is `membership.primary(of: view)`.
    public private(set) var view = ViewNumber(0)
    public private(set) var lastTimestamp: Timestamp
    public private(set) var now: UInt64 = 0
    private var outstanding: Envelope?
    private var deadline: UInt64 = 0
    private var replies: [ReplicaID: Reply] = [:]
    public private(set) var retransmissions = 0

    /// `firstTimestamp` must exceed every timestamp this principal used before (a real
    /// client passes its clock in microseconds, so restarts keep timestamps growing).
    public init(membership: Membership, signer: any MessageSigner, retransmitTimeoutTicks: Int, firstTimestamp: Timestamp = Timestamp(1)) {
        precondition(retransmitTimeoutTicks >= 1, "retransmit timeout must be positive")
        precondition(firstTimestamp.rawValue >= 1, "timestamps start at 1")
        self.membership = membership
        self.signer = signer
        self.retransmitTimeoutTicks = retransmitTimeoutTicks
        self.lastTimestamp = Timestamp(firstTimestamp.rawValue - 1)
    }

    public var isBusy: Bool { outstanding != nil }
    public var principal: Principal { signer.principal }

    /// Signs and sends a new request. The caller waits for `.completed` before the next.
    public mutating func submit(_ operation: [UInt8]) -> [Action] {
        precondition(outstanding == nil, "one request at a time")
        lastTimestamp = Timestamp(lastTimestamp.rawValue + 1)
        let message: Message = .request(Request(timestamp: lastTimestamp, operation: operation))
        let envelope = Envelope.seal(message, epoch: membership.epoch, signer: signer)
        outstanding = envelope
        replies = [:]
        deadline = now + UInt64(retransmitTimeoutTicks)
        return [.send(Frame(envelope: envelope), to: membership.primary(of: view))]
    }

    public mutating func step(_ event: Event) -> [Action] {
        switch event {
        case .tick:
            now += 1
            guard let request = outstanding, now >= deadline else { return [] }
            // §4.1: on timeout the client broadcasts to all replicas; a backup relays it to
            // the primary and starts its timer, so a faulty primary is eventually replaced.
            retransmissions += 1
            deadline = now + UInt64(retransmitTimeoutTicks)
            return [.broadcast(Frame(envelope: request))]
        case .message(let frame):
            return onReply(frame.value.envelope)
        }
    }

    private mutating func onReply(_ envelope: Envelope) -> [Action] {
        guard case .reply(let reply) = envelope.message, case .replica(let replica) = envelope.sender else { return [] }
        guard membership.replica(replica) != nil, reply.requester == principal, outstanding != nil,
              reply.timestamp == lastTimestamp
        else { return [] }
        replies[replica] = reply
        let matching = replies.values.filter { $0.result == reply.result }
        guard matching.count >= membership.weakQuorum else { return [] }
        // f+1 matching replies include one from a correct replica: the result is right.
        // Learn the view only as far as f+1 replicas vouch for it, so one liar cannot steer us.
        let vouched = matching.map(\.view).sorted(by: >)[membership.f]
        view = max(view, vouched)
        outstanding = nil
        replies = [:]
        return [.completed(timestamp: reply.timestamp, result: reply.result)]
    }
}
