/// The rules for tag names and values, the same as Kubernetes labels, so selectors read alike.
///
/// A name is an optional prefix and `/`, then 1–63 characters of letters, digits, `-`, `_` and
/// `.`, starting and ending with a letter or digit. The prefix is a DNS subdomain as Kubernetes
/// checks it (RFC 1123): at most 253 characters, lower-case labels of letters, digits and `-`
/// joined by dots, each starting and ending with a letter or digit. A value is empty or the
/// same shape as a name without prefix.
public enum TagSyntax {
    /// Why `key` is not a valid tag name, or nil when it is.
    public static func keyProblem(_ key: String) -> String? {
        var name = Substring(key)
        if let slash = key.firstIndex(of: "/") {
            let prefix = key[..<slash]
            name = key[key.index(after: slash)...]
            if let problem = prefixProblem(prefix) { return "invalid tag name '\(key)': the prefix before '/' \(problem)" }
        }
        if let problem = segmentProblem(name) { return "invalid tag name '\(key)': \(problem)" }
        return nil
    }

    /// Why `value` is not a valid tag value, or nil when it is.
    public static func valueProblem(_ value: String) -> String? {
        if value.isEmpty { return nil }
        return segmentProblem(Substring(value)).map { "invalid tag value '\(value)': \($0)" }
    }

    private static func prefixProblem(_ prefix: Substring) -> String? {
        guard !prefix.isEmpty else { return "is empty" }
        guard prefix.unicodeScalars.count <= 253 else { return "is longer than 253 characters" }
        for label in prefix.split(separator: ".", omittingEmptySubsequences: false) {
            let scalars = label.unicodeScalars
            guard let first = scalars.first, let last = scalars.last,
                  scalars.allSatisfy({ isLowercaseAlphanumeric($0) || $0 == "-" }),
                  isLowercaseAlphanumeric(first), isLowercaseAlphanumeric(last) else {
                return "must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"
            }
        }
        return nil
    }

    private static func isLowercaseAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
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
