public import FleetStore
import Foundation
import Logging
import PostgresNIO

/// Which of the replicas on one database runs the controllers: a lease row with an epoch.
///
/// The holder renews it well inside its time to live; another replica takes it only once it has
/// expired (its holder died, hung, or lost the database), and the epoch moves on with every new
/// holder. The epoch is the fencing token: a store fenced by the lease (`PostgresFleetStore.fenced`)
/// checks, inside each of its transactions and with the row share-locked, that this holder and
/// epoch still lead — so a replica that lost the lease cannot deploy, end or abort anything after
/// the next one took over, even if it has not noticed yet.
public actor LeaderLease: LeaderElection {
    public nonisolated let holder: String
    /// How long a lease lasts without renewal: how long a dead leader's controllers stay unrun.
    public nonisolated let timeToLive: Duration
    private let store: PostgresFleetStore
    /// The epoch this replica leads in, while it does.
    public private(set) var epoch: Int64?

    public init(store: PostgresFleetStore, holder: String, timeToLive: Duration = .seconds(6)) {
        self.store = store
        self.holder = holder
        self.timeToLive = timeToLive
    }

    private var seconds: Double { Double(timeToLive.components.seconds) + Double(timeToLive.components.attoseconds) / 1e18 }

    /// Takes the lease when nobody holds it or its holder let it expire; renews it when this
    /// replica holds it. Returns whether this replica leads now.
    public func acquire() async throws -> Bool {
        if epoch != nil, try await renew() { return true }
        let taken = try await store.rows("""
            INSERT INTO leader_lease (id, holder, epoch, expires_at, acquired_at)
            VALUES (1, \(holder), 1, now() + make_interval(secs => \(seconds)), now())
            ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, epoch = leader_lease.epoch + 1,
                expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
            WHERE leader_lease.expires_at < now()
            RETURNING epoch
            """) { try $0["epoch"] as Int64 }
        epoch = taken.first
        return epoch != nil
    }

    /// Extends the lease this replica holds; false (and no longer leading) when it was lost.
    public func renew() async throws -> Bool {
        guard let epoch else { return false }
        let renewed = try await store.rows("""
            UPDATE leader_lease SET expires_at = now() + make_interval(secs => \(seconds))
            WHERE id = 1 AND holder = \(holder) AND epoch = \(epoch) AND expires_at > now() RETURNING epoch
            """) { try $0["epoch"] as Int64 }
        if renewed.isEmpty { self.epoch = nil }
        return !renewed.isEmpty
    }

    /// Gives the lease up (on shutdown), so that another replica takes over at once.
    public func release() async {
        guard let epoch else { return }
        self.epoch = nil
        try? await store.execute("""
            UPDATE leader_lease SET expires_at = now() - interval '1 second' WHERE id = 1 AND holder = \(holder) AND epoch = \(epoch)
            """)
    }

    /// Who leads, as the database says (nil when nobody does): what any replica reports.
    public func leader() async throws -> (holder: String, epoch: Int64)? {
        try await store.rows("SELECT holder, epoch FROM leader_lease WHERE id = 1 AND expires_at > now()") { row in
            (try row["holder"] as String, try row["epoch"] as Int64)
        }.first
    }

    /// Inside a fenced transaction: fails unless this holder and epoch still lead.
    nonisolated func check(_ connection: PostgresConnection, epoch: Int64?, logger: Logger) async throws {
        guard let epoch else { throw StoreError(.unavailable, "this server does not lead the controllers (it holds no lease)") }
        let held = try await PostgresFleetStore.rows(connection, logger, """
            SELECT epoch FROM leader_lease WHERE id = 1 AND holder = \(holder) AND epoch = \(epoch) AND expires_at > now() FOR SHARE
            """) { try $0["epoch"] as Int64 }
        guard !held.isEmpty else {
            throw StoreError(.unavailable, "this server no longer leads the controllers: another replica took over (epoch \(epoch) ended)")
        }
    }
}

extension PostgresFleetStore {
    /// Records `fingerprint` as key `name`'s the first time; returns the fingerprint on record.
    public func pinKey(_ name: String, fingerprint: String) async throws -> String {
        try await execute("INSERT INTO server_key (name, fingerprint) VALUES (\(name), \(fingerprint)) ON CONFLICT DO NOTHING")
        return try await rows("SELECT fingerprint FROM server_key WHERE name = \(name)") { try $0["fingerprint"] as String }.first ?? fingerprint
    }
}
