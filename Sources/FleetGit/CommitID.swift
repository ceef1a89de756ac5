import CLibGit2

/// A commit's full object id, as 40 hexadecimal digits.
public struct CommitID: Hashable, Sendable, CustomStringConvertible, Codable {
    public let hex: String

    /// Accepts exactly 40 hexadecimal digits, in either case.
    public init?(_ hex: String) {
        guard hex.utf8.count == 40, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }) else {
            return nil
        }
        self.hex = hex.lowercased()
    }

    init(_ oid: git_oid) {
        var copy = oid
        var buffer = [CChar](repeating: 0, count: 40)
        git_oid_fmt(&buffer, &copy)
        hex = String(decoding: buffer.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var oid: git_oid {
        var oid = git_oid()
        _ = git_oid_fromstr(&oid, hex)
        return oid
    }

    /// The first 12 digits, for messages.
    public var short: String { String(hex.prefix(12)) }

    public var description: String { hex }
}
