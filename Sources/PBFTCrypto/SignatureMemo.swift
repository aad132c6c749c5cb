public import PBFTWire
import Synchronization

/// Envelopes whose signatures, nested ones included, have already been verified, so that a
/// message seen again costs one digest instead of a signature check: a retransmitted
/// VIEW-CHANGE, the VIEW-CHANGEs inside a NEW-VIEW, the prepares inside a prepared
/// certificate, a request inside a pre-prepare's batch after it came from its client.
///
/// An entry is the digest (BLAKE2b-256, collision-resistant like SHA-256 and three times
/// as fast here) of the public key, the signature and the exact signed bytes, and
/// is added only once the whole envelope checked out, so a hit proves the same bytes were
/// verified under the same key: nothing a peer sends can put an entry in. Verification is
/// deterministic, so skipping a repeat changes no outcome, only its cost. Bounded: the
/// oldest entries go first once `capacity` are held.
public final class SignatureMemo: VerifiedSignatures {
    private struct Entries {
        var held = Set<Digest>()
        var order: [Digest] = []
        var next = 0
        var hits = 0
        var misses = 0
    }

    public let capacity: Int
    private let entries = Mutex(Entries())

    public init(capacity: Int = 32_768) {
        precondition(capacity > 0, "a signature memo needs room for one entry")
        self.capacity = capacity
    }

    /// How many checks the memo answered, and how many it could not.
    public var counts: (hits: Int, misses: Int) { entries.withLock { ($0.hits, $0.misses) } }

    /// BLAKE2b-256 of the signed bytes, the signature and the public key.
    public func key(_ signature: Signature, of bytes: [UInt8], by publicKey: PublicKey) -> Digest {
        Crypto.blake2b256(bytes, signature.bytes, publicKey.bytes)
    }

    public func contains(_ key: Digest) -> Bool {
        entries.withLock { state in
            let held = state.held.contains(key)
            if held { state.hits += 1 } else { state.misses += 1 }
            return held
        }
    }

    public func insert(_ key: Digest) {
        entries.withLock { state in
            guard state.held.insert(key).inserted else { return }
            if state.order.count < capacity {
                state.order.append(key)
            } else {
                state.held.remove(state.order[state.next])
                state.order[state.next] = key
                state.next = (state.next + 1) % capacity
            }
        }
    }
}
