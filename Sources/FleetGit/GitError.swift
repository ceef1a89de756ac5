/// A git operation that failed: what was being done, and git's own explanation.
///
/// Printed for people as `fetch refs/heads/main from git://host/fleet: <git's message>`;
/// credentials in URLs are never part of it.
public struct GitError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// The remote could not be reached or refused the connection.
        case unreachable
        /// The branch, tag or revision does not exist.
        case notFound
        /// Credentials were missing or refused.
        case authentication
        /// This libgit2 build cannot speak the URL's protocol.
        case unsupportedTransport
        /// The remote refused a push because it moved meanwhile.
        case rejected
        /// The repository is not in the expected shape (not bare, corrupt, wrong object type).
        case invalidRepository
        /// A request Flotilla refuses on principle, such as writing to the reconciled branch.
        case refused
        /// Any other libgit2 failure.
        case failed
    }

    public var code: Code
    /// What was being done, e.g. "fetch refs/heads/main from git://127.0.0.1/fleet".
    public var operation: String
    /// git's message, or ours where git has none.
    public var message: String

    public init(_ code: Code, operation: String, message: String) {
        self.code = code
        self.operation = operation
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }
}
