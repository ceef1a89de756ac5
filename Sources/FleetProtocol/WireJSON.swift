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
