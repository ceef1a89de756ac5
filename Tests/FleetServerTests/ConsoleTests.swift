import FleetCore
import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// A controller whose status a test sets, reconciling project acme with app thermostat.
actor ConsoleProject: ControllerHandle {
    var report: FleetStatusReport?
    var fleetInventory: FleetInventory?
    private(set) var suspended: [String: Bool] = [:]
    private(set) var polls = 0
    private(set) var reads = 0

    init(_ report: FleetStatusReport?) { self.report = report }

    func set(_ report: FleetStatusReport?) { self.report = report }
    func set(_ inventory: FleetInventory) { fleetInventory = inventory }
    func inventory() -> FleetInventory? { fleetInventory }
    func statusJSON() -> [UInt8]? {
        reads += 1
        // Sorted, as the controller's status.json is: the same report reads as the same bytes.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return report.map { Array(try! encoder.encode($0)) }
    }
    func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { ("2.5.0", "d-250", true) }
    func requestPoll() { polls += 1 }
    func setSuspended(_ suspended: Bool, app: String) { self.suspended[app] = suspended }
    nonisolated var watchedBranch: String { "main" }
    func metrics() -> ControllerMetrics { ControllerMetrics() }
    func executionEnded() {}
    func scope() -> (project: String, apps: [String])? { report == nil ? nil : ("acme", ["thermostat"]) }
    nonisolated var assignedProject: String? { "acme" }
}

/// The console's pages, sessions and actions through the real router.
struct ConsoleTests {
    let server = ServerTests()

    static func report(converged: Int = 3, updating: Int = 1, failed: Int = 0, offline: Int = 1) -> FleetStatusReport {
        var report = FleetStatusReport(commit: "0123456789abcdef", head: "0123456789abcdef", headErrors: [], apps: [
            .init(name: "thermostat", targets: [
                .init(group: "canary", version: "2.5.0", devices: converged + updating + failed + offline, converged: converged,
                      updating: updating, failed: failed, offline: offline, state: updating > 0 ? "updating" : "converged"),
            ], drifted: []),
        ])
        report.commitSubject = "thermostat <2.5.0> for the canary"
        report.commitAuthor = "Ada"
        return report
    }

