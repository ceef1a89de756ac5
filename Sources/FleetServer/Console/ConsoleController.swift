import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle

/// The web console at `/`: server-rendered pages over the same store and controllers as the API,
/// a session cookie made from an operator token, CSRF tokens on every form, and Server-Sent
/// Events for the live pages. Git stays the only way to change desired state; the console shows
/// it and does the few operational actions that are not desired state, each audited.
struct ConsoleController: Sendable {
    let store: any FleetStore
    let board: AssignmentBoard
    let controllers: ControllerSet
    let configuration: ServerConfiguration
    let events: ConsoleEvents
    let devices: ConsoleDeviceCache
    /// Holds each operator token to its allowance of sign-ins.
    let limiter: DeviceRequestLimiter
    /// How long an open event stream waits before a keep-alive comment (proxies close silent ones).
    var keepAlive: Duration = .seconds(20)
    /// How long one event stream lasts; the browser opens the next by itself.
    var streamLifetime: Duration = .seconds(600)

    init(store: any FleetStore, board: AssignmentBoard, controllers: ControllerSet, configuration: ServerConfiguration,
         events: ConsoleEvents? = nil, limiter: DeviceRequestLimiter = DeviceRequestLimiter(nil)) {
        self.store = store
        self.limiter = limiter
        self.board = board
        self.controllers = controllers
        self.configuration = configuration
        self.events = events ?? Self.events(controllers: controllers, configuration: configuration)
        devices = ConsoleDeviceCache(store: store)
    }

    /// Live pages hold a connection each: at most a tenth of what the server accepts, so
    /// consoles never crowd out devices.
    static func events(controllers: ControllerSet, configuration: ServerConfiguration) -> ConsoleEvents {
        ConsoleEvents(controllers: controllers, maximumStreams: max(16, configuration.maximumConnections / 10))
    }

