import ArgumentParser
import AsyncHTTPClient
import FleetCore
import FleetServer
import Foundation
import NIOCore
import NIOHTTP1

/// The operator API as the command line calls it, with the operator token from FLOTILLA_TOKEN.
struct ServerClient {
    let base: String
    let token: String

    /// The server of `--server` (or the environment, or the configuration file's context).
    init(server: String?, context: String? = nil) throws {
        try self.init(ClientSettings.resolve(server: server, context: context))
    }

    init(_ settings: ClientSettings) throws {
        let server = settings.server
        guard server.hasPrefix("http://") || server.hasPrefix("https://") else {
            throw ValidationError("--server must be an http(s) URL, e.g. http://127.0.0.1:8080")
        }
        guard let token = settings.token else {
            throw ValidationError("set FLOTILLA_TOKEN to an operator token (flotilla token create --operator), "
                                  + "or name one in a context of ~/.config/flotilla/config.yaml")
        }
        base = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.token = token
    }

    func get(_ path: String) async throws -> Data { try await send(.GET, path) }

    /// A GET's body and its response headers.
    func getWithHeaders(_ path: String) async throws -> (body: Data, headers: HTTPHeaders) { try await exchange(.GET, path) }

    func post(_ path: String, json: Data? = nil) async throws -> Data { try await send(.POST, path, json: json) }

    func put(_ path: String, json: Data) async throws -> Data { try await send(.PUT, path, json: json) }

    func delete(_ path: String) async throws -> Data { try await send(.DELETE, path) }

    /// An answer of the API as its wire type (dates in ISO 8601), or an error naming what is wrong.
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: body)
        } catch {
            throw CLIError("the server's answer could not be read: \(error)")
        }
    }

    /// One command, one request at a time: a server that cannot be reached is said at once (or
    /// after 10 s of trying to connect), not after the request's minute of retries.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(10)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    private func send(_ method: HTTPMethod, _ path: String, json: Data? = nil) async throws -> Data {
        try await exchange(method, path, json: json).body
    }

    private func exchange(_ method: HTTPMethod, _ path: String, json: Data? = nil) async throws -> (body: Data, headers: HTTPHeaders) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
        }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach \(base): \(error)")
        }
        let body = Data(try await response.body.collect(upTo: 256 << 20).readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            let message = ((try? JSONSerialization.jsonObject(with: body)) as? [String: [String: Any]])?["error"]?["message"] as? String
            throw CLIError("\(base)\(path): \(response.status.code) \(message ?? response.status.reasonPhrase)")
        }
        return (body, response.headers)
    }
}

/// `--server` and `--context`, shared by the commands that talk to a running server.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server's base URL (default: FLOTILLA_SERVER, the current context, or http://127.0.0.1:8080).")
    var server: String?

    @Option(help: "A context of ~/.config/flotilla/config.yaml: its server and token (default: current-context).")
    var context: String?

    func client() throws -> ServerClient { try ServerClient(server: server, context: context) }
}

extension String {
    /// Left-aligned in a column at least `width` characters wide, for the commands' tables.
    /// Counted in characters, never cut (NSString's padding counts UTF-16 units and would cut
    /// a name with an emoji in it).
    func column(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