    /// Signs in with `token`; the session cookie to send back.
    func signIn(_ client: some TestClientProtocol, token: String, headers: HTTPFields = [:]) async throws -> (cookie: String, response: TestResponse) {
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        let response = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                body: ByteBuffer(string: "token=\(URLText.component(token))&next=%2Fdevices"))
        let setCookie = response.headers[.setCookie] ?? ""
        let value = setCookie.split(separator: ";").first.map(String.init) ?? ""
        return (value, response)
    }

    static func csrf(in page: String) -> String? {
        guard let range = page.range(of: "name=\"csrf\" value=\"") else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    func get(_ client: some TestClientProtocol, _ uri: String, cookie: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie])
    }

    func post(_ client: some TestClientProtocol, _ uri: String, cookie: String, form: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"],
                                 body: ByteBuffer(string: form))
    }

    @Test func aPageWithoutASessionSendsToSignInAndComesBack() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let page = try await client.execute(uri: "/devices?selector=site%3Dberlin", method: .get)
            #expect(page.status == .seeOther)
            #expect(page.headers[.location] == "/sign-in?next=%2Fdevices%3Fselector%3Dsite%253Dberlin")
            let form = try await client.execute(uri: "/sign-in", method: .get)
            #expect(form.status == .ok)
            #expect(String(buffer: form.body).contains("name=\"token\""))

            let wrong = try await signIn(client, token: "flo_000000000000_00000000000000000000000000000000")
            #expect(wrong.response.status == .unauthorized)
            #expect(String(buffer: wrong.response.body).contains("unknown operator token"))
            #expect(wrong.response.headers[.setCookie] == nil)
            // An enrollment token does not sign in.
            #expect(try await signIn(client, token: tokens.enrollment).response.status == .unauthorized)

            let good = try await signIn(client, token: tokens.operator)
            #expect(good.response.status == .seeOther)
            #expect(good.response.headers[.location] == "/devices")
            let cookie = try #require(good.response.headers[.setCookie])
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
            #expect(!cookie.contains("Secure"), "a plain HTTP server cannot set a Secure cookie the browser would send back")
            #expect(!cookie.contains(tokens.operator), "the cookie holds a session, never the operator's token")
            #expect(try await get(client, "/devices", cookie: good.cookie).status == .ok)

            let behindTLS = try await signIn(client, token: tokens.operator, headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(behindTLS.response.headers[.setCookie]?.hasSuffix("; Secure") == true)
        }
    }

    @Test func anotherSitesPageCannotSignInOrPostAForm() async throws {
        let project = ConsoleProject(Self.report())
        try await server.withServer(controller: project) { client, tokens in
            let crossSite = try await signIn(client, token: tokens.otherOperator, headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(crossSite.response.status == .forbidden)
            #expect(crossSite.response.headers[.setCookie] == nil, "another site's form signed the browser in to its project")
            let foreignOrigin = try await signIn(client, token: tokens.otherOperator, headers: [HTTPField.Name("Origin")!: "https://evil.example"])
            #expect(foreignOrigin.response.status == .forbidden)
            let sameSite = try await signIn(client, token: tokens.operator, headers: [HTTPField.Name("Sec-Fetch-Site")!: "same-origin"])
            #expect(sameSite.response.status == .seeOther)

            let csrf = try #require(Self.csrf(in: String(buffer: try await get(client, "/", cookie: sameSite.cookie).body)))
            let forged = try await client.execute(uri: "/apps/thermostat/suspend", method: .post,
                                                  headers: [.cookie: sameSite.cookie, .contentType: "application/x-www-form-urlencoded",
                                                            HTTPField.Name("Sec-Fetch-Site")!: "same-site"],
                                                  body: ByteBuffer(string: "csrf=\(csrf)"))
            #expect(forged.status == .forbidden)
            #expect(await project.suspended.isEmpty)
        }
    }

    /// One token signing in from ever more browsers (a dashboard's, in a loop) holds at most 16
    /// sessions: the seventeenth ends the oldest, and says so in the audit log.
    @Test func oneTokenHoldsABoundedNumberOfSessions() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            var cookies: [String] = []
            for _ in 0..<(ConsoleSession.sessionsPerToken + 1) {
                let signedIn = try await signIn(client, token: tokens.operator)
                #expect(signedIn.response.status == .seeOther)
                cookies.append(signedIn.cookie)
            }
            #expect(try await get(client, "/devices", cookie: cookies[0]).status == .seeOther, "the oldest session still works")
            for cookie in cookies.dropFirst() { #expect(try await get(client, "/devices", cookie: cookie).status == .ok) }
            let live = try await server.store.tokens(project: "acme").filter { $0.kind == .session && !$0.revoked }
            #expect(live.count == ConsoleSession.sessionsPerToken)
            #expect(try await server.store.audit(project: "acme", limit: 100).filter { $0.action == "console.session.ended" }.count == 1)
        }
    }

    /// Each sign-in stores a session and writes the audit log: a token signing in in a loop is
    /// held to its allowance, and a wrong secret naming the token uses none of it.
    @Test func aTokenSignsInAtMostItsAllowance() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let wrong = String(tokens.operator.dropLast()) + (tokens.operator.hasSuffix("a") ? "b" : "a")
            for _ in 0..<40 { #expect(try await signIn(client, token: wrong).response.status == .unauthorized) }
            let burst = Int(DeviceRequestAllowance.signIns.burst)
            for _ in 0..<burst { #expect(try await signIn(client, token: tokens.operator).response.status == .seeOther) }
            let refused = try await signIn(client, token: tokens.operator)
            #expect(refused.response.status == .tooManyRequests)
            #expect(refused.cookie.isEmpty)
            #expect((1...60).contains(Int(refused.response.headers[.retryAfter] ?? "") ?? 0))
            #expect(String(buffer: refused.response.body).contains("more than its allowance of sign-ins to the console"))
            // Nothing of the refused one is kept; another token signs in as before.
            #expect(try await server.store.tokens(project: "acme").filter { $0.kind == .session }.count == burst)
            #expect(try await server.store.audit(project: "acme", limit: 1_000).filter { $0.action == "console.sign-in" }.count == burst)
            #expect(try await signIn(client, token: tokens.otherOperator).response.status == .seeOther)
        }
    }

    @Test func signingInAgainEndsTheSessionTheBrowserHeld() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let first = try await signIn(client, token: tokens.operator)
            let second = try await signIn(client, token: tokens.otherOperator, headers: [.cookie: first.cookie])
            #expect(second.response.status == .seeOther)
            #expect(try await get(client, "/", cookie: first.cookie).status == .seeOther, "the first session is revoked, not left valid")
            #expect(try await get(client, "/", cookie: second.cookie).status == .ok)
        }
    }

    @Test func aPlantedCookieCannotShadowTheSessionAndTLSGetsAHostOnlySecureCookie() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            let planted = try await client.execute(uri: "/audit", method: .get, headers: [.cookie: "flotilla_session=junk; \(session.cookie)"])
            #expect(planted.status == .ok)
            let proxied = try await signIn(client, token: tokens.operator, headers: [HTTPField.Name("X-Forwarded-Proto")!: "http, https"])
            let cookie = try #require(proxied.response.headers[.setCookie])
            #expect(cookie.hasPrefix("__Host-flotilla_session=") && cookie.hasSuffix("; Secure"))
            #expect(try await get(client, "/", cookie: proxied.cookie).status == .ok)

            // Over TLS only the `__Host-` cookie counts. A plain-named one a sibling subdomain set
            // with a longer path comes first in the header; were it taken, the operator's pages
            // and forms would be another project's.
            let tls: HTTPFields = [HTTPField.Name("X-Forwarded-Proto")!: "https"]
            let foreign = try await signIn(client, token: tokens.otherOperator)
            #expect(foreign.cookie.hasPrefix("flotilla_session="))
            var shadowed = tls
            shadowed[.cookie] = "\(foreign.cookie); \(proxied.cookie)"
            let page = String(buffer: try await client.execute(uri: "/", method: .get, headers: shadowed).body)
            #expect(page.contains("project <strong>acme</strong>"), "the session over TLS is the operator's own")
            var plainOnly = tls
            plainOnly[.cookie] = foreign.cookie
            let refused = try await client.execute(uri: "/", method: .get, headers: plainOnly)
            #expect(refused.status == .seeOther || refused.status == .found, "over TLS a plain-named cookie signs no one in")
            // Over plain HTTP the plain name is the session's own, as before.
            #expect(String(buffer: try await get(client, "/", cookie: foreign.cookie).body).contains("project <strong>other</strong>"))
        }
    }

    @Test func theAuditLogPagesAndShowsOperatorsApartFromDevices() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            for index in 0..<250 {
                try await server.store.appendAudit(AuditRecord(at: Date(), project: "acme", actor: "device:d-\(index)",
                                                               action: "device.reenroll.refused", subject: "d-\(index)"))
            }
            let operators = String(buffer: try await get(client, "/audit?who=operators", cookie: session.cookie).body)
            #expect(operators.contains("console.sign-in") && !operators.contains("device.reenroll.refused"))
            let everyone = String(buffer: try await get(client, "/audit", cookie: session.cookie).body)
            #expect(everyone.contains("page 1 of 3 · 251 entries"))
            let last = String(buffer: try await get(client, "/audit?page=3", cookie: session.cookie).body)
            #expect(last.contains("console.sign-in"), "the operator's entry is the oldest, on the last page")
        }
    }

    @Test func signInGoesBackOnlyToAPathOfThisSite() {
        let table: [(String?, String)] = [
            (nil, "/"), ("/devices?x=1", "/devices?x=1"), ("https://evil.example/", "/"), ("//evil.example/", "/"),
            ("/\\evil.example", "/"), ("devices", "/"), ("/a\r\nSet-Cookie: x=1", "/"),
        ]
        for (next, expected) in table { #expect(ConsoleController.safeNext(next) == expected, "\(String(describing: next))") }
    }

    @Test func whatDevicesAndRepositoriesWriteIsEscapedEverywhere() throws {
        let hostile = "<script>alert('x')</script>\"&"
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        #expect(HTML.escape(hostile) == escaped)
        let device = OperatorDeviceView(id: "d-1", name: hostile, project: "acme", hardwareID: hostile, tags: [hostile: hostile],
                                        attributes: [:], apps: [hostile: InstalledApp(version: hostile)], online: true,
                                        enrolledAt: Date(timeIntervalSince1970: 0), lastHeartbeatAt: nil)
        let list = ConsolePages.devicesMain(query: .init(selector: hostile), problem: .init(column: 1, reason: hostile),
                                            devices: [device][...], total: 1, apps: [hostile]).description
        let detail = ConsolePages.deviceMain(device: device, latest: Heartbeat(reportID: "r", processes: [.init(name: hostile, running: false)],
                                                                                 custom: [hostile: hostile]),
                                             executions: [], metrics: DeviceMetrics(device: "d-1", since: Date(), until: Date(), bucketSeconds: 60, points: [])).description
        let audit = ConsolePages.auditMain(entries: [AuditRecord(at: Date(), project: "acme", actor: hostile, action: hostile, subject: hostile, detail: hostile)]).description
        var report = Self.report()
        report.alerts = [.init(rule: "hot", device: hostile, severity: "critical", firingAt: "2026-12-05T10:00:00Z", observed: hostile)]
        let session = ConsoleSession(record: AccessTokens.make(kind: .session, project: "acme").record, text: "fls_x")
        let overview = ConsolePages.overviewMain(session: session, state: .reconciled(report, leader: nil), suspended: [], devices: 1, online: 1)
            .description
        #expect(overview.contains("<h2>Alerts firing</h2>"))
        for page in [list, detail, audit, overview] {
            #expect(!page.contains("<script>"), "raw markup from input")
            #expect(page.contains(escaped))
        }
    }

    @Test func aStepNumberStoredBeforeReportsWereCheckedIsShownNotCountedOn() {
        // Reports are checked now (`DeploymentTests`); a store may still hold one from before.
        let device = OperatorDeviceView(id: "d-1", name: "d-1", project: "acme", hardwareID: "hw", tags: [:], attributes: [:], apps: [:],
                                        online: true, enrolledAt: Date(timeIntervalSince1970: 0), lastHeartbeatAt: nil)
        let deployment = DeploymentRecord(id: "dep-1", project: "acme", app: "thermostat", version: "2.5.0", flow: "install", digest: "sha256:a",
                                          parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: Date(), createdBy: "controller")
        var execution = ExecutionRecord(id: "exe-1", deploymentID: "dep-1", deviceID: "d-1", updatedAt: Date())
        execution.results = [StepResult(index: .max, name: "x", status: .failed), StepResult(index: 2, name: "y", status: .succeeded)]
        let page = ConsolePages.deviceMain(device: device, latest: nil, executions: [.init(deployment: deployment, execution: execution)],
                                           metrics: DeviceMetrics(device: "d-1", since: Date(), until: Date(), bucketSeconds: 60, points: [])).description
        #expect(page.contains("step #\(Int.max) <strong>x</strong>") && page.contains("step 3 <strong>y</strong>"))
    }

    @Test func formsAreParsedAsBrowsersSendThem() {
        #expect(FormBody.parse("token=flo_a%2Bb&next=%2Fdevices%3Fa%3D1&csrf=") == ["token": "flo_a+b", "next": "/devices?a=1", "csrf": ""])
        #expect(FormBody.parse("a=one+two&a=three&=x&b") == ["a": "one two", "": "x", "b": ""], "the first of a repeated name wins")
        #expect(FormBody.parse("bad=%E0%A4%A") == [:], "a field that does not decode is dropped")
    }

    @Test func anActionNeedsTheSessionsCSRFTokenAndIsAuditedAsTheOperator() async throws {
        let project = ConsoleProject(Self.report())
        try await server.withServer(controller: project) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            let overview = String(buffer: try await get(client, "/", cookie: session.cookie).body)
            #expect(overview.contains("thermostat") && overview.contains("3 converged") && overview.contains("1 offline"))
            #expect(overview.contains("<code>0123456789ab</code> <strong>thermostat &lt;2.5.0&gt; for the canary</strong> by Ada"))
            let csrf = try #require(Self.csrf(in: overview))

            // Without the token, with another session's, or with none at all: refused, nothing done.
            let other = try await signIn(client, token: tokens.operator)
            let otherCSRF = try #require(Self.csrf(in: String(buffer: try await get(client, "/", cookie: other.cookie).body)))
            #expect(otherCSRF != csrf)
            for form in ["", "csrf=", "csrf=\(otherCSRF)", "csrf=zz"] {
                let refused = try await post(client, "/apps/thermostat/suspend", cookie: session.cookie, form: form)
                #expect(refused.status == .forbidden, "\(form)")
                #expect(String(buffer: refused.body).contains("CSRF"))
            }
            let anonymous = try await client.execute(uri: "/apps/thermostat/suspend", method: .post,
                                                     headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "csrf=\(csrf)"))
            #expect(anonymous.status == .unauthorized)
            #expect(await project.suspended.isEmpty)

            let done = try await post(client, "/apps/thermostat/suspend", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(done.status == .seeOther)
            #expect(await project.suspended == ["thermostat": true])
            let operatorID = String(tokens.operator.split(separator: "_")[1])
            let audit = try await server.store.audit(project: "acme", limit: 10)
            #expect(audit.contains { $0.action == "app.suspend" && $0.subject == "thermostat" && $0.actor == "operator:\(operatorID)" })
            let auditPage = String(buffer: try await get(client, "/audit", cookie: session.cookie).body)
            #expect(auditPage.contains("app.suspend") && auditPage.contains("console.sign-in"))
        }
    }

    /// A device that sent more heartbeat data than a chart reads does not take its page with
    /// it: the page says why the charts are missing, and shows the rest.
    @Test func aDevicePastWhatAChartReadsStillHasItsPage() async throws {
        try await server.withServer(metricsReadBytes: 64 << 10, controller: ConsoleProject(Self.report())) { client, tokens in
            let device = try await RemoteTests().onlineDevice(client, tokens)
            let padding = String(repeating: "x", count: 20 << 10)
            _ = try await server.store.recordHeartbeats((0..<5).map { index in
                HeartbeatRecord(deviceID: device.id, receivedAt: Date().addingTimeInterval(-Double(index) * 60),
                                report: Heartbeat(reportID: "big-\(index)", cpuPercent: 5, custom: ["blob": padding]))
            })
            let session = try await signIn(client, token: tokens.operator)
            let page = try await get(client, "/devices/\(device.id)", cookie: session.cookie)
            #expect(page.status == .ok)
            let text = String(buffer: page.body)
            #expect(text.contains("Not charted: device \(device.id) sent more than 64 KiB of heartbeats in that span"), "\(text)")
            #expect(text.contains("<h2>Tags</h2>"))
        }
    }

    /// A device's page lists its own latest executions, found by the device: one in an older
    /// deployment than the project's latest forty is still there, and nobody else's is.
    @Test func aDevicesPageListsItsOwnLatestExecutions() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let device = try await RemoteTests().onlineDevice(client, tokens)
            let now = Date()
            func deployment(_ index: Int, version: String) -> DeploymentRecord {
                DeploymentRecord(id: "dep-\(index)", project: "acme", app: "thermostat", version: version, flow: "compose", digest: "d-\(index)",
                                 parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now.addingTimeInterval(Double(index)),
                                 createdBy: "controller", purpose: .rollout, group: "canary")
            }
            try await server.store.createDeployment(deployment(0, version: "9.9.9-own"), executions: [
                ExecutionRecord(id: "exe-own", deploymentID: "dep-0", deviceID: device.id, state: .succeeded, updatedAt: now),
            ])
            for index in 1...45 {
                try await server.store.createDeployment(deployment(index, version: "1.0.\(index)"), executions: [
                    ExecutionRecord(id: "exe-\(index)", deploymentID: "dep-\(index)", deviceID: "d-someone-else", updatedAt: now),
                ])
            }
            let session = try await signIn(client, token: tokens.operator)
            let page = String(buffer: try await get(client, "/devices/\(device.id)", cookie: session.cookie).body)
            #expect(page.contains("9.9.9-own"), "\(page)")
            #expect(!page.contains("1.0.45"))
        }
    }

    @Test func aRunningRolloutIsAbortedAndAWaitingTargetApprovedEachAudited() async throws {
        let project = ConsoleProject(Self.report())
        try await server.withServer(controller: project) { client, tokens in
            let device = try await RemoteTests().onlineDevice(client, tokens)
            let now = Date()
            let wave = DeploymentRecord(id: "dep-wave-1", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose", digest: "d-250",
                                        parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now,
                                        createdBy: "controller", purpose: .rollout, group: "canary")
            try await server.store.createDeployment(wave, executions: [ExecutionRecord(id: "exe-1", deploymentID: wave.id, deviceID: device.id,
                                                                                       updatedAt: now)])
            let session = try await signIn(client, token: tokens.operator)
            let other = try await signIn(client, token: tokens.otherOperator)
            let rollout = String(buffer: try await get(client, "/rollouts/thermostat/canary", cookie: session.cookie).body)
            #expect(rollout.contains("Wave 1: 2.5.0") && rollout.contains("Abort this rollout"))
            let csrf = try #require(Self.csrf(in: rollout))
            let otherCSRF = try #require(Self.csrf(in: String(buffer: try await get(client, "/", cookie: other.cookie).body)))

            // Another project's session reaches neither: its project runs no such rollout, and has no controller here.
            let foreignAbort = try await post(client, "/rollouts/thermostat/canary/abort", cookie: other.cookie, form: "csrf=\(otherCSRF)")
            #expect(foreignAbort.status == .conflict && !String(buffer: foreignAbort.body).contains("acme"))
            let foreignApproval = try await post(client, "/rollouts/thermostat/canary/approve", cookie: other.cookie, form: "csrf=\(otherCSRF)")
            #expect(foreignApproval.status == .notFound)
            #expect(try await server.store.approvals(project: "acme").isEmpty)
            #expect(try await server.store.deployment(id: wave.id)?.aborted == false, "another project's session aborted this one's rollout")

            let aborted = try await post(client, "/rollouts/thermostat/canary/abort", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(aborted.status == .seeOther)
            #expect(try await server.store.deployment(id: wave.id)?.aborted == true)
            #expect(try await server.store.executions(deploymentID: wave.id).map(\.state) == [.cancelled])
            let again = try await post(client, "/rollouts/thermostat/canary/abort", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(again.status == .conflict, "nothing runs any more")

            // A rollout whose waves all finished is not marked aborted after the fact (a stale page's button).
            let done = DeploymentRecord(id: "dep-done-1", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose", digest: "d-251",
                                        parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now.addingTimeInterval(1),
                                        createdBy: "controller", purpose: .rollout, group: "canary")
            try await server.store.createDeployment(done, executions: [ExecutionRecord(id: "exe-2", deploymentID: done.id, deviceID: device.id,
                                                                                       state: .succeeded, updatedAt: now)])
            let late = try await post(client, "/rollouts/thermostat/canary/abort", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(late.status == .conflict)
            #expect(try await server.store.deployment(id: done.id)?.aborted == false)

            let approved = try await post(client, "/rollouts/thermostat/canary/approve", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(approved.status == .seeOther)
            let operatorID = String(tokens.operator.split(separator: "_")[1])
            #expect(try await server.store.approvals(project: "acme").map(\.digest) == ["d-250"])
            #expect(try await server.store.approvals(project: "acme").first?.approvedBy == "operator:\(operatorID)")
            #expect(await project.polls >= 2, "an abort and an approval each ask the controller for a pass")
            let actions = try await server.store.audit(project: "acme", limit: 20).filter { $0.actor == "operator:\(operatorID)" }.map(\.action)
            #expect(actions.contains("rollout.abort") && actions.contains("target.approve"), "\(actions)")
        }
    }

    @Test func signingOutOrRevokingTheOperatorTokenEndsTheSession() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            let csrf = try #require(Self.csrf(in: String(buffer: try await get(client, "/", cookie: session.cookie).body)))
            let out = try await post(client, "/sign-out", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(out.status == .seeOther)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await get(client, "/", cookie: session.cookie).status == .seeOther, "the old cookie no longer works")

            let again = try await signIn(client, token: tokens.operator)
            #expect(try await get(client, "/", cookie: again.cookie).status == .ok)
            let operatorID = String(tokens.operator.split(separator: "_")[1])
            let revoke = try await client.execute(uri: "/api/v1/tokens/\(operatorID)", method: .delete,
                                                  headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(revoke.status == .ok)
            #expect(try await get(client, "/", cookie: again.cookie).status == .seeOther, "a session dies with the token that made it")
        }
    }

    @Test func aSessionIsNotABearerTokenAndTheAPIMakesNone() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            let text = String(session.cookie.dropFirst("flotilla_session=".count))
            #expect(text.hasPrefix("fls_"))
            let asBearer = try await client.execute(uri: "/api/v1/devices", method: .get, headers: [.authorization: "Bearer \(text)"])
            #expect(asBearer.status == .unauthorized)
            let made = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                body: try ServerTests.json(["kind": "session"]))
            #expect(made.status == .badRequest)
            #expect(try ServerTests.error(made).field == "kind")
            // An operator token's text in the cookie is not a session either.
            #expect(try await get(client, "/", cookie: "flotilla_session=\(tokens.operator)").status == .seeOther)
        }
    }

    @Test func anotherProjectsSessionSeesNothingOfThisOne() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let device = try await RemoteTests().onlineDevice(client, tokens)
            let own = try await signIn(client, token: tokens.operator)
            let other = try await signIn(client, token: tokens.otherOperator)
            #expect(String(buffer: try await get(client, "/devices", cookie: own.cookie).body).contains(device.id))
            #expect(try await get(client, "/devices/\(device.id)", cookie: own.cookie).status == .ok)

            let list = String(buffer: try await get(client, "/devices", cookie: other.cookie).body)
            #expect(!list.contains(device.id))
            #expect(list.contains("0 devices"))
            let page = try await get(client, "/devices/\(device.id)", cookie: other.cookie)
            #expect(page.status == .notFound)
            let overview = String(buffer: try await get(client, "/", cookie: other.cookie).body)
            #expect(!overview.contains("thermostat") && overview.contains("No repository is reconciled for project other"))
            #expect(try await get(client, "/rollouts/thermostat/canary", cookie: other.cookie).status == .notFound)
            let csrf = try #require(Self.csrf(in: overview))
            #expect(try await post(client, "/apps/thermostat/suspend", cookie: other.cookie, form: "csrf=\(csrf)").status == .notFound)
            #expect(!String(buffer: try await get(client, "/audit", cookie: other.cookie).body).contains(device.id))
        }
    }

    @Test func aBadSelectorSaysWhereAndTheListPages() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            for index in 0..<3 { _ = try await RemoteTests().onlineDevice(client, tokens, hardware: "serial-\(index)") }
            let session = try await signIn(client, token: tokens.operator)
            let bad = try await get(client, "/devices?selector=group%3Dcanary%2C%2C", cookie: session.cookie)
            #expect(bad.status == .badRequest)
            let text = String(buffer: bad.body)
            #expect(text.contains("Invalid selector at column 14"), "\(text)")
            #expect(text.contains("aria-invalid=\"true\""))
            // As a browser's form sends it, a space as '+': the same error as the selector typed.
            let typed = "group in (canary"
            var expected = ""
            do throws(LabelSelector.ParseError) { _ = try LabelSelector(parsing: typed) } catch { expected = "Invalid selector at column \(error.offset + 1): \(HTML.escape(error.reason))" }
            let formSent = String(buffer: try await get(client, "/devices?selector=group+in+%28canary", cookie: session.cookie).body)
            #expect(!expected.isEmpty && formSent.contains(expected), "\(expected)")
            #expect(formSent.contains("value=\"group in (canary\""))
            let good = String(buffer: try await get(client, "/devices?selector=group%3Dcanary&online=true", cookie: session.cookie).body)
            #expect(good.contains("page 1 of 1 · 3 devices"))
            let none = String(buffer: try await get(client, "/devices?selector=group%3Dstable", cookie: session.cookie).body)
            #expect(none.contains("0 devices"))
        }
    }

    @Test func devicesAreFoundByGroupOverTheTagsGroupsSee() async throws {
        let project = ConsoleProject(Self.report())
        try await server.withServer(controller: project) { client, tokens in
            // Both enroll with the token's group tag, group=canary; git declares the first stable.
            let first = try await RemoteTests().onlineDevice(client, tokens, hardware: "serial-1")
            let second = try await RemoteTests().onlineDevice(client, tokens, hardware: "serial-2")
            await project.set(FleetInventory(groups: [.init(name: "canary", selector: "group=canary", devices: []),
                                                      .init(name: "pinned", selector: nil, devices: [first.id])],
                                             declaredTags: [first.id: ["group": "stable"]]))
            let session = try await signIn(client, token: tokens.operator)
            let canary = String(buffer: try await get(client, "/devices?group=canary", cookie: session.cookie).body)
            #expect(canary.contains(second.id) && !canary.contains(first.id), "what git declares wins over what the device reports")
            let pinned = String(buffer: try await get(client, "/devices?group=pinned", cookie: session.cookie).body)
            #expect(pinned.contains(first.id) && !pinned.contains(second.id))
            #expect(pinned.contains("group=stable") && !pinned.contains("group=canary"), "listed with the tags it was matched on")
            let bySelector = String(buffer: try await get(client, "/devices?selector=group%3Dstable", cookie: session.cookie).body)
            #expect(bySelector.contains(first.id) && !bySelector.contains(second.id))
            let unknown = try await get(client, "/devices?group=nope", cookie: session.cookie)
            #expect(unknown.status == .badRequest)
            #expect(String(buffer: unknown.body).contains("No group &#39;nope&#39; in the commit in force."))

            let page = String(buffer: try await get(client, "/devices/\(first.id)", cookie: session.cookie).body)
            #expect(page.contains("declared in git; wins over the reported canary"))
            #expect(page.contains("href=\"/devices?group=pinned\">pinned</a>") && !page.contains(">canary</a>"))
        }
    }

    @Test func theCommitsPageSaysWhichDevicesRunWhatTheCommitInForceWants() async throws {
        let table: [(String, String)] = [("<td class=\"mono\">2.5.0</td><td>2</td><td>desired for canary</td>", "the desired version, and who runs it"),
                                         ("<td class=\"mono\">2.4.1</td><td>1</td><td>not desired by the commit in force</td>", "an older one"),
                                         ("1 of 4 devices do not run thermostat.", "devices without the app")]
        let page = ConsolePages.commitsMain(report: ConsoleTests.report(), running: ["thermostat": ["2.5.0": 2, "2.4.1": 1]], devices: 4).description
        for (expected, what) in table { #expect(page.contains(expected), "\(what)") }
        #expect(page.contains("<strong>thermostat &lt;2.5.0&gt; for the canary</strong> by Ada"))
        #expect(ConsolePages.commitsMain(report: nil, running: [:], devices: 0).description.contains("No commit is in force yet"))
    }

    @Test func theCommitLinksToTheForgeOnlyOverHTTP() {
        var report = ConsoleTests.report()
        report.commitURL = "https://github.com/acme/fleet/commit/0123456789abcdef"
        #expect(ConsolePages.commitLink(report).description
                == "<a href=\"https://github.com/acme/fleet/commit/0123456789abcdef\" rel=\"noopener noreferrer\"><code>0123456789ab</code></a>")
        report.commitURL = "javascript:alert(1)"
        #expect(ConsolePages.commitLink(report).description == "<code>0123456789ab</code>")
    }

    @Test func theLivePagePartIsTheMainOnly() async throws {
        try await server.withServer(controller: ConsoleProject(Self.report())) { client, tokens in
            let session = try await signIn(client, token: tokens.operator)
            let part = try await client.execute(uri: "/", method: .get, headers: [.cookie: session.cookie, HTTPField.Name("X-Console-Part")!: "main"])
            let text = String(buffer: part.body)
            #expect(text.contains("Overview of acme") && !text.contains("<html"))
            let whole = try await get(client, "/", cookie: session.cookie)
            #expect(whole.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("frame-ancestors 'none'") == true)
            #expect(String(buffer: whole.body).contains("data-live"))
        }
    }
}

