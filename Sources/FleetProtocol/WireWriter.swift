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
    /// A value already written as JSON (by another encoder), as it is.
    public mutating func json(_ value: some Sequence<UInt8>) { separate(); bytes.append(contentsOf: value); needsComma = true }
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

    private mutating func writeString(_ value: String) { Self.quote(value, into: &bytes) }

    /// `value` as a JSON string, quoted and escaped: the one escaping routine of every JSON the
    /// project writes by hand. A NUL is written as U+FFFD: the reader refuses `\u0000` (no store
    /// keeps one), and what is written here must read back — a step that printed a NUL once left
    /// an agent's journal unreadable, and the execution started again from its first step.
    public static func quote(_ value: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case 0: bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
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
