/// Reads the fields of one object; `finish()` refuses any key that was not read.
public struct WireObject {
    private let members: [WireJSON.Member]
    private let path: String
    private var used: [Bool]

    public init(_ value: WireJSON, path: String) throws(WireDecodingError) {
        guard case .object(let members) = value else {
            throw WireDecodingError(field: path, message: "'\(path)' has the wrong type")
        }
        self.members = members
        self.path = path
        used = Array(repeating: false, count: members.count)
        // A key twice would let a reader and a validator see different values.
        if let repeated = Self.repeatedKey(members) {
            let field = path.isEmpty ? repeated : path + "." + repeated
            throw WireDecodingError(field: field, message: "'\(field)' appears more than once")
        }
    }

    /// The first key that appears twice: pairwise for the few keys of a wire type, by set for maps.
    public static func repeatedKey(_ members: [WireJSON.Member]) -> String? {
        if members.count <= 16 {
            for index in members.indices.dropFirst() where members[..<index].contains(where: { $0.key == members[index].key }) {
                return members[index].key
            }
            return nil
        }
        var seen = Set<String>()
        return members.first { !seen.insert($0.key).inserted }?.key
    }

    public func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// The value of `key`, nil when absent or null.
    public mutating func optional(_ key: String) -> WireJSON? {
        for index in members.indices where members[index].key == key {
            used[index] = true
            if case .null = members[index].value { return nil }
            return members[index].value
        }
        return nil
    }

    public mutating func required(_ key: String) throws(WireDecodingError) -> WireJSON {
        for index in members.indices where members[index].key == key {
            used[index] = true
            if case .null = members[index].value {
                throw WireDecodingError(field: child(key), message: "'\(child(key))' must not be null")
            }
            return members[index].value
        }
        throw WireDecodingError(field: child(key), message: "'\(child(key))' is required")
    }

    public mutating func string(_ key: String) throws(WireDecodingError) -> String {
        try Self.string(try required(key), path: child(key))
    }

    public mutating func optionalString(_ key: String) throws(WireDecodingError) -> String? {
        guard let value = optional(key) else { return nil }
        return try Self.string(value, path: child(key))
    }

    public mutating func int64(_ key: String) throws(WireDecodingError) -> Int64 {
        try Self.int64(try required(key), path: child(key))
    }

    public mutating func optionalInt64(_ key: String) throws(WireDecodingError) -> Int64? {
        guard let value = optional(key) else { return nil }
        return try Self.int64(value, path: child(key))
    }

    public mutating func optionalDouble(_ key: String) throws(WireDecodingError) -> Double? {
        guard let value = optional(key) else { return nil }
        return try Self.double(value, path: child(key))
    }

    public mutating func int(_ key: String) throws(WireDecodingError) -> Int {
        Int(try int64(key))
    }

    public mutating func optionalInt(_ key: String) throws(WireDecodingError) -> Int? {
        try optionalInt64(key).map { Int($0) }
    }

    public mutating func optionalBool(_ key: String) throws(WireDecodingError) -> Bool? {
        guard let value = optional(key) else { return nil }
        guard case .bool(let flag) = value else { throw Self.wrongType(child(key)) }
        return flag
    }

    public mutating func array<T>(_ key: String, _ element: (WireJSON, String) throws(WireDecodingError) -> T)
        throws(WireDecodingError) -> [T] {
        _ = try required(key)
        return try optionalArray(key, element) ?? []
    }

    public mutating func optionalStrings(_ key: String) throws(WireDecodingError) -> [String]? {
        try optionalArray(key) { (value, path) throws(WireDecodingError) in try Self.string(value, path: path) }
    }

    public mutating func optionalStringMap(_ key: String) throws(WireDecodingError) -> [String: String]? {
        try optionalMap(key) { (value, path) throws(WireDecodingError) in try Self.string(value, path: path) }
    }

    public mutating func bool(_ key: String) throws(WireDecodingError) -> Bool {
        guard case .bool(let flag) = try required(key) else { throw Self.wrongType(child(key)) }
        return flag
    }

    public mutating func optionalArray<T>(_ key: String, _ element: (WireJSON, String) throws(WireDecodingError) -> T)
        throws(WireDecodingError) -> [T]? {
        guard let value = optional(key) else { return nil }
        guard case .array(let items) = value else { throw Self.wrongType(child(key)) }
        var result: [T] = []
        result.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            result.append(try element(item, child(key) + "[\(index)]"))
        }
        return result
    }

    public mutating func optionalMap<T>(_ key: String, _ element: (WireJSON, String) throws(WireDecodingError) -> T)
        throws(WireDecodingError) -> [String: T]? {
        guard let value = optional(key) else { return nil }
        guard case .object(let members) = value else { throw Self.wrongType(child(key)) }
        var result: [String: T] = [:]
        result.reserveCapacity(members.count)
        for member in members {
            let path = child(key) + "." + member.key
            guard result.updateValue(try element(member.value, path), forKey: member.key) == nil else {
                throw WireDecodingError(field: path, message: "'\(path)' appears more than once")
            }
        }
        return result
    }

    /// Refuses the first key the type did not read.
    public func finish() throws(WireDecodingError) {
        for index in members.indices where !used[index] {
            if case .null = members[index].value { continue }
            let field = child(members[index].key)
            throw WireDecodingError(field: field, message: "unknown field '\(field)'")
        }
    }

    public static func wrongType(_ path: String) -> WireDecodingError {
        WireDecodingError(field: path, message: "'\(path)' has the wrong type")
    }

    public static func string(_ value: WireJSON, path: String) throws(WireDecodingError) -> String {
        guard case .string(let text) = value else { throw wrongType(path) }
        return text
    }

    public static func int64(_ value: WireJSON, path: String) throws(WireDecodingError) -> Int64 {
        guard case .number(let number, let integer) = value else { throw wrongType(path) }
        if let integer { return integer }
        // 12.0 is an integer too; 12.5 or 1e30 is not, nor any past 2^53, where a double no
        // longer holds every integer: -9223372036854775809 would read as Int64.min, and
        // 9007199254740993.0 as 9007199254740992. (An integer written plainly within Int64
        // comes exact, above.)
        guard number.rounded() == number, abs(number) < 9_007_199_254_740_992, let exact = Int64(exactly: number) else {
            throw wrongType(path)
        }
        return exact
    }

    public static func double(_ value: WireJSON, path: String) throws(WireDecodingError) -> Double {
        guard case .number(let number, _) = value else { throw wrongType(path) }
        return number
    }
}
