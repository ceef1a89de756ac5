/// Text from others (file names in a repository, a device's hardware id, a server's answer)
/// made safe to print: a terminal shows it, it never acts on it.
public enum DisplayText {
    /// `text` with control characters (C0, DEL, C1, and the bidirectional overrides that can
    /// make text read differently than it is) written as `\u{…}`, and cut to `limit` characters
    /// with "…" so a hostile name cannot flood a message.
    public static func safe(_ text: String, limit: Int = 200) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else {
                result += "…"
                break
            }
            if isUnsafe(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return result
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