    func addRoutes(to router: Router<FleetRequestContext>) {
        let console = router.group().add(middleware: ConsoleErrorMiddleware(store: store, configuration: configuration))
        console.get("console/console.css") { _, _ in asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        console.get("console/console.js") { _, _ in asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }
        console.get("sign-in") { request, _ in
            let next = Self.safeNext(FormBody.parse(request.uri.query ?? "")["next"])
            return html(ConsolePages.signIn(error: nil, next: next))
        }
        console.post("sign-in") { request, _ in try await signIn(request) }
        console.post("sign-out") { request, _ in
            let session = try await form(request)
            try await ConsoleSession.end(session.record.id, store: store)
            try await store.appendAudit(AuditRecord(at: Date(), project: session.project, actor: session.actor,
                                                    action: "console.sign-out", subject: session.record.id))
            var response = redirect("/sign-in")
            response.headers[.setCookie] = ConsoleSession.clearCookie(secure: ConsoleSession.overTLS(request, configuration: configuration))
            return response
        }
        console.get("/") { request, _ in try await overview(request) }
        console.get("devices") { request, _ in try await devices(request) }
        console.get("devices/:id") { request, context in try await device(request, id: try PathParameter.require(context, "id")) }
        console.get("rollouts/:app/:group") { request, context in
            try await rollout(request, app: try PathParameter.require(context, "app"), group: try PathParameter.require(context, "group"))
        }
        console.get("audit") { request, _ in try await audit(request) }
        console.get("commits") { request, _ in try await commits(request) }
        console.get("events") { request, _ in try await eventStream(request) }
        console.post("reconcile") { request, _ in
            let session = try await form(request)
            let controller = try await ControllerRoutes.controller(of: session.project, in: controllers)
            await controller.requestPoll()
            try await store.appendAudit(AuditRecord(at: Date(), project: session.project, actor: session.actor,
                                                    action: "controller.reconcile", subject: session.project, detail: "from the console"))
            return redirect("/")
        }
        for (verb, suspended) in [("suspend", true), ("resume", false)] {
            console.post("apps/:app/\(verb)") { request, context in
                let session = try await form(request)
                let app = try PathParameter.require(context, "app")
                let controller = try await ControllerRoutes.controller(of: session.project, in: controllers)
                try await ControllerRoutes.setSuspended(suspended, app: app, controller: controller, project: session.project,
                                                        actor: session.actor, store: store)
                return redirect("/")
            }
        }
        console.post("rollouts/:app/:group/abort") { request, context in
            let session = try await form(request)
            let app = try PathParameter.require(context, "app"), group = try PathParameter.require(context, "group")
            try await abortRollout(session: session, app: app, group: group)
            return redirect("/rollouts/\(URLText.component(app))/\(URLText.component(group))")
        }
        console.post("rollouts/:app/:group/approve") { request, context in
            let session = try await form(request)
            let app = try PathParameter.require(context, "app"), group = try PathParameter.require(context, "group")
            let controller = try await ControllerRoutes.controller(of: session.project, in: controllers)
            _ = try await ControllerRoutes.approve(app: app, group: group, controller: controller, project: session.project,
                                                   actor: session.actor, store: store)
            return redirect("/rollouts/\(URLText.component(app))/\(URLText.component(group))")
        }
    }

    // MARK: Sessions and forms

    private func signIn(_ request: Request) async throws -> Response {
        // Another site's page posting a token of its own would sign the browser in to its project.
        guard ConsoleSession.sameSite(request) else {
            throw APIError(.forbidden, "cross_site", "a sign-in from another site's page is refused; sign in on this site's own page")
        }
        let fields = try await FormBody.read(request)
        let next = Self.safeNext(fields["next"])
        do {
            let session = try await ConsoleSession.signIn(operatorToken: fields["token"] ?? "", store: store, now: Date(),
                                                          admit: { try limiter.take(signInWith: $0.id) })
            // Signing in again ends the session the browser held: it is not left valid behind.
            if let previous = try await ConsoleSession.from(request, overTLS: ConsoleSession.overTLS(request, configuration: configuration), store: store, now: Date()) {
                try await ConsoleSession.end(previous.record.id, store: store)
            }
            var response = redirect(next)
            response.headers[.setCookie] = session.setCookie(secure: ConsoleSession.overTLS(request, configuration: configuration), now: Date())
            return response
        } catch let error as APIError where error.status == .unauthorized {
            return html(ConsolePages.signIn(error: "Not signed in: \(error.message).", next: next), status: .unauthorized)
        } catch let error as APIError where error.status == .tooManyRequests {
            var response = html(ConsolePages.signIn(error: "Not signed in: \(error.message).", next: next), status: .tooManyRequests)
            if let seconds = error.retryAfter { response.headers[.retryAfter] = String(seconds) }
            return response
        }
    }

    /// The session of the request, or a redirect to the sign-in page that comes back here.
    private func signedIn(_ request: Request) async throws -> ConsoleSession {
        if let session = try await ConsoleSession.from(request, overTLS: ConsoleSession.overTLS(request, configuration: configuration), store: store, now: Date()) { return session }
        let here = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        throw ConsoleRedirect(location: "/sign-in" + URLText.query([("next", here == "/" ? nil : here)]))
    }

    /// A form posted by one of the console's own pages, with its CSRF token: the session that sent it.
    private func form(_ request: Request) async throws -> ConsoleSession {
        guard let session = try await ConsoleSession.from(request, overTLS: ConsoleSession.overTLS(request, configuration: configuration), store: store, now: Date()) else {
            throw APIError.unauthorized("you are not signed in, or your session ended; sign in and try again")
        }
        guard ConsoleSession.sameSite(request) else {
            throw APIError(.forbidden, "cross_site", "the form came from another site's page")
        }
        let fields = try await FormBody.read(request)
        guard session.acceptsCSRF(fields["csrf"]) else {
            throw APIError(.forbidden, "csrf", "the form did not carry this session's CSRF token; reload the page and try again")
        }
        // The session may have been ended (signed out, its operator token revoked) while the form arrived.
        try await AccessTokens.confirm(session.record, store: store, now: Date())
        try OperatorAccessRules.check(session.record, method: request.method.rawValue, path: request.uri.path)
        return session
    }

    /// Where to go after signing in: a path of this site only, never another site.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/\\"),
              !next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }), next.utf8.count <= 2_048 else { return "/" }
        return next
    }

    // MARK: Pages

    private func overview(_ request: Request) async throws -> Response {
        let session = try await signedIn(request)
        let state: ConsolePages.ControllerState
        var suspended: Set<String> = []
        if let controller = await controllers.entry(for: session.project)?.handle {
            if let report = await Self.report(of: controller) {
                state = .reconciled(report, leader: await controller.leader())
                suspended = try await store.suspendedApps(project: session.project)
            } else {
                state = .starting
            }
        } else {
            state = .none
        }
        let now = Date()
        let snapshot = try await devices.snapshot(project: session.project)
        let online = snapshot.devices.count { OperatorController.isOnline($0, now: now, configuration: configuration) }
        return page(request, session: session, title: "Overview", section: .overview, live: true,
                    main: ConsolePages.overviewMain(session: session, state: state, suspended: suspended, devices: snapshot.devices.count,
                                                    online: online, asOf: snapshot.at))
    }

    private func devices(_ request: Request) async throws -> Response {
        let session = try await signedIn(request)
        // As a form sends it: a space is '+' (a plus sign itself is %2B).
        let parameters = FormBody.parse(request.uri.query ?? "")
        func field(_ name: String) -> String { parameters[name] ?? "" }
        var query = ConsolePages.DeviceQuery(selector: field("selector").trimmingCharacters(in: .whitespaces), group: field("group"),
                                             app: field("app"), version: field("version").trimmingCharacters(in: .whitespaces),
                                             online: field("online"))
        query.page = max(1, min(Int(field("page")) ?? 1, 1_000_000))
        var problem: ConsolePages.SelectorProblem?
        var selector: LabelSelector?
        if !query.selector.isEmpty {
            do {
                selector = try LabelSelector(parsing: query.selector)
            } catch {
                problem = ConsolePages.SelectorProblem(column: error.offset + 1, reason: error.reason)
            }
        }
        let now = Date()
        let snapshot = try await devices.snapshot(project: session.project)
        let inventory = await controllers.entry(for: session.project)?.handle.inventory()
        // The group's members: those it lists, and those its selector matches.
        var groupProblem: String?
        var group: (devices: Set<String>, selector: LabelSelector?)?
        if !query.group.isEmpty {
            if let found = inventory?.groups.first(where: { $0.name == query.group }) {
                group = (Set(found.devices), found.selector.flatMap { try? LabelSelector(parsing: $0) })
            } else {
                groupProblem = "No group '\(query.group)' in the commit in force."
            }
        }
        // The snapshot is in id order: the matches are counted, and only the page's are shown.
        var total = 0
        var shown: [OperatorDeviceView] = []
        if problem == nil, groupProblem == nil {
            let online = query.online == "true" ? true : query.online == "false" ? false : nil
            let first = (query.page - 1) * ConsolePages.pageSize
            for record in snapshot.devices {
                let tags = inventory?.effectiveTags(of: record.id, reported: record.reportedTags) ?? record.reportedTags
                if let group, !group.devices.contains(record.id), group.selector?.matches(tags) != true { continue }
                guard selector?.matches(tags) ?? true,
                      query.app.isEmpty || record.apps[query.app] != nil,
                      query.version.isEmpty || query.app.isEmpty || record.apps[query.app]?.version == query.version else { continue }
                if let online, OperatorController.isOnline(record, now: now, configuration: configuration) != online { continue }
                if total >= first, shown.count < ConsolePages.pageSize {
                    // Shown with the tags it was matched on.
                    var view = OperatorController.view(record, now: now, configuration: configuration)
                    view.tags = tags
                    shown.append(view)
                }
                total += 1
            }
        }
        return page(request, session: session, title: "Devices", section: .devices,
                    main: ConsolePages.devicesMain(query: query, problem: problem, devices: shown[...], total: total, apps: snapshot.apps,
                                                   groups: inventory?.groups.map(\.name) ?? [], groupProblem: groupProblem, asOf: snapshot.at),
                    status: problem == nil && groupProblem == nil ? .ok : .badRequest)
    }

    private func commits(_ request: Request) async throws -> Response {
        let session = try await signedIn(request)
        var report: FleetStatusReport?
        if let controller = await controllers.entry(for: session.project)?.handle { report = await Self.report(of: controller) }
        let snapshot = try await devices.snapshot(project: session.project)
        var running: [String: [String: Int]] = [:]
        for device in snapshot.devices {
            for (app, installed) in device.apps { running[app, default: [:]][installed.version, default: 0] += 1 }
        }
        return page(request, session: session, title: "Commits", section: .commits, live: true,
                    main: ConsolePages.commitsMain(report: report, running: running, devices: snapshot.devices.count))
    }

    private func audit(_ request: Request) async throws -> Response {
        let session = try await signedIn(request)
        let query = FormBody.parse(request.uri.query ?? "")
        let who = ConsolePages.AuditFilter(rawValue: query["who"] ?? "") ?? .all
        let page = max(1, min(Int(query["page"] ?? "") ?? 1, 1_000))
        // The latest entries, filtered here: devices' entries (refused re-enrollments, say)
        // cannot push the operators' actions out of reach.
        let entries = try await store.audit(project: session.project, limit: 10_000).filter(who.admits)
            .map { OperatorAccessRules.shown($0, to: session.record.grants) }
        let first = min(entries.count, (page - 1) * ConsolePages.auditPageSize)
        return self.page(request, session: session, title: "Audit log", section: .audit,
                         main: ConsolePages.auditMain(entries: Array(entries[first..<min(entries.count, first + ConsolePages.auditPageSize)]),
                                                      filter: who, page: page, total: entries.count))
    }

    private func device(_ request: Request, id: String) async throws -> Response {
        let session = try await signedIn(request)
        guard let record = try await store.device(id: id), record.project == session.project, !record.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(session.project)")
        }
        let now = Date()
        let latest = try await store.heartbeats(deviceID: id, limit: 1).first?.report
        let range = ConsolePages.ChartRange(rawValue: request.uri.queryParameters["range"].map(String.init) ?? "") ?? .hour
        // A device that sent more heartbeat data than a chart reads does not take its page with it.
        let since = now.addingTimeInterval(-range.seconds)
        var metrics = DeviceMetrics(device: id, since: since, until: now, bucketSeconds: MetricHistory.bucketSeconds, points: [])
        var chartNote: String?
        do {
            metrics = try await OperatorController.metrics(of: id, since: since, until: now, points: range.points, store: store,
                                                           configuration: configuration)
        } catch let error as APIError where error.status == .badRequest {
            chartNote = error.message
        }
        // The device's own latest ten, by its index: not every execution of the project's recent
        // deployments (each as large as the fleet it reached).
        var executions: [ConsolePages.DeviceExecution] = []
        for execution in try await store.executions(deviceID: id, limit: 10) {
            guard let deployment = try await store.deployment(id: execution.deploymentID), deployment.project == session.project else { continue }
            executions.append(.init(deployment: deployment, execution: execution))
        }
        let view = OperatorController.view(record, now: now, configuration: configuration)
        let inventory = await controllers.entry(for: session.project)?.handle.inventory()
        let declared = inventory?.declaredTags[id] ?? [:]
        let tags = inventory?.effectiveTags(of: id, reported: record.reportedTags) ?? record.reportedTags
        let groups = (inventory?.groups ?? []).filter { group in
            group.devices.contains(id) || (group.selector.flatMap { try? LabelSelector(parsing: $0) }?.matches(tags) ?? false)
        }.map(\.name)
        return page(request, session: session, title: "Device \(id)", section: .devices,
                    main: ConsolePages.deviceMain(device: view, latest: latest, executions: executions, metrics: metrics, range: range,
                                                  declared: declared, groups: groups, chartNote: chartNote))
    }

    private func rollout(_ request: Request, app: String, group: String) async throws -> Response {
        let session = try await signedIn(request)
        try Validate.text(app, field: "app", maximum: 63)
        try Validate.text(group, field: "group", maximum: 63)
        var target: FleetStatusReport.Target?
        if let controller = await controllers.entry(for: session.project)?.handle, let report = await Self.report(of: controller) {
            target = report.apps.first { $0.name == app }?.targets.first { $0.group == group }
        }
        let waves = try await waves(project: session.project, app: app, group: group)
        guard target != nil || !waves.isEmpty else { throw APIError.notFound("no target '\(group)' of app '\(app)' in project \(session.project)") }
        return page(request, session: session, title: "Rollout of \(app) to \(group)", section: .overview, live: true,
                    main: ConsolePages.rolloutMain(session: session, app: app, group: group, target: target, waves: waves))
    }

    /// The controller's deployments of `app` to `group` since its latest rollout began (waves,
    /// heals and rollbacks), oldest first, with their executions.
    private func waves(project: String, app: String, group: String) async throws -> [ConsolePages.Wave] {
        let recent = try await store.deployments(project: project, limit: 500)
            .filter { $0.app == app && $0.group == group && $0.purpose.isController }
            .sorted { $0.createdAt < $1.createdAt }
        // The latest digest's waves, and what came after the first of them.
        guard let latest = recent.last(where: { $0.purpose == .rollout }) ?? recent.last else { return [] }
        let first = recent.firstIndex { $0.purpose == .rollout && $0.digest == latest.digest } ?? recent.startIndex
        var waves: [ConsolePages.Wave] = []
        for deployment in recent[first...] {
            waves.append(.init(deployment: deployment, executions: try await store.executions(deploymentID: deployment.id)))
        }
        return waves
    }

    private func abortRollout(session: ConsoleSession, app: String, group: String) async throws {
        try Validate.text(app, field: "app", maximum: 63)
        try Validate.text(group, field: "group", maximum: 63)
        // Only waves still running: a finished rollout is not marked aborted after the fact.
        let running = try await waves(project: session.project, app: app, group: group)
            .filter { $0.deployment.purpose == .rollout && !$0.deployment.aborted && $0.executions.contains { !$0.state.isFinal } }
        guard !running.isEmpty else { throw APIError(.conflict, "not_running", "no rollout of \(app) to \(group) is running") }
        var cancelled = 0
        for wave in running {
            cancelled += try await Deployer(store: store, board: board).abort(wave.deployment.id, at: Date()).count
        }
        try await store.appendAudit(AuditRecord(at: Date(), project: session.project, actor: session.actor, action: "rollout.abort",
                                                subject: "\(app)/\(group)",
                                                detail: "\(running.last!.deployment.version): \(running.count) waves, \(cancelled) cancelled; from the console"))
        if let controller = await controllers.entry(for: session.project)?.handle { await controller.requestPoll() }
    }

    /// The controller's last status report; nil before its first reconcile.
    private static func report(of controller: any ControllerHandle) async -> FleetStatusReport? {
        guard let json = await controller.statusJSON() else { return nil }
        return try? JSONDecoder().decode(FleetStatusReport.self, from: Data(json))
    }

    // MARK: Live updates

    /// `text/event-stream`: `changed` whenever the project's status changes, a comment every
    /// `keepAlive` otherwise. The page fetches its main part again on `changed`.
    private func eventStream(_ request: Request) async throws -> Response {
        guard let session = try await ConsoleSession.from(request, overTLS: ConsoleSession.overTLS(request, configuration: configuration), store: store, now: Date()) else {
            throw APIError.unauthorized("you are not signed in, or your session ended")
        }
        let project = session.project, events = self.events, keepAlive = self.keepAlive, store = self.store
        let record = session.record, lifetime = streamLifetime
        guard let stream = await events.admit(session: record.id) else {
            throw APIError(.tooManyRequests, "too_many_streams",
                           "too many live pages are open on this server; the page still works, reload it to see what changed")
        }
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { Task { await events.leave(session: record.id, stream: stream) } }
            var version = await events.current(project: project)
            let ends = ContinuousClock.now + lifetime
            try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
            while !Task.isCancelled, ContinuousClock.now < ends {
                // The server stopping ends every stream at once: an open console must not hold
                // the shutdown until its keep-alive or its lifetime.
                let next = await withGracefulShutdownHandler {
                    await events.next(project: project, after: version, timeout: keepAlive, stream: stream)
                } onGracefulShutdown: {
                    Task { await events.close() }
                }
                // A newer page of the session took this stream's place.
                if next == ConsoleEvents.ended { break }
                // A session that ended (signed out, revoked, expired) hears nothing more.
                guard (try? await AccessTokens.confirm(record, store: store, now: Date())) != nil else { break }
                if next > version {
                    version = next
                    try await writer.write(ByteBuffer(string: "event: changed\ndata: \(next)\n\n"))
                } else {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                }
            }
            try await writer.finish(nil)
        })
    }

    // MARK: Responses

    /// The whole page, or only its main part when the page's script asks for it to refresh.
    private func page(_ request: Request, session: ConsoleSession, title: String, section: ConsolePages.Section, live: Bool = false,
                      main: HTML, status: HTTPResponse.Status = .ok) -> Response {
        if let name = HTTPField.Name("X-Console-Part"), request.headers[name] == "main" { return html(main, status: status) }
        return html(ConsolePages.layout(title: title, session: session, section: section, live: live, main: main), status: status)
    }

    private func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=3600", .xContentTypeOptions: "nosniff"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Every console response: HTML, never framed by another site, no referrer beyond this one,
