public import FleetStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Runs the controllers only while this replica leads (`LeaderElection`); the other replicas
/// serve devices and operators and stand by.
///
/// A standby tries to take over every `retry`; the leader renews every `retry` too, and stops its
/// controllers the moment a renewal fails (the lease expired or the database is gone), then
/// stands by again. What a controller does is derived from the store, so whoever leads next
/// resumes where the last one stopped; the lease's fencing keeps a leader that has not yet
/// noticed its loss from writing anything.
public final class ControllerLeadership: Service, ReplicaRole, Sendable {
    private let election: any LeaderElection
    private let controllers: Mutex<[any Service]>
    private let retry: Duration
    private let logger: Logger
    private let state = Mutex(State())

    struct State {
        var leading = false
        var terms = 0
    }

    public init(election: any LeaderElection, controllers: [any Service] = [], retry: Duration = .seconds(1), logger: Logger) {
        self.election = election
        self.controllers = Mutex(controllers)
        self.retry = retry
        self.logger = logger
    }

    /// Adds controllers to run while leading (before `run`): they may need this object first.
    public func manage(_ services: [any Service]) {
        controllers.withLock { $0 += services }
    }

    /// Whether this replica runs the controllers now.
    public var isLeading: Bool { state.withLock { $0.leading } }
    /// How many times this replica has taken the lead.
    public var terms: Int { state.withLock { $0.terms } }
    public var holder: String { election.holder }

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let leads: Bool
            do {
                leads = try await election.acquire()
            } catch {
                logger.warning("cannot reach the database to elect a controller leader", metadata: ["error": "\(error)"])
                leads = false
            }
            if leads { await lead() }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.retry) }
        }
        await election.release()
    }

    /// Runs the controllers until a renewal fails or shutdown begins.
    private func lead() async {
        state.withLock {
            $0.leading = true
            $0.terms += 1
        }
        logger.info("this replica leads the controllers", metadata: ["replica": "\(election.holder)"])
        await withTaskGroup(of: Void.self) { group in
            for controller in controllers.withLock({ $0 }) {
                group.addTask { try? await controller.run() }
            }
            group.addTask { [election, retry, logger] in
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: retry) }
                    if Task.isShuttingDownGracefully || Task.isCancelled { return }
                    do {
                        // A renewal that hangs (a pool starved, a database gone quiet) counts as
                        // lost well before the lease could expire under running controllers.
                        if try await withDeadline(retry * 2, { try await election.renew() }) { continue }
                        logger.warning("this replica lost the controller lease; standing by")
                    } catch {
                        logger.warning("cannot renew the controller lease; standing by", metadata: ["error": "\(error)"])
                    }
                    return
                }
            }
            // The first to return: the renewal loop (lost, or shutting down) or every controller
            // (shutting down). Either way the others stop, and this replica no longer says it
            // leads while a controller finishes what it was doing (its writes are fenced).
            await group.next()
            state.withLock { $0.leading = false }
            group.cancelAll()
        }
    }
}