/// The live updates' watcher: one status read a tick for all of a project's consoles, none when
/// nobody listens, and every listener woken by a change.
struct ConsoleEventsTests {
    @Test func manyListenersCostOneReadATickAndAChangeWakesThemAll() async throws {
        let project = ConsoleProject(ConsoleTests.report())
        let tick = Duration.milliseconds(20)
        let events = ConsoleEvents(tick: tick) { _ in await project.statusJSON() }
        let start = await events.current(project: "acme")
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 { group.addTask { await events.next(project: "acme", after: start, timeout: .seconds(60)) } }
            let deadline = ContinuousClock.now + .seconds(30)
            while await events.listening < 50, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(await events.listening == 50)
            // They all wait through ticks of nothing changing: one read a tick, not one per console.
            let readsBefore = await project.reads, began = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(200))
            let idleReads = await project.reads - readsBefore, ticks = (ContinuousClock.now - began) / tick
            #expect(Double(idleReads) <= ticks + 2, "50 waiting consoles read the status \(idleReads) times in \(ticks) ticks")
            await project.set(ConsoleTests.report(converged: 4, updating: 0))
            var woken: [Int] = []
            for try await version in group { woken.append(version) }
            return woken
        }
        #expect(versions.count == 50 && versions.allSatisfy { $0 == start + 1 })
        // Nobody listens now: the watcher stops, and nothing is read.
        let deadline = ContinuousClock.now + .seconds(30)
        while await events.isWatching, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await events.isWatching == false)
        let idle = await project.reads
        try await Task.sleep(for: .milliseconds(200))
        #expect(await project.reads == idle)
    }

    @Test func eventStreamsAreCappedPerSessionAndInAll() async throws {
        let events = ConsoleEvents(maximumStreams: 6) { _ in Array("same".utf8) }
        var streams: [Int] = []
        for _ in 0..<ConsoleEvents.streamsPerSession { streams.append(try #require(await events.admit(session: "a"))) }
        let start = await events.current(project: "acme")
        let first = streams[0]
        let oldest = Task { await events.next(project: "acme", after: start, timeout: .seconds(60), stream: first) }
        try await Task.sleep(for: .milliseconds(50))
        // A fifth page of the session gets a stream, and the oldest (a page left behind) ends.
        let fifth = try #require(await events.admit(session: "a"))
        #expect(await oldest.value == ConsoleEvents.ended)
        #expect(await events.next(project: "acme", after: start, timeout: .seconds(60), stream: streams[0]) == ConsoleEvents.ended)
        await events.leave(session: "a", stream: streams[0])
        #expect(await events.admit(session: "b") != nil)
        #expect(await events.admit(session: "b") != nil)
        #expect(await events.admit(session: "c") == nil, "the server's cap holds across sessions")
        await events.leave(session: "a", stream: fifth)
        #expect(await events.admit(session: "c") != nil)
    }

    @Test func closingEndsEveryStreamAndStartsNone() async throws {
        let events = ConsoleEvents(tick: .milliseconds(10)) { _ in Array("same".utf8) }
        let start = await events.current(project: "acme")
        let stream = try #require(await events.admit(session: "a"))
        let waiting = Task { await events.next(project: "acme", after: start, timeout: .seconds(600), stream: stream) }
        let deadline = ContinuousClock.now + .seconds(30)
        while await events.listening < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        await events.close()
        #expect(await waiting.value == ConsoleEvents.ended, "a stream waiting out its keep-alive ends at once")
        #expect(await events.admit(session: "b") == nil)
        #expect(await events.next(project: "acme", after: start, timeout: .seconds(600)) == ConsoleEvents.ended)
        #expect(await events.isWatching == false)
    }

    @Test func aListenerIsAnsweredAtItsTimeoutOrWhenCancelled() async throws {
        let events = ConsoleEvents(tick: .milliseconds(10)) { _ in Array("same".utf8) }
        let start = await events.current(project: "acme")
        #expect(await events.next(project: "acme", after: start, timeout: .milliseconds(50)) == start)
        let waiting = Task { await events.next(project: "acme", after: start, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == start)
        #expect(await events.listening == 0)
    }
}

/// Every console page and form is behind a session: none answers without one, whatever its
/// handler does; only signing in and the two assets are open.
struct ConsoleRouteTests {
    @Test func everyConsoleRouteRefusesARequestWithoutAValidSession() async throws {
        let store = MemoryFleetStore()
        let router = try await OpenAPITests.router(store)
        let operatorToken = AccessTokens.make(kind: .operator, project: "acme")
        try await store.insertToken(operatorToken.record)
        var made = AccessTokens.make(kind: .session, project: "acme")
        made.record.createdBy = operatorToken.record.id
        let ended = made
        try await store.insertToken(ended.record)
        try await store.revokeToken(id: ended.record.id)
        let open: Set = ["/sign-in", "/console/console.css", "/console/console.js"]
        let routes = router.routes.map { route in
            (route.method, "/" + route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "x" : String($0) }.joined(separator: "/"))
        }.filter { !$0.1.hasPrefix("/api/") && !$0.1.hasPrefix("/agent/") && !$0.1.hasPrefix("/hooks/")
            && !["/healthz", "/metrics"].contains($0.1) && !open.contains($0.1) }
        #expect(routes.count == 13)
        let app = Application(router: router)
        try await app.test(.router) { client in
            for (method, path) in routes {
                for cookie in [nil, "flotilla_session=\(ended.text)", "flotilla_session=\(operatorToken.text)", "flotilla_session=fls_0_0"] {
                    var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                    if let cookie { headers[.cookie] = cookie }
                    let response = try await client.execute(uri: path, method: method, headers: headers, body: ByteBuffer(string: "csrf=x"))
                    if method == .get {
                        #expect(response.status == .seeOther || response.status == .unauthorized, "\(method) \(path) with \(cookie ?? "no cookie")")
                        if response.status == .seeOther { #expect(response.headers[.location]?.hasPrefix("/sign-in") == true) }
                    } else {
                        #expect(response.status == .unauthorized, "\(method) \(path) with \(cookie ?? "no cookie")")
                    }
                }
            }
        }
    }
}

/// The device list the console's pages share: one store read for many pages, served stale while
/// one refresh runs, and read anew once it is old.
struct ConsoleDeviceCacheTests {
    @Test func pagesShareOneReadAndAStaleListIsRefreshedBehindThem() async throws {
        let store = MemoryFleetStore()
        for index in 0..<3 {
            _ = try await store.enroll(DeviceRecord(id: "d-\(index)", project: "acme", name: "d-\(index)", hardwareID: "hw-\(index)",
                                                    secretHash: "", enrolledAt: Date()))
        }
        // Times are given, not waited for: a list lasts 10 s here, however long its read took.
        let cache = ConsoleDeviceCache(store: store, freshness: 10, readCostFactor: 0)
        let first = try await cache.snapshot(project: "acme", now: Date())
        #expect(first.devices.map(\.id) == ["d-0", "d-1", "d-2"])
        for second in 0..<20 { _ = try await cache.snapshot(project: "acme", now: first.at.addingTimeInterval(Double(second) / 4)) }
        #expect(await cache.reads == 1, "twenty pages within the list's lifetime read the store once")

        try await store.deleteDevice(id: "d-1")
        let stale = try await cache.snapshot(project: "acme", now: first.at.addingTimeInterval(15))
        #expect(stale.devices.count == 3, "a list just past its lifetime is served at once")
        #expect(await cache.reads == 2, "and one refresh started behind it")
        // Long after: the page waits for a list read after the deletion (the refresh, or a new read).
        #expect(try await cache.snapshot(project: "acme", now: first.at.addingTimeInterval(100)).devices.map(\.id) == ["d-0", "d-2"])

        try await store.deleteDevice(id: "d-2")
        let late = try await cache.snapshot(project: "acme", now: Date().addingTimeInterval(1_000))
        #expect(late.devices.map(\.id) == ["d-0"], "a list long unread is not shown: the page waits for a fresh one")
        #expect(try await cache.snapshot(project: "other").devices.isEmpty)
    }
}


/// What is left of a rollout, at the pace of its waves so far.
struct ConsoleForecastTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func wave(_ number: Int, devices: Int, at seconds: Double, ended: Double? = nil, purpose: DeploymentPurpose = .rollout) -> ConsolePages.Wave {
        let deployment = DeploymentRecord(id: "w-\(number)", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose",
                                          digest: "d", parameters: [:], steps: [], rollback: [], artifactAllowlist: [],
                                          createdAt: start.addingTimeInterval(seconds), createdBy: "controller", purpose: purpose, group: "europe")
        let executions = (0..<devices).map { index in
            ExecutionRecord(id: "e-\(number)-\(index)", deploymentID: deployment.id, deviceID: "d-\(number)-\(index)",
                            state: ended == nil ? .running : .succeeded, updatedAt: start.addingTimeInterval(ended ?? seconds))
        }
        return ConsolePages.Wave(deployment: deployment, executions: executions)
    }

    static func target(devices: Int, converged: Int, updating: Int = 0, failed: Int = 0, offline: Int = 0, state: String = "updating",
                       reason: String? = nil) -> FleetStatusReport.Target {
        .init(group: "europe", version: "2.5.0", devices: devices, converged: converged, updating: updating, failed: failed, offline: offline,
              state: state, reason: reason)
    }

    static let table: [(FleetStatusReport.Target, [ConsolePages.Wave], String)] = [
        // Three waves of 3, a minute apart; 10 left: 4 more waves, 4 minutes.
        (target(devices: 19, converged: 6, updating: 3), [wave(1, devices: 3, at: 0, ended: 50), wave(2, devices: 3, at: 60, ended: 110),
                                                          wave(3, devices: 3, at: 120)],
         "10 devices left to start: about 4 more waves of 3, about 4 min at this rollout's pace so far."),
        // One wave, done in 20 s; two offline among the five left wait for their devices.
        (target(devices: 9, converged: 4, offline: 2), [wave(1, devices: 4, at: 0, ended: 20)],
         "5 devices left to start (2 offline: each is updated when it is heard from again): about 1 more wave of 4, about 20 s at this rollout's pace so far."),
        // A gate holds it: nothing starts, and it says why.
        (target(devices: 10, converged: 0, state: "waiting", reason: "after canary"), [],
         "10 devices left to start; nothing starts now: after canary."),
        // Only offline devices left.
        (target(devices: 5, converged: 4, offline: 1, state: "converged"), [wave(1, devices: 4, at: 0, ended: 20)],
         "1 device left to start (1 offline: each is updated when it is heard from again)."),
    ]

    @Test func whatIsLeftAndHowLong() {
        for (target, waves, expected) in Self.table {
            #expect(ConsolePages.forecast(target: target, waves: waves, now: Self.start.addingTimeInterval(130)) == expected)
        }
    }

    @Test func nothingLeftSaysNothing() {
        #expect(ConsolePages.forecast(target: Self.target(devices: 4, converged: 3, failed: 1, state: "failed"), waves: [], now: Self.start) == nil)
        var observed = Self.target(devices: 7, converged: 6)
        observed.observing = 1
        #expect(ConsolePages.forecast(target: observed, waves: [], now: Self.start) == nil, "a device in its health check has started")
    }

    @Test func wavesAheadOfTheStatusCountAsStarted() {
        // The status (from the controller's last pass) counts none updating; the second wave's two are.
        let waves = [Self.wave(1, devices: 2, at: 0, ended: 30), Self.wave(2, devices: 2, at: 60)]
        #expect(ConsolePages.forecast(target: Self.target(devices: 7, converged: 2), waves: waves, now: Self.start.addingTimeInterval(70))
                == "3 devices left to start: about 2 more waves of 2, about 2 min at this rollout's pace so far.")
    }
}
