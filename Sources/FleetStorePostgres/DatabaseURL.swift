import Foundation

/// Where a PostgreSQL database is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`.
///
/// The password may come in the URL, but is better kept out of it (process lists and shell
/// histories show URLs): `passwordFile`, or the `FLOTILLA_DATABASE_PASSWORD` environment variable.
/// `description` never shows it.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String, tls: TLSMode = .prefer) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Whether `text` names a PostgreSQL database rather than a file.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses `text`; errors say what is wrong with it, never echoing a password.
    public init(parsing text: String) throws(DatabaseURLError) {
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw DatabaseURLError("expected postgres://USER@HOST[:PORT]/DATABASE")
        }
        guard let host = components.host, !host.isEmpty else { throw DatabaseURLError("the URL names no host") }
        guard let user = components.user.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw DatabaseURLError("the URL names no user (postgres://USER@\(host)/…)")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw DatabaseURLError("the URL names no database (postgres://\(user)@\(host)/DATABASE)")
        }
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw DatabaseURLError("sslmode is disable, prefer or require, not '\(item.value ?? "")'")
                }
                tls = mode
            default:
                throw DatabaseURLError("unknown parameter '\(item.name)' (only sslmode is understood)")
            }
        }
        self.init(host: host, port: components.port ?? 5432, user: user,
                  password: components.password.flatMap { $0.removingPercentEncoding }, database: database.removingPercentEncoding ?? database,
                  tls: tls)
    }

    /// The URL with the password left out: what logs and errors show.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)\(tls == .prefer ? "" : "?sslmode=\(tls.rawValue)")"
    }
}

public struct DatabaseURLError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
