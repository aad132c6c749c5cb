/// Why a byte string is not a message. Decoding returns a value or one of these; it never
/// traps, whatever the input.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input ended while `field` still needed `needed` bytes.
    case truncated(field: String, needed: Int, available: Int)
    /// A length or count in `field` exceeds its named limit.
    case limitExceeded(field: String, value: UInt64, limit: UInt64)
    case unsupportedVersion(UInt8)
    case unknownMessageType(UInt8)
    case unknownPrincipalKind(UInt8)
    case unknownReconfigurationKind(UInt8)
    /// A message type that this sender may not send (a client's pre-prepare, say).
    case senderNotAllowed(type: MessageType, sender: Principal)
    /// A nested envelope of the wrong type (a prepare where a checkpoint belongs, say).
    case unexpectedNestedType(field: String, expected: MessageType, found: MessageType)
    /// A field whose value has no meaning (a non-zero operator id, invalid UTF-8, ...).
    case invalidValue(field: String, reason: String)
    /// Bytes left over after a complete message: the encoding is not canonical.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .truncated(let field, let needed, let available):
            "truncated: \(field) needs \(needed) bytes, \(available) left"
        case .limitExceeded(let field, let value, let limit):
            "\(field) is \(value), above its limit of \(limit)"
        case .unsupportedVersion(let version): "unsupported wire version \(version)"
        case .unknownMessageType(let type): "unknown message type \(type)"
        case .unknownPrincipalKind(let kind): "unknown sender kind \(kind)"
        case .unknownReconfigurationKind(let kind): "unknown reconfiguration kind \(kind)"
        case .senderNotAllowed(let type, let sender): "\(sender) may not send a \(type)"
        case .unexpectedNestedType(let field, let expected, let found):
            "\(field) holds a \(found), expected a \(expected)"
        case .invalidValue(let field, let reason): "\(field): \(reason)"
        case .trailingBytes(let count): "\(count) trailing bytes after the message"
        }
    }
}
