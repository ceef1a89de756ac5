/// The rules for tag names and values, the same as Kubernetes labels, so selectors read alike.
///
/// A name is an optional DNS-subdomain prefix and `/`, then 1–63 characters of letters, digits,
/// `-`, `_` and `.`, starting and ending with a letter or digit. A value is empty or the same
/// shape as a name without prefix.
public enum TagSyntax {
    /// Why `key` is not a valid tag name, or nil when it is.
    public static func keyProblem(_ key: String) -> String? {
        var name = Substring(key)
        if let slash = key.firstIndex(of: "/") {
            let prefix = key[..<slash]
            name = key[key.index(after: slash)...]
            if prefix.isEmpty || prefix.count > 253
                || !prefix.unicodeScalars.allSatisfy({ isAlphanumeric($0) || $0 == "-" || $0 == "." }) {
                return "invalid tag name '\(key)': the prefix before '/' must be a DNS name"
            }
        }
        if let problem = segmentProblem(name) { return "invalid tag name '\(key)': \(problem)" }
        return nil
    }

    /// Why `value` is not a valid tag value, or nil when it is.
    public static func valueProblem(_ value: String) -> String? {
        if value.isEmpty { return nil }
        return segmentProblem(Substring(value)).map { "invalid tag value '\(value)': \($0)" }
    }

    private static func segmentProblem(_ text: Substring) -> String? {
        guard !text.isEmpty else { return "it is empty" }
        guard text.unicodeScalars.count <= 63 else { return "it is longer than 63 characters" }
        let scalars = text.unicodeScalars
        guard scalars.allSatisfy({ isAlphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }) else {
            return "use only letters, digits, '-', '_' and '.'"
        }
        guard isAlphanumeric(scalars.first!), isAlphanumeric(scalars.last!) else {
            return "it must start and end with a letter or digit"
        }
        return nil
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}
