import FleetGit
import Foundation
import Glibc
import Synchronization

/// A real PostgreSQL server for the tests of one process, and a fresh database per test.
///
/// `./hack/test.sh` starts one with `hack/postgres.sh` and names it in `FLOTILLA_TEST_POSTGRES`
/// (and stops it when the tests end). Without it (`swift test` run by hand) the first test to ask
/// starts one the same way, and it is stopped when the test process exits.
public final class PostgresServer: Sendable {
    /// The server's own database, as its superuser: `postgres://postgres@127.0.0.1:PORT/postgres`.
    public let adminURL: String

    private init(adminURL: String) {
        self.adminURL = adminURL
    }

    private static let started = Mutex<Result<PostgresServer, SetupFailed>?>(nil)
    nonisolated(unsafe) private static var ownDirectory: String?

    /// The process's server, started on first use.
    public static func shared() throws -> PostgresServer {
        try started.withLock { started in
            if let started { return try started.get() }
            let result: Result<PostgresServer, SetupFailed>
            if let url = ProcessInfo.processInfo.environment["FLOTILLA_TEST_POSTGRES"], !url.isEmpty {
                result = .success(PostgresServer(adminURL: url))
            } else {
                result = Result { () throws(SetupFailed) in try startOwn() }
            }
            started = result
            return try result.get()
        }
    }

    private static func startOwn() throws(SetupFailed) -> PostgresServer {
        let directory = NSTemporaryDirectory() + "flotilla-postgres-\(getpid())-\(UUID().uuidString.prefix(8))"
        let script = TestPackage.root + "/hack/postgres.sh"
        let ran: ChildProcess.Result
        do {
            ran = try ChildProcess.run(script, ["start", directory])
        } catch {
            throw SetupFailed("hack/postgres.sh start: \(error.message)")
        }
        guard ran.status == 0 else { throw SetupFailed("hack/postgres.sh start: \(ran.errorText)") }
        ownDirectory = directory
        atexit {
            guard let directory = PostgresServer.ownDirectory else { return }
            _ = try? ChildProcess.run(TestPackage.root + "/hack/postgres.sh", ["stop", directory])
        }
        return PostgresServer(adminURL: ran.outputText.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A new, empty database on this server; returns its URL.
    /// A new, empty database. `CREATE DATABASE` takes a while and the server makes them one at a
    /// time, so the wait is on a thread of its own: dozens of suites asking at once must not hold
    /// every thread of the test's pool, and with it every other test's clock.
    public func createDatabase() async throws -> String {
        let name = "flotilla_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let server = self
        try await offThePool { try server.psql("CREATE DATABASE \(name)") }
        return adminURL.replacingOccurrences(of: "/postgres", with: "/" + name, options: [.backwards, .anchored])
    }

    /// Runs one SQL command as the superuser, against the server's own database or `database`.
    @discardableResult
    public func psql(_ command: String, database: String? = nil) throws -> String {
        let url = database ?? adminURL
        let ran: ChildProcess.Result
        do {
            ran = try ChildProcess.run("/usr/bin/psql", ["--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1",
                                                         "--dbname=\(url)", "--command=\(command)"])
        } catch {
            throw SetupFailed("psql: \(error.message)")
        }
        guard ran.status == 0 else { throw SetupFailed("psql \(command): \(ran.errorText)") }
        return ran.outputText
    }
}
