public import FleetCore

/// Signs webhook payloads in tests as a forge does. An implementation of its own (RFC 2104, checked
/// against RFC 4231's vectors), so the server's verification through swift-crypto is checked
/// against something other than itself.
extension SHA256 {
    /// HMAC-SHA256 (RFC 2104) of `message` under `key`, as 64 lower-case hexadecimal digits.
    public static func hmacHex(key: [UInt8], message: [UInt8]) -> String {
        var key = key
        if key.count > 64 {
            var hasher = Hasher()
            hasher.update(key)
            key = hasher.finalize()
        }
        key += [UInt8](repeating: 0, count: 64 - key.count)
        var inner = Hasher()
        inner.update(key.map { $0 ^ 0x36 })
        inner.update(message)
        var outer = Hasher()
        outer.update(key.map { $0 ^ 0x5c })
        outer.update(inner.finalize())
        return outer.finalizeHex()
    }
}
