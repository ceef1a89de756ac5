import Foundation

/// A remote's URL, classified by transport, so an unsupported one fails with one clear sentence
/// and credentials in it never reach a log.
public struct RemoteURL: Sendable, Equatable, CustomStringConvertible {
    public enum Transport: String, Sendable {
        case local, file, git, https, http, ssh
    }

    public let text: String
    public let transport: Transport

    public init(_ text: String) throws(GitError) {
        self.text = text
        if text.hasPrefix("file://") { transport = .file }
        else if text.hasPrefix("git://") { transport = .git }
        else if text.hasPrefix("https://") { transport = .https }
        else if text.hasPrefix("http://") { transport = .http }
        else if text.hasPrefix("ssh://") { transport = .ssh }
        else if text.contains("://") {
            throw GitError(.unsupportedTransport, operation: "open remote \(Self.redact(text))",
                           message: "unknown URL scheme; use a path, file://, git://, https://, ssh:// or user@host:path")
        } else if Self.isSCPLike(text) { transport = .ssh }
        else { transport = .local }

        Libgit2.ensureInitialised()
        if transport == .https, !Libgit2.supportsHTTPS {
            throw GitError(.unsupportedTransport, operation: "open remote \(description)",
                           message: "this libgit2 build has no HTTPS support; use a libgit2 built with TLS")
        }
        if transport == .ssh, !Libgit2.supportsSSH {
            throw GitError(.unsupportedTransport, operation: "open remote \(description)",
                           message: "this libgit2 build has no SSH support; use a libgit2 built with libssh2")
        }
    }

    /// `user@host:path`, as scp and git write it; a Windows-style `C:\` is not one.
    static func isSCPLike(_ text: String) -> Bool {
        guard let colon = text.firstIndex(of: ":"), let slash = text.firstIndex(of: "/") ?? Optional(text.endIndex) else { return false }
        return colon < slash && text.distance(from: text.startIndex, to: colon) > 1
    }

    public var description: String { Self.redact(text) }

    /// The text with secrets in URLs replaced by `***`: any user information of http(s) URLs
    /// (a token may stand alone before the `@`), and the password of others.
    public static func redact(_ text: String) -> String {
        var output = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            let isWeb = rest[..<scheme.lowerBound].lowercased().hasSuffix("http") || rest[..<scheme.lowerBound].lowercased().hasSuffix("https")
            output += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == " " || $0 == "'" || $0 == "\"" } ?? rest.endIndex
            guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { continue }
            let userInfo = rest[..<at]
            if isWeb {
                output += "***"
            } else if let colon = userInfo.firstIndex(of: ":") {
                output += userInfo[..<colon] + ":***"
            } else {
                output += userInfo
            }
            rest = rest[at...]
        }
        return output + rest
    }
}
