/// An http(s) URL taken apart strictly enough to decide whether it lies under an allowed source.
///
/// It refuses what is used to slip past prefix checks: credentials before the host
/// (`https://allowed.example@evil.example/`), `..` segments and encoded dots.
public struct WebURL: Hashable, Sendable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int?
    /// The path, starting with `/`, or empty.
    public var path: String
    /// Everything from `?` on, kept as written.
    public var rest: String

    public struct Problem: Error, Sendable { public var reason: String }

    public static func parse(_ text: String) -> Result<WebURL, Problem> {
        guard let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") else {
            return .failure(Problem(reason: "expected an http:// or https:// URL"))
        }
        let scheme = text[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else {
            return .failure(Problem(reason: "expected an http:// or https:// URL, found scheme '\(scheme)'"))
        }
        let afterScheme = text[text.index(colon, offsetBy: 3)...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        guard !authority.contains("@") else {
            return .failure(Problem(reason: "credentials in a URL are not allowed"))
        }
        var host = Substring(authority)
        var port: Int? = nil
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65_535).contains(number) else {
                return .failure(Problem(reason: "invalid port in URL"))
            }
            host = authority[..<colon]
            port = number
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy(isHostCharacter) else {
            return .failure(Problem(reason: "invalid host in URL"))
        }
        let remainder = afterScheme[authorityEnd...]
        let pathEnd = remainder.firstIndex { $0 == "?" || $0 == "#" } ?? remainder.endIndex
        let path = String(remainder[..<pathEnd])
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: { $0 == ".." || $0 == "." }) || path.lowercased().contains("%2e") {
            return .failure(Problem(reason: "'.' and '..' path segments are not allowed in URL"))
        }
        return .success(WebURL(scheme: scheme, host: host.lowercased(), port: port,
                               path: path, rest: String(remainder[pathEnd...])))
    }

    public var description: String {
        "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "") + path + rest
    }

    private static func isHostCharacter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "-" || scalar == "." || scalar == "[" || scalar == "]" || scalar == ":"
    }

    /// Whether `candidate` lies under this URL as an allowed source: same scheme, host and port,
    /// and a path that starts with this one at a segment boundary.
    public func contains(_ candidate: WebURL) -> Bool {
        guard candidate.scheme == scheme, candidate.host == host, candidate.port == port else { return false }
        if path.hasSuffix("/") || path.isEmpty { return candidate.path.hasPrefix(path) }
        return candidate.path == path || candidate.path.hasPrefix(path + "/")
    }
}

