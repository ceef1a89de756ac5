import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird
import Synchronization

/// Request and response bodies as JSON, strictly: a size limit, and a 400 that names the field
/// for malformed JSON, a wrong type, a missing field or a field the API does not know.
enum JSONBody {
    static func decode<T: Codable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        let buffer = try await collect(request, limit: limit)
        return try decode(type, from: Data(buffer.readableBytesView))
    }

    /// The body, refused unless it is JSON by its Content-Type and at most `limit` bytes.
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        guard let type = request.headers[.contentType],
              type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == "application/json" else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the body as Content-Type: application/json")
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(limit) bytes")
        }
    }

    /// An optional body: nil when the request has none.
    static func decodeIfPresent<T: Codable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T? {
        // No body at all needs no Content-Type.
        guard request.headers[.contentType] != nil || (request.headers[.contentLength].flatMap { Int($0) } ?? 0) > 0 else { return nil }
        let buffer = try await collect(request, limit: limit)
        guard buffer.readableBytes > 0 else { return nil }
        return try decode(type, from: Data(buffer.readableBytesView))
    }

    /// The hot path: types that read themselves from a parsed document, refusing unknown keys
    /// as they go, with no Codable and no second pass.
    static func decode<T: Codable & WireDecodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        try decode(type, from: try await collect(request, limit: limit))
    }

    /// A body already collected, read as `decode(_:from:limit:)` reads it.
    static func decode<T: Codable & WireDecodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            return try T.decode(wire: buffer.readableBytesView)
        } catch let error where error.field.isEmpty {
            throw APIError(.badRequest, "malformed_json", error.message)
        } catch {
            throw APIError.invalid(error.message, field: error.field)
        }
    }

    static func response<T: Encodable & WireEncodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var writer = WireWriter()
        value.write(to: &writer)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }

    static func decode<T: Codable>(_ type: T.Type, from data: Data) throws -> T {
        // The same strict grammar as the agent API before Codable sees it: no byte-order mark,
        // nothing RFC 8259 refuses, and no key twice in one object (which JSONDecoder would let
        // through, keeping one of them).
        if data.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw APIError(.badRequest, "malformed_json", "the body starts with a byte-order mark; send UTF-8 JSON without one")
        }
        guard let parsed = WireJSON.parse(data) else { throw APIError(.badRequest, "malformed_json", "the body is not valid JSON") }
        if let repeated = Self.repeatedKey(in: parsed, path: "") {
            throw APIError.invalid("'\(repeated)' appears more than once", field: repeated)
        }
        let value: T
        do {
            value = try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw describe(error)
        }
        // What the type kept, encoded again: any key of the request it lacks is unknown. A shape of
        // keys found clean once is remembered, so the steady stream of heartbeats skips the check.
        let shape = "\(T.self)|" + parsed.shape()
        if KnownShapes.shared.contains(shape) { return value }
        if let kept = (try? JSONEncoder().encode(value)).flatMap({ WireJSON.parse($0) }),
           let unknown = parsed.firstKey(missingFrom: kept, path: "") {
            throw APIError.invalid("unknown field '\(unknown)'", field: unknown)
        }
        KnownShapes.shared.insert(shape)
        return value
    }

    /// A deployment and its executions, the same JSON `response` would write: the executions
    /// (one per device, thousands in a fleet's deployment) by the wire writer, not through
    /// JSONEncoder's tree of every one of them.
    static func response(_ detail: DeploymentDetail, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: try bytes(detail))))
    }

    static func bytes(_ detail: DeploymentDetail) throws -> [UInt8] {
        var writer = WireWriter()
        writer.beginObject()
        writer.key("deployment")
        writer.json(try encoder().encode(detail.deployment))
        writer.key("executions")
        writer.beginArray()
        for execution in detail.executions { execution.write(to: &writer, dateText: Timestamp.format) }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder().encode(value))))
    }

    /// How the operator API writes JSON: sorted keys, dates in ISO 8601.
    private static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// The path of the first key that appears twice in one object.
    static func repeatedKey(in value: WireJSON, path: String) -> String? {
        switch value {
        case .object(let members):
            func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
            if let repeated = WireObject.repeatedKey(members) { return child(repeated) }
            for member in members {
                if let repeated = repeatedKey(in: member.value, path: child(member.key)) { return repeated }
            }
            return nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let repeated = repeatedKey(in: item, path: "\(path)[\(index)]") { return repeated }
            }
            return nil
        default:
            return nil
        }
    }

    private static func describe(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            let text = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch error {
        case .typeMismatch(_, let context):
            let field = path(context.codingPath)
            return .invalid("'\(field)' has the wrong type", field: field.isEmpty ? nil : field)
        case .valueNotFound(_, let context):
            let field = path(context.codingPath)
            return .invalid("'\(field)' must not be null", field: field)
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .invalid("'\(field)' is required", field: field)
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return APIError(.badRequest, "malformed_json", "the body is not valid JSON")
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            return .invalid("'\(field)' has an invalid value", field: field)
        @unknown default:
            return APIError(.badRequest, "malformed_json", "the body is not valid JSON")
        }
    }
}

/// Key shapes already checked: a bounded set, forgotten whole when full. A shape longer than
/// `longest` (a map of thousands of keys) is checked every time and not kept: the set holds at
/// most `4,096 × longest` bytes, not thousands of copies of the largest bodies clients sent.
final class KnownShapes: Sendable {
    static let shared = KnownShapes()
    static let longest = 2_048
    private let shapes = Mutex(Set<String>())

    func contains(_ shape: String) -> Bool { shapes.withLock { $0.contains(shape) } }

    func insert(_ shape: String) {
        guard shape.utf8.count <= Self.longest else { return }
        shapes.withLock { shapes in
            if shapes.count >= 4_096 { shapes.removeAll() }
            shapes.insert(shape)
        }
    }
}

/// Comparing the keys a client sent with the keys a type knows, on the same parsed document the
/// agent API reads: one JSON reader for both APIs.
extension WireJSON {
    /// The keys of every object, nested, without values: equal shapes have the same unknown keys.
    /// Each key is written with its length first, so no key can spell out the shape of others.
    func shape() -> String {
        switch self {
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.map { "\($0.key.utf8.count)#\($0.key):" + $0.value.shape() }.joined(separator: ",") + "}"
        case .array(let items):
            return "[" + items.map { $0.shape() }.joined(separator: ",") + "]"
        case .null:
            return "n"
        default:
            return "s"
        }
    }

    /// The path of the first key present here but not in `other` (nulls do not count).
    func firstKey(missingFrom other: WireJSON, path: String) -> String? {
        switch (self, other) {
        case (.object(let mine), .object(let theirs)):
            // By key: a map of a hundred thousand entries is one pass, not one scan per key.
            let known = Dictionary(theirs.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            for member in mine.sorted(by: { $0.key < $1.key }) {
                let child = path.isEmpty ? member.key : "\(path).\(member.key)"
                guard let counterpart = known[member.key] else {
                    if member.value == .null { continue }
                    return child
                }
                if let found = member.value.firstKey(missingFrom: counterpart, path: child) { return found }
            }
            return nil
        case (.array(let mine), .array(let theirs)):
            for (index, item) in zip(mine.indices, mine) where index < theirs.count {
                if let found = item.firstKey(missingFrom: theirs[index], path: "\(path)[\(index)]") { return found }
            }
            return nil
        default:
            return nil
        }
    }
}
