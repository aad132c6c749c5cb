import CSodium
public import PBFTWire

/// libsodium must be initialised once before use; `sodium_init` is itself safe to call
/// from several threads, and a Swift global is initialised exactly once, lazily and
/// atomically, so every entry point of this module starts with `Sodium.ready()`.
enum Sodium {
    private static let initialised: Bool = sodium_init() >= 0

    static func ready() {
        precondition(initialised, "libsodium failed to initialise (sodium_init returned -1)")
    }
}

/// Cryptographic helpers that are not signatures.
public enum Crypto {
    /// SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> Digest {
        Sodium.ready()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        bytes.withUnsafeBufferPointer { input in
            _ = crypto_hash_sha256(&out, input.baseAddress, UInt64(input.count))
        }
        return Digest(bytes: out)!
    }

    /// Compares two byte strings in time that depends only on their lengths, never on
    /// where they differ. Different lengths compare unequal.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        Sodium.ready()
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
        }
    }

    /// `count` bytes from the operating system's secure random source. For key generation
    /// only; the protocol core never sees it.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        Sodium.ready()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }
}

/// SHA-256 as the core's digest function.
public struct SHA256Digester: MessageDigester {
    public init() {}
    public func digest(_ bytes: [UInt8]) -> Digest { Crypto.sha256(bytes) }
}

extension Crypto {
    /// Unkeyed BLAKE2b with a 32-byte output over the concatenation of `parts`, hashed one
    /// after the other without joining them first. About three times SHA-256's speed here
    /// (libsodium's SHA-256 is portable C), for digests that never leave this process.
    public static func blake2b256(_ parts: [UInt8]...) -> Digest {
        Sodium.ready()
        let state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        defer { state.deallocate() }
        // The state is 64-byte aligned in C, which Swift does not import as a type.
        let typed = OpaquePointer(state)
        _ = crypto_generichash_init(typed, nil, 0, Digest.byteCount)
        for part in parts {
            part.withUnsafeBufferPointer { _ = crypto_generichash_update(typed, $0.baseAddress, UInt64($0.count)) }
        }
        var out = [UInt8](repeating: 0, count: Digest.byteCount)
        _ = crypto_generichash_final(typed, &out, Digest.byteCount)
        return Digest(bytes: out)!
    }

    /// Keyed BLAKE2b with an output of `length` bytes (16 to 64); the key is 16 to 64 bytes.
    public static func blake2b(_ bytes: [UInt8], key: [UInt8], length: Int) -> [UInt8] {
        Sodium.ready()
        precondition((16...64).contains(length) && (16...64).contains(key.count), "BLAKE2b sizes out of range")
        var out = [UInt8](repeating: 0, count: length)
        bytes.withUnsafeBufferPointer { m in
            key.withUnsafeBufferPointer { k in
                _ = crypto_generichash(&out, length, m.baseAddress, UInt64(m.count), k.baseAddress, k.count)
            }
        }
        return out
    }
}