/// and scripts and styles only from this server.
func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: ConsoleHeaders.page, body: ResponseBody(byteBuffer: ByteBuffer(string: page.description)))
}

func redirect(_ location: String) -> Response {
    var headers = ConsoleHeaders.page
    headers[.location] = location
    return Response(status: .seeOther, headers: headers)
}

enum ConsoleHeaders {
    static let page: HTTPFields = {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return headers
    }()
}

/// Thrown by a page that needs a session the request does not carry.
struct ConsoleRedirect: Error {
    var location: String
}

/// The console's errors as pages, not JSON: a redirect to sign in, or the error and what to do.
struct ConsoleErrorMiddleware: RouterMiddleware {
    typealias Context = FleetRequestContext
    let store: any FleetStore
    let configuration: ServerConfiguration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let moved as ConsoleRedirect {
            return redirect(moved.location)
        } catch let error as APIError {
            let session = try? await ConsoleSession.from(request, overTLS: ConsoleSession.overTLS(request, configuration: configuration), store: store, now: Date())
            return html(ConsolePages.error(status: Int(error.status.code), message: error.message, session: session), status: error.status)
        } catch let error as HTTPError {
            return html(ConsolePages.error(status: Int(error.status.code), message: error.body ?? error.status.reasonPhrase, session: nil),
                        status: error.status)
        } catch {
            context.logger.error("console request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(describing: type(of: error)))"])
            return html(ConsolePages.error(status: 500, message: "The server could not complete the request.", session: nil),
                        status: .internalServerError)
        }
    }
}
