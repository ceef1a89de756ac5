import FleetStore
import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// Running statements and reading their rows, with PostgreSQL's errors as `StoreError`s.
extension PostgresFleetStore {
    /// `body` in one transaction: committed when it returns, rolled back when it throws. A
    /// transaction PostgreSQL chose as a deadlock's victim (or failed to serialize) ran nothing,
    /// and is run again, twice at most.
    func write<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                let fence = self.fence, epoch = await fence?.epoch, logger = self.logger
                return try await client.withTransaction(logger: logger) { connection in
                    try await fence?.check(connection, epoch: epoch, logger: logger)
                    return try await body(connection)
                }
            } catch {
                attempt += 1
                if attempt < 3, Self.isTransient(error) {
                    try await Task.sleep(for: .milliseconds(5 * attempt))
                    continue
                }
                throw Self.storeError(error)
            }
        }
    }

    /// A deadlock victim or a serialization failure: the transaction may simply run again.
    static func isTransient(_ error: any Error) -> Bool {
        var error = error
        if let transaction = error as? PostgresTransactionError {
            error = transaction.closureError ?? transaction.commitError ?? error
        }
        guard let psql = error as? PSQLError, let state = psql.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// One statement, on its own.
    func execute(_ query: PostgresQuery) async throws {
        _ = try await rows(query) { _ in () }
    }

    /// One statement's rows, each made into a value by `make`.
    func rows<T>(_ query: PostgresQuery, _ make: (Columns) throws -> T) async throws -> [T] {
        do {
            return try await Self.collect(try await client.query(query, logger: logger), make)
        } catch {
            throw Self.storeError(error)
        }
    }

    /// One statement's rows inside a transaction.
    static func rows<T>(_ connection: PostgresConnection, _ logger: Logger, _ query: PostgresQuery, _ make: (Columns) throws -> T)
        async throws -> [T] {
        try await collect(try await connection.query(query, logger: logger), make)
    }

    private static func collect<T>(_ sequence: PostgresRowSequence, _ make: (Columns) throws -> T) async throws -> [T] {
        var values: [T] = []
        for try await row in sequence {
            values.append(try make(Columns(row: row.makeRandomAccess())))
        }
        return values
    }

    /// What went wrong, as the store's callers understand it: a violated constraint is a
    /// duplicate; a corrupt row stays corrupt; anything else means the database is unavailable.
    static func storeError(_ error: any Error) -> StoreError {
        var error = error
        if let transaction = error as? PostgresTransactionError {
            error = transaction.closureError ?? transaction.commitError ?? transaction.beginError ?? transaction.rollbackError ?? error
        }
        if let store = error as? StoreError { return store }
        if let psql = error as? PSQLError, let state = psql.serverInfo?[.sqlState], state.hasPrefix("23") {
            return StoreError(.duplicate, psql.serverInfo?[.message] ?? "constraint violated")
        }
        return StoreError(.unavailable, describe(error))
    }

    /// PostgreSQL's own words for an error (postgres-nio's description hides them in release builds).
    static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                return message + (psql.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = psql.underlying { return "\(psql.code): \(underlying)" }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}

/// A row's columns by name.
struct Columns {
    let row: PostgresRandomAccessRow

    subscript<T: PostgresDecodable>(_ name: String) -> T {
        get throws {
            do {
                return try row[name].decode(T.self)
            } catch {
                throw StoreError(.corrupt, "column \(name) does not read as \(T.self): \(error)")
            }
        }
    }

    func date(_ name: String) throws -> Date { Date(timeIntervalSince1970: try self[name] as Double) }
    func optionalDate(_ name: String) throws -> Date? { (try self[name] as Double?).map(Date.init(timeIntervalSince1970:)) }
}

extension DatabaseURL {
    var connectionConfiguration: PostgresConnection.Configuration {
        get throws {
            var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database,
                                                                 tls: try connectionTLS)
            configuration.options.connectTimeout = .seconds(10)
            return configuration
        }
    }

    var clientConfiguration: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS = switch self.tls {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
        return PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
    }

    /// TLS as asked, or an error: never plain text in its place.
    private var connectionTLS: PostgresConnection.Configuration.TLS {
        get throws {
            switch tls {
            case .disable: return .disable
            case .prefer: return .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: return .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        }
    }
}
