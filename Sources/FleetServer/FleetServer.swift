public import FleetStore
import Foundation
import Prometheus
import Synchronization
public import ServiceLifecycle
public import Hummingbird
public import Logging

/// The fleet server: the agent API, the operator API, and the services behind them.
public enum FleetServer {
    /// Builds the application; run it with `runService()` or in a `ServiceGroup`.
    public static func buildApplication(configuration: ServerConfiguration, store: any FleetStore,
                                        tokens: DeviceTokens, board: AssignmentBoard = AssignmentBoard(), services: [any Service] = [],
                                        controllers: ControllerSet = ControllerSet(), secrets: SecretBox? = nil,
                                        registry: RegistryEvents = RegistryEvents(), alertNotifier: (any AlertNotifying)? = nil,
                                        logger: Logger = Logger(label: "flotilla.server")) -> some ApplicationProtocol {
        let directory = DeviceDirectory(store: store, events: registry)
        let metrics = ServerMetrics()
        let ingest = HeartbeatIngest(store: store, batchSize: configuration.batchSize,
                                     interval: .milliseconds(configuration.batchMilliseconds), metrics: metrics)
        let events = ConsoleController.events(controllers: controllers, configuration: configuration)
        let alerts = AlertEngine(store: store, controllers: controllers, secrets: secrets, notifier: alertNotifier,
                                 allowedReceivers: configuration.alertReceiverAllow, logger: Logger(label: "flotilla.alerts"),
                                 minimumSilence: configuration.offlineAfterSeconds)
        let router = buildRouter(configuration: configuration, store: store, tokens: tokens, directory: directory, ingest: ingest,
                                 board: board, metrics: metrics, controllers: controllers, secrets: secrets, consoleEvents: events,
                                 alerts: alerts)
        let responder = FleetResponder(router: router.buildResponder(), metrics: metrics)
        // Idle and slow clients are cut off, and never hold more descriptors than the cap.
        return Application(responder: responder,
                           server: .http1(configuration: .init(
                               additionalChannelHandlers: [RequestDeadlineHandler(deadline: .seconds(Int64(configuration.requestTimeoutSeconds)))],
                               idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)))),
                           configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "flotilla",
                                                availableConnectionsDelegate: .maximum(configuration.maximumConnections, logger: logger)),
                           services: [ingest, alerts, LongPollCloser(board: board), MemoryTrim(),
                                      HeartbeatRetention(store: store, retention: configuration.heartbeatRetention,
                                                         metricsRetention: configuration.metricsRetention,
                                                         every: configuration.retentionCheckInterval)] + services,
                           logger: logger)
    }

    static func buildRouter(configuration: ServerConfiguration, store: any FleetStore, tokens: DeviceTokens,
                            directory: DeviceDirectory, ingest: HeartbeatIngest, board: AssignmentBoard,
                            metrics: ServerMetrics, controllers: ControllerSet = ControllerSet(),
                            secrets: SecretBox? = nil, consoleEvents: ConsoleEvents? = nil,
                            alerts: AlertEngine? = nil) -> Router<FleetRequestContext> {
        // Metrics and errors are the responder's (`FleetResponder`), around the whole router;
        // the router's own 404s and 405s are translated by a middleware added after every route.
        let router = Router(context: FleetRequestContext.self)
        let limiter = DeviceRequestLimiter(configuration.deviceRequests, enrollments: configuration.enrollments)
        router.get("healthz") { _, _ in Response(status: .ok) }
        router.get("api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.get("metrics") { _, _ in
            let window = Duration.seconds(configuration.offlineAfterSeconds)
            metrics.devicesOnline.set(Double(directory.onlineCount(within: window)))
            metrics.recordControllers(await controllers.passMetrics())
            if let role = configuration.leadership { metrics.recordLeadership(role) }
            if let alerts { metrics.recordAlerts(await alerts.firingCounts(), dropped: alerts.dropped) }
            metrics.recordLongPolls(held: await board.waiting, deferred: await board.declined)
            metrics.recordLimited(limiter.refused)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        let remoteAccess = RemoteAccessCache(controllers: controllers)
        AgentController(store: store, tokens: tokens, directory: directory, ingest: ingest, board: board, configuration: configuration,
                        limiter: limiter, controllers: controllers, secrets: secrets, remoteAccess: remoteAccess, alerts: alerts)
            .addRoutes(to: router.group("agent/v1"))
        // Every operator route is authenticated here, before its handler: none can forget.
        let operators = router.group("api/v1").add(middleware: OperatorAuthMiddleware(store: store))
        OperatorController(store: store, directory: directory, configuration: configuration, alerts: alerts).addRoutes(to: operators)
        DeploymentController(store: store, board: board, configuration: configuration, secrets: secrets).addRoutes(to: operators)
        SecretController(store: store, box: secrets, configuration: configuration).addRoutes(to: operators)
        RemoteController(store: store, board: board, access: remoteAccess, configuration: configuration)
            .addRoutes(to: operators)
        ControllerRoutes(controllers: controllers, store: store, replica: configuration.leadership).addRoutes(to: router, operators: operators)
        ConsoleController(store: store, board: board, controllers: controllers, configuration: configuration, events: consoleEvents, limiter: limiter)
            .addRoutes(to: router)
        let routeTable = RouteTable()
        routeTable.set(router.routes.map { ($0.method.rawValue, $0.path.description) })
        router.add(middleware: UnmatchedMiddleware(routes: routeTable))
        return router
    }
}

