/// How replicas on one database agree which of them runs the controllers (the others serve
/// devices and operators only). `LeaderLease` is the PostgreSQL one.
public protocol LeaderElection: Sendable {
    /// This replica's name, as status and metrics show it.
    var holder: String { get }
    /// Takes leadership if it is free, or keeps it; returns whether this replica leads now.
    func acquire() async throws -> Bool
    /// Keeps leadership; false when it was lost.
    func renew() async throws -> Bool
    /// Gives leadership up, so that another replica takes over without waiting.
    func release() async
}

/// This replica's part among the replicas on one database, as `/metrics` and status show it.
public protocol ReplicaRole: Sendable {
    /// This replica's name.
    var holder: String { get }
    /// Whether it runs the controllers now.
    var isLeading: Bool { get }
    /// How many times it has taken the lead since it started.
    var terms: Int { get }
}

/// `body`, or `TimedOut` once `limit` has passed without its answer.
public func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(limit: limit) }
        return value
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "no answer within \(limit)" }
}
