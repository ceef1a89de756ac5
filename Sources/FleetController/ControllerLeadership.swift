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
    private let controllers: [any Service]
    private let retry: Duration
    private let logger: Logger
    private let state = Mutex(State())

    struct State {
        var leading = false
        var terms = 0
    }

    public init(election: any LeaderElection, controllers: [any Service], retry: Duration = .seconds(2), logger: Logger) {
        self.election = election
        self.controllers = controllers
        self.retry = retry
        self.logger = logger
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
            for controller in controllers {
                group.addTask { try? await controller.run() }
            }
            group.addTask { [election, retry, logger] in
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: retry) }
                    if Task.isShuttingDownGracefully || Task.isCancelled { return }
                    do {
                        if try await election.renew() { continue }
                        logger.warning("this replica lost the controller lease; standing by")
                    } catch {
                        logger.warning("cannot renew the controller lease; standing by", metadata: ["error": "\(error)"])
                    }
                    return
                }
            }
            // The first to return: the renewal loop (lost, or shutting down) or every controller
            // (shutting down). Either way the others stop.
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.leading = false }
    }
}