/// The router's routes as method and path pattern, so a path that exists answers another
/// method's request with 405 and the methods it takes, as HTTP says, rather than 404.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: String, segments: [Substring])]>([])

    func set(_ routes: [(method: String, path: String)]) {
        self.routes.withLock { $0 = routes.map { ($0.method, $0.path.split(separator: "/")) } }
    }

    /// The methods whose pattern matches `path` (`:name` or `{name}` matches any one segment).
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        return routes.withLock { routes in
            Set(routes.filter { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { pattern, segment in
                        pattern.hasPrefix(":") || (pattern.hasPrefix("{") && pattern.hasSuffix("}")) || pattern == segment
                    }
            }.map(\.method)).sorted()
        }
    }
}

/// The server's responder: the router's, with every request counted and timed, and every error
/// turned into the API's JSON error — a client's mistake is a 4xx that says why, anything else a
/// 500 that says nothing internal.
///
/// Hummingbird's router answers an `HTTPResponseError` (`APIError`, `HTTPError`) itself; what
/// reaches this responder is anything else, which it answers as the API's JSON error — a
/// duplicate is a 409, a secret gone missing a 409, anything unexpected a 500 that logs only the
/// error's type. It answers rather than throws: above it, Hummingbird turns any error into an
/// empty 500.
///
/// One frame around the router, where two router middlewares took three: a waiting long-poll
/// holds every frame between the server and its handler (see `AgentController.assignments`), and
/// nearly every device has one waiting. The work on either side is in plain functions, whose
/// locals are on the thread's stack, not in that frame.
struct FleetResponder: HTTPResponder {
    typealias Context = FleetRequestContext
    let router: RouterResponder<FleetRequestContext>
    let metrics: ServerMetrics

    func respond(to request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await router.respond(to: request, context: context)
        } catch {
            response = answer(error, request: request, context: context)
        }
        return answered(response, since: start)
    }

    @inline(never)
    private func answered(_ response: Response, since start: ContinuousClock.Instant) -> Response {
        metrics.recordRequest(status: response.status.code, duration: ContinuousClock.now - start)
        return response
    }

    @inline(never)
    private func answer(_ error: any Error, request: Request, context: Context) -> Response {
        let error = APIError.translating(error, request: request, context: context, routes: nil)
        return (try? error.response(from: request, context: context)) ?? Response(status: .internalServerError)
    }
}

/// Added to the router after every route, so it wraps only the router's not-found responder: a
/// path that exists answers another method with 405 and `Allow`, any other with the API's 404.
struct UnmatchedMiddleware: RouterMiddleware {
    typealias Context = FleetRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            throw APIError.translating(error, request: request, context: context, routes: routes)
        }
    }
}

extension APIError {
    /// `error` as the API's JSON error. With `routes`, the router's 404 for a path it has under
    /// other methods is a 405.
    @inline(never)
    static func translating(_ error: any Error, request: Request, context: FleetRequestContext, routes: RouteTable?) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as HTTPError:
            let allowed = error.status == .notFound ? routes?.methods(for: request.uri.path) ?? [] : []
            if !allowed.isEmpty {
                var refused = APIError(.methodNotAllowed, "method_not_allowed", "\(request.method) is not one of the methods this path takes")
                refused.allow = allowed
                return refused
            }
            let code = error.status == .notFound ? "not_found" : error.status == .methodNotAllowed ? "method_not_allowed" : "bad_request"
            return APIError(error.status, code, error.body ?? error.status.reasonPhrase)
        case let error as Deployer.MissingSecret:
            return APIError(.conflict, "secret_not_set", error.description)
        case let error as StoreError where error.code == .duplicate:
            return APIError(.conflict, "conflict", "that already exists")
        default:
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(describing: type(of: error)))"])
            return APIError(.internalServerError, "internal", "the server could not complete the request")
        }
    }
}
