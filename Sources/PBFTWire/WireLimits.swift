/// The named maximum of every length on the wire. The decoder checks each length against
/// its limit before it allocates anything, so memory never grows with what a peer claims.
/// The protocol configuration (a later part) checks how these relate to its own bounds.
public struct WireLimits: Hashable, Sendable {
    /// Bytes of one whole frame (an envelope plus, for a pre-prepare, its batch).
    public var frameBytesMax: Int
    /// Bytes of a request's operation.
    public var operationBytesMax: Int
    /// Bytes of a reply's result.
    public var resultBytesMax: Int
    /// Requests in one pre-prepare's batch.
    public var batchRequestsMax: Int
    /// Replicas in a configuration; bounds every per-replica list (checkpoint proofs,
    /// prepares in a certificate, view-changes in a new view).
    public var replicasMax: Int
    /// Sequence numbers in the log window `L`; bounds certificates in a view-change and
    /// pre-prepares in a new view.
    public var logWindowMax: Int
    /// Bytes of one state-transfer chunk.
    public var stateChunkBytesMax: Int
    /// Bytes of a whole state snapshot.
    public var stateBytesMax: UInt64
    /// Bytes of a host name in a replica descriptor.
    public var hostBytesMax: Int
    /// Bytes of a control command's argument and of a control reply's body.
    public var controlBytesMax: Int
    /// Clients in a configuration record.
    public var clientsMax: Int

    public init(
        frameBytesMax: Int = 32 << 20,
        operationBytesMax: Int = 16 << 10,
        resultBytesMax: Int = 16 << 10,
        batchRequestsMax: Int = 512,
        replicasMax: Int = 64,
        logWindowMax: Int = 1024,
        stateChunkBytesMax: Int = 48 << 10,
        stateBytesMax: UInt64 = 1 << 30,
        hostBytesMax: Int = 253,
        controlBytesMax: Int = 32 << 10,
        clientsMax: Int = 4096
    ) {
        self.frameBytesMax = frameBytesMax
        self.operationBytesMax = operationBytesMax
        self.resultBytesMax = resultBytesMax
        self.batchRequestsMax = batchRequestsMax
        self.replicasMax = replicasMax
        self.logWindowMax = logWindowMax
        self.stateChunkBytesMax = stateChunkBytesMax
        self.stateBytesMax = stateBytesMax
        self.hostBytesMax = hostBytesMax
        self.controlBytesMax = controlBytesMax
        self.clientsMax = clientsMax
    }

    public static let `default` = WireLimits()
}
