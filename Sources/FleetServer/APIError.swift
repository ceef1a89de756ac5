import HTTPTypes
import FleetProtocol
public import Hummingbird
import Foundation

/// An error the API returns as JSON: `{"error": {"code", "message", "field"}}` with a 4xx or
/// 5xx status. Messages never contain secrets.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    /// The methods a path takes, for a 405.
    var allow: [String] = []
    /// Seconds to wait before asking again, for a 429 or 503.
    var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(ErrorResponse(code: code, message: message, field: field))
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.xContentTypeOptions] = "nosniff"
        if !allow.isEmpty { headers[.allow] = allow.joined(separator: ", ") }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func unauthorized(_ message: String) -> APIError { APIError(.unauthorized, "unauthorized", message) }
    static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "forbidden", message) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }
    static func invalid(_ message: String, field: String?) -> APIError { APIError(.badRequest, "invalid_field", message, field: field) }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}

/// A path parameter as the handlers use it: percent-decoded (`d%2D1` is `d-1`) and checked like
/// a body field — 1 to 128 bytes, no control characters, no '/' once decoded.
enum PathParameter {
    static func require(_ context: FleetRequestContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError.invalid("path parameter '\(name)' is not valid percent-encoding", field: name)
        }
        guard !decoded.isEmpty, decoded.utf8.count <= 128, !decoded.contains("/"),
              !decoded.unicodeScalars.contains(where: StepRules.isControl) else {
            throw APIError.invalid("path parameter '\(name)' must be 1 to 128 bytes without '/' or control characters", field: name)
        }
        return decoded
    }
}
