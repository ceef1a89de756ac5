@testable import FleetServer
import FleetStore
import FleetTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The OpenAPI document says what the server does: the same routes, the same text as the copy
/// kept in docs/.
struct OpenAPITests {
    static let packageRoot = TestPackage.root

    /// The server's router over `store`, without an application around it.
    static func router(_ store: MemoryFleetStore) async throws -> Router<FleetRequestContext> {
        let keyFile = NSTemporaryDirectory() + "flotilla-key-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        return FleetServer.buildRouter(configuration: ServerConfiguration(), store: store,
                                       tokens: try await DeviceTokens.load(keyFile: keyFile),
                                       directory: DeviceDirectory(store: store),
                                       ingest: HeartbeatIngest(store: store, batchSize: 1, interval: .milliseconds(1)),
                                       board: AssignmentBoard(), metrics: ServerMetrics())
    }

    @Test func theDocumentAndTheRoutesAgree() async throws {
        let router = try await Self.router(MemoryFleetStore())
        let all = Set(router.routes.map { route in
            let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(route.method.rawValue) /" + path.joined(separator: "/")
        })
        // The web console's pages and forms are HTML for browsers, not the API the document describes.
        let console: Set = ["GET /", "GET /sign-in", "POST /sign-in", "POST /sign-out", "GET /devices", "GET /devices/{id}",
                            "GET /rollouts/{app}/{group}", "POST /rollouts/{app}/{group}/abort", "POST /rollouts/{app}/{group}/approve",
                            "GET /audit", "GET /commits", "GET /events", "POST /reconcile", "POST /apps/{app}/suspend", "POST /apps/{app}/resume",
                            "GET /console/console.css", "GET /console/console.js"]
        #expect(all.isSuperset(of: console))
        let served = all.subtracting(console).subtracting(["GET /healthz", "GET /metrics", "GET /api/v1/openapi.json"])

        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        // A path item's keys are its operations, and the parameters they share.
        let documented = Set(paths.flatMap { path, operations in operations.keys.filter { $0 != "parameters" }.map { "\($0.uppercased()) \(path)" } })
        #expect(served == documented)
        #expect(served.count == 36)
    }

    /// Every operator route is behind the authentication middleware: none answers without a
    /// valid operator token, whatever its handler does.
    @Test func everyOperatorRouteRefusesARequestWithoutAValidToken() async throws {
        let store = MemoryFleetStore()
        let router = try await Self.router(store)
        let revoked = AccessTokens.make(kind: .operator, project: "acme")
        try await store.insertToken(revoked.record)
        try await store.revokeToken(id: revoked.record.id)
        let enrollment = AccessTokens.make(kind: .enrollment, project: "acme")
        try await store.insertToken(enrollment.record)
        let routes = router.routes.map { route in
            (route.method, "/" + route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "x" : String($0) }.joined(separator: "/"))
        }.filter { $0.1.hasPrefix("/api/v1/") && $0.1 != "/api/v1/openapi.json" }
        #expect(routes.count == 27)
        let app = Application(router: router)
        try await app.test(.router) { client in
            for (method, path) in routes {
                for header in [nil, "Bearer \(revoked.text)", "Bearer \(enrollment.text)", "Bearer flo_000000000000_00000000000000000000000000000000"] {
                    var headers: HTTPFields = [.contentType: "application/json"]
                    if let header { headers[.authorization] = header }
                    let response = try await client.execute(uri: path, method: method, headers: headers, body: ByteBuffer(string: "{}"))
                    #expect(response.status == .unauthorized, "\(method) \(path) with \(header ?? "no token")")
                }
            }
        }
    }

    @Test func theCopyInDocsIsTheServedDocument() throws {
        let copy = try String(contentsOfFile: Self.packageRoot + "/docs/openapi.json", encoding: .utf8)
        #expect(copy.trimmingCharacters(in: .whitespacesAndNewlines) == OpenAPIDocument.json.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

extension ServerTests {
    @Test func theOpenAPIDocumentIsServed() async throws {
        try await withServer { client, _ in
            let response = try await client.execute(uri: "/api/v1/openapi.json", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(String(buffer: response.body) == OpenAPIDocument.json)
        }
    }
}
