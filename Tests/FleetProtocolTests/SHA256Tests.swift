import FleetProtocol
import Testing

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // FIPS 180-4's one million 'a', fed in uneven pieces.
        var hasher = SHA256.Hasher()
        var left = 1_000_000
        var piece = 1
        while left > 0 {
            let count = min(piece, left)
            hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: count))
            left -= count
            piece = piece * 3 % 997 + 1
        }
        #expect(hasher.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Every split of messages around the 55/56/64-byte padding edges gives the one-shot digest.
    @Test func piecesAgreeWithOneShot() {
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200] {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let whole = SHA256.hex(message)
            for split in Set([0, length / 3, length / 2, length]) {
                var hasher = SHA256.Hasher()
                hasher.update(message[..<split])
                message[split...].withUnsafeBytes { hasher.update($0) }
                #expect(hasher.finalizeHex() == whole, "length \(length) split \(split)")
            }
        }
    }
}
