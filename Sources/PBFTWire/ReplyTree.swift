/// The Merkle tree over the replies of one executed batch, whose root a replica signs once
/// (`ReplyRoot`) instead of signing every reply. Its shape is RFC 6962's (§2.1): leaves in
/// execution order, a lone node at the end of a level carried up unchanged. A leaf hashes
/// `0x00 ‖ reply`, an inner node `0x01 ‖ left ‖ right`, so a leaf can never pass for an
/// inner node (no second preimage across levels). docs/protocol.md ("Replies").
public struct ReplyTree: Sendable {
    public let root: ReplyRoot
    /// For each reply, the sibling hashes from its leaf up to the root.
    public let paths: [[Digest]]

    /// Builds the tree over `replies` (at least one).
    public init(_ replies: [Reply], digester: some MessageDigester) {
        precondition(!replies.isEmpty, "a reply tree has at least one leaf")
        var level = replies.map { Self.leaf($0, digester: digester) }
        var paths = [[Digest]](repeating: [], count: replies.count)
        var depth = 0
        while level.count > 1 {
            for i in paths.indices {
                let sibling = (i >> depth) ^ 1
                if sibling < level.count { paths[i].append(level[sibling]) }
            }
            var next: [Digest] = []
            next.reserveCapacity((level.count + 1) / 2)
            var j = 0
            while j + 1 < level.count {
                next.append(Self.node(level[j], level[j + 1], digester: digester))
                j += 2
            }
            if j < level.count { next.append(level[j]) }
            level = next
            depth += 1
        }
        root = ReplyRoot(root: level[0], leaves: UInt32(replies.count))
        self.paths = paths
    }

    /// The root that `proven`'s path leads to in a tree of `leaves` replies, or nil when its
    /// index or the path's length does not fit that tree (RFC 9162 §2.1.3.2's walk).
    public static func root(of proven: ProvenReply, leaves: UInt32, digester: some MessageDigester) -> Digest? {
        guard proven.index < leaves else { return nil }
        var position = proven.index
        var last = leaves - 1
        var hash = leaf(proven.reply, digester: digester)
        for sibling in proven.path {
            guard last > 0 else { return nil }
            if position & 1 == 1 || position == last {
                hash = node(sibling, hash, digester: digester)
                // A right edge: skip the levels where this node is carried up alone.
                while position & 1 == 0 && position != 0 {
                    position >>= 1
                    last >>= 1
                }
            } else {
                hash = node(hash, sibling, digester: digester)
            }
            position >>= 1
            last >>= 1
        }
        return last == 0 ? hash : nil
    }

    /// Sibling hashes a path from reply `index` of `leaves` holds (0 for a single reply).
    public static func pathLength(index: UInt32, leaves: UInt32) -> Int {
        var position = index
        var count = leaves
        var length = 0
        while count > 1 {
            if position ^ 1 < count { length += 1 }
            position >>= 1
            count = count / 2 + count % 2
        }
        return length
    }

    static func leaf(_ reply: Reply, digester: some MessageDigester) -> Digest {
        var writer = ByteWriter(capacity: 1 + 8 + 8 + 5 + 4 + reply.result.count)
        writer.u8(0)
        writer.reply(reply)
        return digester.digest(writer.bytes)
    }

    static func node(_ left: Digest, _ right: Digest, digester: some MessageDigester) -> Digest {
        var writer = ByteWriter(capacity: 1 + 2 * Digest.byteCount)
        writer.u8(1)
        writer.digest(left)
        writer.digest(right)
        return digester.digest(writer.bytes)
    }
}

extension ReplyRoot {
    /// Whether `proven` is a leaf of the tree this root was computed over.
    public func proves(_ proven: ProvenReply, digester: some MessageDigester) -> Bool {
        ReplyTree.root(of: proven, leaves: leaves, digester: digester) == root
    }
}
