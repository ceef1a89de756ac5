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

@Suite struct HMACTests {
    /// RFC 4231's test cases 1, 2 and 6 (a key longer than the block).
    @Test func rfc4231Vectors() {
        #expect(SHA256.hmacHex(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(SHA256.hmacHex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(SHA256.hmacHex(key: [UInt8](repeating: 0xaa, count: 131),
                               message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
            == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func constantTimeComparison() {
        #expect(SHA256.constantTimeEquals("abc", "abc"))
        #expect(!SHA256.constantTimeEquals("abc", "abd"))
        #expect(!SHA256.constantTimeEquals("abc", "abcd"))
    }
}
