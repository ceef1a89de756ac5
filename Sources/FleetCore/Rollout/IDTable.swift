/// Position of each id in a list, found by a cheap hash (FNV-1a over the UTF-8 bytes) with open
/// addressing. The decision looks up a device and a deployment for every execution of the
/// fleet — hundreds of thousands per pass — and a `[String: Int]` spends most of that time in
/// its seeded SipHash.
struct IDTable {
    private var slots: [Int32]
    private var hashes: [UInt32]
    private let mask: Int

    /// Indexes `ids`; a repeated id keeps its first position.
    init(_ ids: [String]) {
        var capacity = 16
        while capacity < ids.count * 2 { capacity <<= 1 }
        slots = Array(repeating: -1, count: capacity)
        hashes = Array(repeating: 0, count: capacity)
        mask = capacity - 1
        for (position, id) in ids.enumerated() {
            let hash = Self.hash(id)
            var slot = Int(hash) & mask
            while slots[slot] >= 0 {
                if hashes[slot] == hash, ids[Int(slots[slot])] == id { break }
                slot = (slot + 1) & mask
            }
            if slots[slot] < 0 {
                slots[slot] = Int32(position)
                hashes[slot] = hash
            }
        }
    }

    /// The position of `id` in `ids` (the list the table was made from), or nil.
    func position(of id: String, in ids: [String]) -> Int? {
        let hash = Self.hash(id)
        var slot = Int(hash) & mask
        while slots[slot] >= 0 {
            if hashes[slot] == hash, ids[Int(slots[slot])] == id { return Int(slots[slot]) }
            slot = (slot + 1) & mask
        }
        return nil
    }

    private static func hash(_ id: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        var copy = id
        copy.withUTF8 { bytes in
            for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        }
        return hash
    }
}
