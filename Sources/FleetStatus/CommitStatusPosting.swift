public import FleetCore
import Synchronization

/// Where the controller posts commit statuses: `CommitStatusReporter` speaks each forge's API over
/// HTTP; `MemoryForge` records what was posted, for tests of the controller without a forge.
public protocol CommitStatusPosting: Sendable {
    /// Where people read the full report, for the status's link; nil when there is no such page.
    func reportURL(statusBranch: String) async -> String?
    /// The commit's page on the forge, for the console's link; nil without a forge.
    func commitURL(_ commit: String) async -> String?
    /// Posts `state` for `context` on `commit`; whether a request was sent.
    @discardableResult
    func post(commit: String, context: String, state: CommitStatusReporter.State, description: String, targetURL: String?) async throws -> Bool
}

extension CommitStatusReporter: CommitStatusPosting {}

/// A forge in memory: every status posted, in order, and the settings each reporter was made for.
public final class MemoryForge: Sendable {
    public struct Post: Sendable, Equatable {
        public var commit: String
        public var context: String
        public var state: CommitStatusReporter.State
        public var description: String
        public var targetURL: String?
    }

    private struct State {
        var posts: [Post] = []
        var settings: [CommitStatusReporter.Settings] = []
        var failing = false
    }

    private let state = Mutex(State())

    public init() {}

    public var posts: [Post] { state.withLock { $0.posts } }
    public var settings: [CommitStatusReporter.Settings] { state.withLock { $0.settings } }

    /// While set, every post fails as an unreachable forge does.
    public func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    /// A reporter posting here: the controller's `forge` factory.
    public func reporter(_ settings: CommitStatusReporter.Settings) -> any CommitStatusPosting {
        state.withLock { $0.settings.append(settings) }
        return Reporter(forge: self)
    }

    /// The last state posted for `context` on `commit`.
    public func state(of context: String, on commit: String) -> CommitStatusReporter.State? {
        posts.last { $0.commit == commit && $0.context == context }?.state
    }

    fileprivate func record(_ post: Post) throws {
        try state.withLock { state in
            if state.failing { throw CommitStatusReporter.Failure(description: "the forge does not answer") }
            state.posts.append(post)
        }
    }

    private struct Reporter: CommitStatusPosting {
        let forge: MemoryForge

        func reportURL(statusBranch: String) async -> String? { "memory://\(statusBranch)/STATUS.md" }
        func commitURL(_ commit: String) async -> String? { "memory://commit/\(commit)" }

        func post(commit: String, context: String, state: CommitStatusReporter.State, description: String, targetURL: String?) async throws -> Bool {
            try forge.record(Post(commit: commit, context: context, state: state, description: description, targetURL: targetURL))
            return true
        }
    }
}
