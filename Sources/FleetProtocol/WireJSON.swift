/// A small JSON reader and writer for the hot paths of the wire protocol (heartbeats), and for
/// the agent, which links no Foundation. Reading is strict: RFC 8259 syntax, valid UTF-8, a
/// nesting limit; decoding through `WireObject` names the field at fault and refuses keys a type
/// does not know.
public enum WireJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number, with its exact value when it was written as an integer that fits 64 bits.
    case number(Double, integer: Int64?)
    case string(String)
    case array([WireJSON])
    case object([Member])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: WireJSON

        public init(_ key: String, _ value: WireJSON) {
            self.key = key
            self.value = value
        }
    }

    /// Parses a whole document; nil when it is not valid JSON.
    public static func parse(_ bytes: some Collection<UInt8>) -> WireJSON? {
        let result: WireJSON?? = bytes.withContiguousStorageIfAvailable { buffer in
            var parser = WireParser(buffer)
            return parser.document()
        }
        if let result { return result }
        let copy = Array(bytes)
        return copy.withUnsafeBufferPointer { buffer in
            var parser = WireParser(buffer)
            return parser.document()
        }
    }

    /// The members of an object, for decoding; nil for anything else.
    public var members: [Member]? {
        if case .object(let members) = self { return members }
        return nil
    }
}

/// Why a document could not be decoded into a type: the JSON path of the field, and a sentence.
public struct WireDecodingError: Error, Sendable, Equatable {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
}

/// Types read straight from a parsed document, without Codable's generic machinery.
public protocol WireDecodable {
    init(wire value: WireJSON, path: String) throws(WireDecodingError)
}

/// Types written straight to JSON text.
public protocol WireEncodable {
    func write(to writer: inout WireWriter)
}

extension WireDecodable {
    /// Parses and decodes `bytes`; `nil` field in the error means the text is not JSON at all.
    public static func decode(wire bytes: some Collection<UInt8>) throws(WireDecodingError) -> Self {
        guard let value = WireJSON.parse(bytes) else {
            throw WireDecodingError(field: "", message: "the body is not valid JSON")
        }
        return try Self(wire: value, path: "")
    }
}

extension WireEncodable {
    /// The value as compact JSON text.
    public func wireJSON() -> String {
        var writer = WireWriter()
        write(to: &writer)
        return writer.text
    }
}

/// A map with string keys is written with its keys sorted.
extension Dictionary: WireEncodable where Key == String, Value: WireEncodable {
    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        for key in keys.sorted() {
            writer.key(key)
            self[key]!.write(to: &writer)
        }
        writer.endObject()
    }
}

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
        // 12.0 is an integer too; 12.5 or 1e30 is not.
        guard number.rounded() == number, let exact = Int64(exactly: number) else { throw wrongType(path) }
        return exact
    }

    public static func double(_ value: WireJSON, path: String) throws(WireDecodingError) -> Double {
        guard case .number(let number, _) = value else { throw wrongType(path) }
        return number
    }
}

