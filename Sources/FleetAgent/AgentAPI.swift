public import FleetProtocol

/// The server's agent API (`/agent/v1`), as the agent calls it.
public final class AgentAPI {
    /// Why a call did not get what it asked for.
    public enum Failure: Error, CustomStringConvertible {
        /// No answer (network, TLS, timeout) or a server-side error: try again later.
        case unavailable(String, retryAfterSeconds: Int?)
        /// The device token was refused.
        case unauthorized(String)
        /// An operator deleted this device: the agent stops.
        case deleted
        /// The server refused the request itself; sending it again will not help.
        case rejected(status: Int, String)

        public var description: String {
            switch self {
            case .unavailable(let why, _): "server unavailable: \(why)"
            case .unauthorized(let why): "refused: \(why)"
            case .deleted: "this device was deleted by an operator"
            case .rejected(let status, let why): "rejected (\(status)): \(why)"
            }
        }
    }

    private let base: String
    private let client: HTTPClient
    public var deviceToken: String?

    public init(server: String, caFile: String? = nil, deviceToken: String? = nil) {
        base = server.hasSuffix("/") ? String(server.dropLast()) : server
        client = HTTPClient(caFile: caFile)
        self.deviceToken = deviceToken
    }

    public func enroll(_ request: EnrollmentRequest) throws(Failure) -> EnrollmentResponse {
        let response = try call("POST", "/agent/v1/enroll", body: request.wireJSON(), authenticated: false)
        return try decode(EnrollmentResponse.self, response)
    }

    public func heartbeat(_ body: [UInt8]) throws(Failure) -> HeartbeatAcknowledgement {
        let response = try call("POST", "/agent/v1/heartbeat", bytes: body)
        return try decode(HeartbeatAcknowledgement.self, response)
    }

    public enum Assignments {
        case changed(AssignmentList, entityTag: String?)
        /// Nothing new. With `askAgainIn`, the server did not hold the poll (it holds its limit
        /// of them): ask again after that many seconds, not at once.
        case unchanged(askAgainIn: Int?)
    }

    /// Long-polls: the server answers at once when the work differs from `entityTag`, else
    /// within `waitSeconds` — or at once, saying when to ask again, when it holds its limit of
    /// long-polls (`LongPollDeferral`).
    public func assignments(entityTag: String?, waitSeconds: Int) throws(Failure) -> Assignments {
        var headers = [Self.deferrable]
        if let entityTag { headers.append("If-None-Match: \(entityTag)") }
        let response = try call("GET", "/agent/v1/assignments", headers: headers, timeoutSeconds: waitSeconds + 15)
        if response.status == 304 { return .unchanged(askAgainIn: response.retryAfterSeconds) }
        return .changed(try decode(AssignmentList.self, response), entityTag: response.entityTag)
    }

    private static let deferrable = "\(LongPollDeferral.header): \(LongPollDeferral.value)"

    public func report(execution: String, _ body: [UInt8]) throws(Failure) -> ExecutionReportAcknowledgement {
        let response = try call("POST", "/agent/v1/executions/\(execution)/report", bytes: body)
        return try decode(ExecutionReportAcknowledgement.self, response)
    }

    /// Long-polls for remote commands: the server answers at once when there are some, else
    /// within `waitSeconds` with none — or at once with none and `askAgainIn` seconds, when it
    /// holds its limit of long-polls.
    public func commands(waitSeconds: Int) throws(Failure) -> (list: RemoteCommandList, askAgainIn: Int?) {
        let response = try call("GET", "/agent/v1/commands", headers: [Self.deferrable], timeoutSeconds: waitSeconds + 15)
        return (try decode(RemoteCommandList.self, response), response.retryAfterSeconds)
    }

    /// Sends a command's output from byte `offset`, as it is.
    public func commandOutput(id: String, offset: Int, _ bytes: [UInt8]) throws(Failure) -> RemoteCommandAcknowledgement {
        let response = try call("POST", "/agent/v1/commands/\(id)/output?offset=\(offset)", bytes: bytes,
                                contentType: "application/octet-stream")
        return try decode(RemoteCommandAcknowledgement.self, response)
    }

    public func commandResult(id: String, _ result: RemoteCommandResult) throws(Failure) -> RemoteCommandAcknowledgement {
        let response = try call("POST", "/agent/v1/commands/\(id)/result", bytes: Array(result.wireJSON().utf8))
        return try decode(RemoteCommandAcknowledgement.self, response)
    }

    private func call(_ method: String, _ path: String, body: String, authenticated: Bool = true) throws(Failure) -> HTTPClient.Response {
        try call(method, path, bytes: Array(body.utf8), authenticated: authenticated)
    }

    private func call(_ method: String, _ path: String, headers: [String] = [], bytes: [UInt8]? = nil, authenticated: Bool = true,
                      timeoutSeconds: Int = 30, contentType: String = "application/json") throws(Failure) -> HTTPClient.Response {
        var headers = headers
        if bytes != nil { headers.append("Content-Type: \(contentType)") }
        if authenticated, let deviceToken { headers.append("Authorization: Bearer \(deviceToken)") }
        let response: HTTPClient.Response
        do {
            response = try client.send(method, base + path, headers: headers, body: bytes, timeoutSeconds: timeoutSeconds)
        } catch {
            throw .unavailable(error.description, retryAfterSeconds: nil)
        }
        switch response.status {
        case 200..<300, 304:
            return response
        case 401:
            throw .unauthorized(Self.message(response))
        case 410:
            throw .deleted
        case 408, 425, 429, 500...:
            throw .unavailable("HTTP \(response.status): \(Self.message(response))", retryAfterSeconds: response.retryAfterSeconds)
        case 300..<400:
            // The server never redirects its agent API: a redirect is something in between (a
            // captive portal, a proxy not yet routed), the server not reached yet. A report is kept
            // and sent again, not dropped as refused. (A 4xx is a refusal, whoever sent it: one
            // kept forever would hold every report and heartbeat queued behind it.)
            throw .unavailable("HTTP \(response.status): a redirect, not the server's answer", retryAfterSeconds: nil)
        default:
            throw .rejected(status: response.status, Self.message(response))
        }
    }

    private func decode<T: WireDecodable>(_ type: T.Type, _ response: HTTPClient.Response) throws(Failure) -> T {
        do {
            return try T.decode(wire: response.body)
        } catch {
            throw .unavailable("the server's answer could not be read: \(error.message)", retryAfterSeconds: nil)
        }
    }

    private static func message(_ response: HTTPClient.Response) -> String {
        (try? ErrorResponse.decode(wire: response.body)).map(\.error.message) ?? "HTTP \(response.status)"
    }
}
