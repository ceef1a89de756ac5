import CLibGit2

/// The process-wide libgit2 runtime: initialised once, and the checks that turn return codes
/// into `GitError`s.
enum Libgit2 {
    private static let initialised: Bool = {
        git_libgit2_init()
        _ = flotilla_git_set_owner_validation(0)
        return true
    }()

    static func ensureInitialised() {
        _ = initialised
    }

    /// Which transports this libgit2 build has.
    static var supportsHTTPS: Bool { git_libgit2_features() & Int32(GIT_FEATURE_HTTPS.rawValue) != 0 }
    static var supportsSSH: Bool { git_libgit2_features() & Int32(GIT_FEATURE_SSH.rawValue) != 0 }

    /// Throws a `GitError` carrying libgit2's last message when `result` is an error code.
    static func check(_ result: Int32, _ operation: @autoclosure () -> String,
                      code: GitError.Code? = nil) throws(GitError) {
        guard result < 0 else { return }
        throw error(result, operation())
    }

    static func error(_ result: Int32, _ operation: String, code: GitError.Code? = nil) -> GitError {
        var message = "libgit2 error \(result)"
        if let last = git_error_last(), let text = last.pointee.message {
            message = String(cString: text)
        }
        let classified: GitError.Code
        switch result {
        case GIT_ENOTFOUND.rawValue: classified = .notFound
        case GIT_EAUTH.rawValue: classified = .authentication
        case GIT_ENONFASTFORWARD.rawValue: classified = .rejected
        default: classified = code ?? (message.contains("failed to connect") || message.contains("could not connect") ? .unreachable : .failed)
        }
        return GitError(code ?? classified, operation: operation, message: RemoteURL.redact(message))
    }
}