/// Compact JSON text, written field by field.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init() { bytes.reserveCapacity(256) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    /// Writes `"key":`; the value follows.
    public mutating func key(_ key: String) {
        separate()
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) { separate(); writeString(value); needsComma = true }
    public mutating func bool(_ value: Bool) { separate(); bytes.append(contentsOf: (value ? "true" : "false").utf8); needsComma = true }
    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8); needsComma = true }
    public mutating func int(_ value: Int64) { separate(); bytes.append(contentsOf: String(value).utf8); needsComma = true }

    public mutating func double(_ value: Double) {
        separate()
        if !value.isFinite {
            bytes.append(contentsOf: "null".utf8)
        } else if value.rounded() == value, abs(value) < 1e15 {
            bytes.append(contentsOf: String(Int64(value)).utf8)
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
        needsComma = true
    }

    public mutating func field(_ name: String, _ value: String?) { if let value { key(name); string(value) } }
    public mutating func field(_ name: String, _ value: Int64?) { if let value { key(name); int(value) } }
    public mutating func field(_ name: String, _ value: Double?) { if let value { key(name); double(value) } }
    public mutating func field(_ name: String, _ value: Bool?) { if let value { key(name); bool(value) } }

    public mutating func field(_ name: String, _ value: (some WireEncodable)?) {
        if let value { key(name); value.write(to: &self) }
    }

    /// Keys sorted, so equal maps give equal text.
    public mutating func field<T: WireEncodable>(_ name: String, _ value: [String: T]?) {
        guard let value else { return }
        key(name)
        beginObject()
        for entryKey in value.keys.sorted() { key(entryKey); value[entryKey]!.write(to: &self) }
        endObject()
    }

    public mutating func field(_ name: String, _ value: [String: String]?) {
        guard let value else { return }
        key(name)
        beginObject()
        for entryKey in value.keys.sorted() { key(entryKey); string(value[entryKey]!) }
        endObject()
    }

    public mutating func field<T: WireEncodable>(_ name: String, _ value: [T]?) {
        guard let value else { return }
        key(name)
        beginArray()
        for item in value { item.write(to: &self) }
        endArray()
    }

    public mutating func field(_ name: String, _ value: Int?) { if let value { key(name); int(Int64(value)) } }

    public mutating func field(_ name: String, _ value: [String]?) {
        guard let value else { return }
        key(name)
        beginArray()
        for item in value { string(item) }
        endArray()
    }

    public mutating func field(_ name: String, _ value: [Double]?) {
        guard let value else { return }
        key(name)
        beginArray()
        for item in value { double(item) }
        endArray()
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func writeString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Recursive descent over bytes. Nesting deeper than 64 levels is refused.
struct WireParser {
    private let input: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0
    static let maximumDepth = 64

    init(_ input: UnsafeBufferPointer<UInt8>) { self.input = input }

    mutating func document() -> WireJSON? {
        guard let value = value() else { return nil }
        skipSpace()
        return position == input.count ? value : nil
    }

    private mutating func skipSpace() {
        while position < input.count {
            switch input[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func value() -> WireJSON? {
        skipSpace()
        guard position < input.count else { return nil }
        switch input[position] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(WireJSON.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func literal(_ text: StaticString, _ result: WireJSON) -> WireJSON? {
        let count = text.utf8CodeUnitCount
        guard input.count - position >= count else { return nil }
        for index in 0..<count where input[position + index] != text.utf8Start[index] { return nil }
        position += count
        return result
    }

    private mutating func object() -> WireJSON? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return nil }
        position += 1
        var members: [WireJSON.Member] = []
        skipSpace()
        if position < input.count, input[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard position < input.count, input[position] == UInt8(ascii: "\""), let key = string() else { return nil }
            skipSpace()
            guard position < input.count, input[position] == UInt8(ascii: ":") else { return nil }
            position += 1
            guard let value = value() else { return nil }
            members.append(WireJSON.Member(key, value))
            skipSpace()
            guard position < input.count else { return nil }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            return nil
        }
    }

    private mutating func array() -> WireJSON? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return nil }
        position += 1
        var items: [WireJSON] = []
        skipSpace()
        if position < input.count, input[position] == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            guard let item = value() else { return nil }
            items.append(item)
            skipSpace()
            guard position < input.count else { return nil }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            return nil
        }
    }

    private mutating func string() -> String? {
        position += 1
        let start = position
        // The common case: no escapes, so the bytes are the string.
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") {
                let text = String(validating: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
            position += 1
        }
        var bytes = Array(input[start..<position])
        while position < input.count {
            let byte = input[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: bytes, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < input.count else { return nil }
                let escape = input[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(escape)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard input.count - position >= 2, input[position] == UInt8(ascii: "\\"),
                              input[position + 1] == UInt8(ascii: "u") else { return nil }
                        position += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    bytes.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    return nil
                }
            default:
                if byte < 0x20 { return nil }
                bytes.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard input.count - position >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = input[position]
            position += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private mutating func number() -> WireJSON? {
        let start = position
        var isInteger = true
        if position < input.count, input[position] == UInt8(ascii: "-") { position += 1 }
        guard position < input.count, isDigit(input[position]) else { return nil }
        if input[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < input.count, isDigit(input[position]) else { return nil }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") { position += 1 }
            guard position < input.count, isDigit(input[position]) else { return nil }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
        if isInteger, let integer = Int64(text) { return .number(Double(integer), integer: integer) }
        guard let double = Double(text), double.isFinite else { return nil }
        return .number(double, integer: nil)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
