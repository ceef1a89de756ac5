/// Interned strings: tag names, tag values, app names and versions repeat across a fleet, so
/// each is stored once and compared as a number.
public struct SymbolTable: Sendable {
    private var ids: [String: Int32] = [:]
    public private(set) var strings: [String] = []

    public init() {}

    /// The id of `string`, adding it when new.
    public mutating func intern(_ string: String) -> Int32 {
        if let id = ids[string] { return id }
        let id = Int32(strings.count)
        ids[string] = id
        strings.append(string)
        return id
    }

    /// The id of `string`, or -1 when it was never interned.
    public func lookup(_ string: String) -> Int32 {
        ids[string] ?? -1
    }

    public subscript(id: Int32) -> String { strings[Int(id)] }
}
