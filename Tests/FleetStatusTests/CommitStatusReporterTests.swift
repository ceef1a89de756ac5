import FleetStatus
import FleetCore
import Foundation
import Hummingbird
import Synchronization
import Testing

/// Each forge's reporter against a local HTTP server that records what arrives, checked against
/// that forge's documented commit-status API.
@Suite(.serialized)
struct CommitStatusReporterTests {
    struct Received: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: [String: String]
    }

    final class Recorder: Sendable {
        let received = Mutex<[Received]>([])
        /// Status to answer with, and an optional Retry-After.
        let answer = Mutex<(Int, String?)>((201, nil))
    }

    final class FakeForge: Sendable {
        let recorder = Recorder()
        let port: Int
        let task: Task<Void, any Error>

        init() async throws {
            let router = Router()
            let recorder = recorder
            router.post("**") { request, _ -> Response in
                let buffer = try await request.body.collect(upTo: 65_536)
                let body = (try? JSONDecoder().decode([String: String].self, from: Data(buffer.readableBytesView))) ?? [:]
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                recorder.received.withLock { $0.append(Received(method: "\(request.method)", path: request.uri.path, headers: headers, body: body)) }
                let (status, retryAfter) = recorder.answer.withLock { $0 }
                // A hostile or broken forge answers with the request's headers, token and all.
                let echo = headers.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "\n") + "\u{1B}[2J"
                var response = Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: status >= 500 ? echo : "")))
                if let retryAfter { response.headers[.retryAfter] = retryAfter }
                return response
            }
            (port, task) = await LocalServer.start(router)
        }

        var url: String { "http://127.0.0.1:\(port)" }

        deinit { task.cancel() }
    }

    static let sha = String(repeating: "ab", count: 20)

    /// One forge's contract: where a status goes, how it authenticates, what the body says, and
    /// where the report it links to is. `{forge}` stands for the fake forge's address.
    struct ForgeCase: Sendable, CustomTestStringConvertible {
        var forge: StatusSettings.Forge
        var apiPath: String
        var state: CommitStatusReporter.State
        var path: String
        /// Headers that must be present with these values; nil values must be absent.
        var headers: [String: String?]
        var body: [String: String]
        var report: String
        var testDescription: String { forge.rawValue }
    }

    static let forgeCases: [ForgeCase] = [
        ForgeCase(forge: .github, apiPath: "", state: .pending, path: "/repos/acme/fleet/statuses/\(sha)",
                  headers: ["authorization": "Bearer t0ken", "accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28",
                            "user-agent": "flotilla"],
                  body: ["state": "pending", "context": "flotilla/thermostat", "description": "a description"],
                  report: "{forge}/acme/fleet/blob/flotilla/status/STATUS.md"),
        // The project is its URL-encoded path; GitLab calls the context "name" and failure "failed".
        ForgeCase(forge: .gitlab, apiPath: "/api/v4", state: .failure, path: "/api/v4/projects/acme%2Ffleet/statuses/\(sha)",
                  headers: ["private-token": "t0ken", "authorization": nil],
                  body: ["state": "failed", "name": "flotilla/thermostat", "description": "a description"],
                  report: "{forge}/acme/fleet/-/blob/flotilla/status/STATUS.md"),
        ForgeCase(forge: .gitea, apiPath: "/api/v1", state: .success, path: "/api/v1/repos/acme/fleet/statuses/\(sha)",
                  headers: ["authorization": "token t0ken"],
                  body: ["state": "success", "context": "flotilla/thermostat", "description": "a description"],
                  report: "{forge}/acme/fleet/src/branch/flotilla/status/STATUS.md"),
    ]

    @Test(arguments: forgeCases)
    func eachForgeGetsItsOwnRequest(_ forgeCase: ForgeCase) async throws {
        let forge = try await FakeForge()
        let reporter = CommitStatusReporter(settings: .init(forge: forgeCase.forge, repository: "acme/fleet", apiURL: forge.url + forgeCase.apiPath,
                                                            token: "t0ken"))
        #expect(try await reporter.post(commit: Self.sha, context: "flotilla/thermostat", state: forgeCase.state, description: "a description"))
        let request = try #require(forge.recorder.received.withLock { $0.first })
        #expect(request.method == "POST")
        #expect(request.path == forgeCase.path)
        for (name, value) in forgeCase.headers { #expect(request.headers[name] == value, "\(name)") }
        #expect(request.body == forgeCase.body)
        #expect(await reporter.reportURL(statusBranch: "flotilla/status") == forgeCase.report.replacingOccurrences(of: "{forge}", with: forge.url))
    }

    /// Without an API URL the public forges are meant; an enterprise API URL links to its host.
    @Test(arguments: [
        (StatusSettings.Forge.github, nil, "https://github.com/acme/fleet/blob/flotilla/status/STATUS.md"),
        (.github, "https://git.acme.example/api/v3", "https://git.acme.example/acme/fleet/blob/flotilla/status/STATUS.md"),
        (.gitlab, nil, "https://gitlab.com/acme/fleet/-/blob/flotilla/status/STATUS.md"),
    ] as [(StatusSettings.Forge, String?, String)])
    func reportLinks(forge: StatusSettings.Forge, apiURL: String?, expected: String) async {
        let reporter = CommitStatusReporter(settings: .init(forge: forge, repository: "acme/fleet", apiURL: apiURL, token: "t"))
        #expect(await reporter.reportURL(statusBranch: "flotilla/status") == expected)
    }

    /// The console links the commit in force to its page on the forge.
    @Test func commitLinks() async {
        let table: [(StatusSettings.Forge, String?, String?)] = [
            (.github, nil, "https://github.com/acme/fleet/commit/\(Self.sha)"),
            (.github, "https://git.acme.example/api/v3", "https://git.acme.example/acme/fleet/commit/\(Self.sha)"),
            (.gitlab, nil, "https://gitlab.com/acme/fleet/-/commit/\(Self.sha)"),
            (.gitea, "https://gitea.acme.example/api/v1", "https://gitea.acme.example/acme/fleet/commit/\(Self.sha)"),
            (.none, nil, nil),
        ]
        for (forge, apiURL, expected) in table {
            let reporter = CommitStatusReporter(settings: .init(forge: forge, repository: "acme/fleet", apiURL: apiURL, token: "t"))
            #expect(await reporter.commitURL(Self.sha) == expected, "\(forge)")
        }
        // A GitLab project named by its id has no web page by that id.
        let byID = CommitStatusReporter(settings: .init(forge: .gitlab, repository: "12345", apiURL: nil, token: "t"))
        #expect(await byID.commitURL(Self.sha) == nil)
    }

    @Test func postsOnlyOnChangeShortensAndBacksOffWhenLimited() async throws {
        let forge = try await FakeForge()
        let reporter = CommitStatusReporter(settings: .init(forge: .github, repository: "acme/fleet", apiURL: forge.url, token: "t"))
        #expect(try await reporter.post(commit: Self.sha, context: "c", state: .pending, description: "1/2", targetURL: "https://x/STATUS.md"))
        #expect(forge.recorder.received.withLock { $0.last?.body["target_url"] } == "https://x/STATUS.md")
        #expect(try await reporter.post(commit: Self.sha, context: "c", state: .pending, description: "1/2") == false)
        #expect(try await reporter.post(commit: Self.sha, context: "c", state: .success, description: String(repeating: "x", count: 300)))
        let long = try #require(forge.recorder.received.withLock { $0.last?.body["description"] })
        #expect(long.count == 140 && long.hasSuffix("…"))

        forge.recorder.answer.withLock { $0 = (429, "2") }
        await #expect(throws: CommitStatusReporter.Failure.self) {
            try await reporter.post(commit: Self.sha, context: "c", state: .failure, description: "now")
        }
        forge.recorder.answer.withLock { $0 = (201, nil) }
        // Within Retry-After nothing is sent; after it, the post goes through.
        #expect(try await reporter.post(commit: Self.sha, context: "c", state: .failure, description: "now") == false)
        #expect(forge.recorder.received.withLock { $0.count } == 3)
        try await Task.sleep(for: .seconds(2.2))
        #expect(try await reporter.post(commit: Self.sha, context: "c", state: .failure, description: "now"))
        #expect(forge.recorder.received.withLock { $0.count } == 4)
    }

    @Test func aForgeEchoingTheTokenNeverGetsItIntoTheError() async throws {
        let forge = try await FakeForge()
        forge.recorder.answer.withLock { $0 = (502, nil) }
        let reporter = CommitStatusReporter(settings: .init(forge: .gitea, repository: "acme/fleet", apiURL: forge.url, token: "s3cret-forge-token"))
        let error = await #expect(throws: CommitStatusReporter.Failure.self) {
            try await reporter.post(commit: Self.sha, context: "c", state: .pending, description: "x")
        }
        let text = error?.description ?? ""
        #expect(text.contains("gitea answered 502"))
        #expect(text.contains("[token]"))
        #expect(!text.contains("s3cret-forge-token"))
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B })
    }

    /// fleet.yaml cannot send the forge token anywhere the operator did not configure.
    @Test(arguments: [
        // forge, operator URL, repository URL, allow http, expected root
        (StatusSettings.Forge.github, nil, nil, false, "https://api.github.com"),
        (.github, nil, "https://evil.example/api", false, "https://api.github.com"),
        (.github, nil, "https://api.github.com/", false, "https://api.github.com"),
        (.github, "https://git.acme.example/api/v3", "https://git.acme.example/api/v3", false, "https://git.acme.example/api/v3"),
        (.github, "https://git.acme.example/api/v3", "https://git.acme.example:8443/api/v3", false, "https://git.acme.example/api/v3"),
        (.github, "https://git.acme.example/api/v3", "http://git.acme.example/api/v3", false, "https://git.acme.example/api/v3"),
        (.gitlab, "https://gitlab.acme.example", "https://gitlab.acme.example/api/v4", false, "https://gitlab.acme.example/api/v4"),
        (.gitea, nil, "https://gitea.evil.example/api/v1", false, nil),
        (.gitea, "http://127.0.0.1:3000/api/v1", nil, false, nil),
        (.gitea, "http://127.0.0.1:3000/api/v1", nil, true, "http://127.0.0.1:3000/api/v1"),
        (.none, "https://x.example", nil, false, nil),
    ] as [(StatusSettings.Forge, String?, String?, Bool, String?)])
    func theForgeTokenGoesOnlyWhereTheOperatorSaid(_ forge: StatusSettings.Forge, _ operatorURL: String?, _ repositoryURL: String?,
                                                   _ allowHTTP: Bool, _ expected: String?) {
        let resolved = ForgeEndpoint.resolve(forge: forge, operatorURL: operatorURL, repositoryURL: repositoryURL, allowPlainHTTP: allowHTTP)
        #expect(resolved.root == expected)
        if repositoryURL?.contains("evil") == true, forge != .gitea {
            #expect(resolved.warning?.contains("is not on the configured forge host") == true)
        }
        if expected == nil, forge != .none { #expect(resolved.warning != nil) }
    }
}

/// A Hummingbird server on a loopback port the system chose, for a test's fake receiver.
enum LocalServer {
    /// Starts `router` on port 0 and returns the port it got once it listens, and its task.
    static func start(_ router: Router<BasicRequestContext>) async -> (port: Int, task: Task<Void, any Error>) {
        let (ports, listening) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in
                                  listening.yield(channel.localAddress?.port ?? 0)
                                  listening.finish()
                              })
        let task = Task { try await app.runService() }
        var bound = 0
        for await port in ports { bound = port }
        return (bound, task)
    }
}
