import Synchronization

/// Decoded deployments by id, valid while their `aborted` flag is what was decoded: a
/// deployment's stored body changes only when it is aborted, and the controller lists up to
/// 10,000 of them on every pass. Bounded: it starts over past 50,000 entries.
public final class DeploymentCache: Sendable {
    private let records = Mutex<[String: DeploymentRecord]>([:])

    public init() {}

    public func record(id: String, aborted: Bool) -> DeploymentRecord? {
        records.withLock { $0[id].flatMap { $0.aborted == aborted ? $0 : nil } }
    }

    public func keep(_ record: DeploymentRecord) {
        records.withLock { records in
            if records.count >= 50_000 { records.removeAll(keepingCapacity: true) }
            records[record.id] = record
        }
    }
}
