/// Text from others (file names in a repository, a device's hardware id, a server's answer)
/// made safe to print: a terminal shows it, it never acts on it.
public enum DisplayText {
    /// `text` with control characters (`StepRules.isControl`: C0, DEL, C1, line separators and
    /// the bidirectional overrides that make text read otherwise than it is) written as `\u{…}`,
    /// and cut to `limit` characters with "…" so a hostile name cannot flood a message.
    public static func safe(_ text: String, limit: Int = 200) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else {
                result += "…"
                break
            }
            if StepRules.isControl(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return result
    }

    /// `text` at most `maximumBytes` of UTF-8 (cut with "…"), its control characters other than
    /// `keeping` replaced by U+FFFD: what a device says, kept as said but bounded and unable to
    /// act on a terminal. The server keeps reports' messages and attributes so; the agent sends
    /// what it says of a remote command so.
    public static func printable(_ text: String, maximumBytes: Int, keeping: Set<Unicode.Scalar> = []) -> String {
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            let shown: Unicode.Scalar = StepRules.isControl(scalar) && !keeping.contains(scalar) ? "\u{FFFD}" : scalar
            bytes += UTF8.width(shown)
            guard bytes <= maximumBytes - 3 else {
                kept.append("\u{2026}")
                break
            }
            kept.append(shown)
        }
        return String(kept)
    }

    /// Text from others as a Markdown code span, for what is posted where Markdown is rendered
    /// (STATUS.md, a pull request's comment): its `<!--`, links, mentions and emphasis show as
    /// they are instead of hiding or rewriting what follows, and its control characters are
    /// written out. Safe in a table cell too.
    public static func codeSpan(_ text: String, limit: Int = 400) -> String {
        var span = "`"
        for character in safe(text, limit: limit) {
            switch character {
            case "`": span += "'"
            case "|": span += "\\|"
            default: span.append(character)
            }
        }
        return span + "`"
    }
}
