import CLibGit2
public import FleetCore
import Foundation
import Synchronization

/// A bare cache of one remote: fetch a branch or tag, notice force-pushes, read trees without a
/// checkout, and write reports (notes, a status branch) back.
///
/// Calls are serialised: one libgit2 operation on the cache at a time, each inside the one lock
/// that owns the repository handle.
public final class GitMirror: Sendable {
    public let remote: RemoteURL
    /// The bare repository holding the cache.
    public let cachePath: String
    let cache: Mutex<Cache>

    /// What only one call at a time may touch: the libgit2 repository and what the mirror has
    /// learnt. The work itself is done here, under the lock.
    final class Cache {
        let remote: RemoteURL
        let credentials: GitCredentials
        let repository: GitRepository
        /// Branches this mirror has fetched to reconcile; reports never write to them.
        var reconciledBranches = Set<String>()

        init(remote: RemoteURL, credentials: GitCredentials, repository: GitRepository) {
            self.remote = remote
            self.credentials = credentials
            self.repository = repository
        }
    }

    /// Opens the cache for `url` under `cacheDirectory`, creating it on first use.
    public init(url: String, cacheDirectory: String, credentials: GitCredentials = GitCredentials()) throws(GitError) {
        let remote = try RemoteURL(url)
        self.remote = remote
        let name = SHA256.hex(Array(url.utf8)).prefix(16)
        cachePath = (cacheDirectory as NSString).appendingPathComponent("\(name).git")
        do {
            try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw GitError(.failed, operation: "create cache directory \(cacheDirectory)", message: error.localizedDescription)
        }
        cache = Mutex(Cache(remote: remote, credentials: credentials, repository: try GitRepository.openOrCreateBare(cachePath)))
    }

    /// What a fetch found.
    public struct FetchResult: Sendable, Equatable {
        /// The full name of the ref on the remote, e.g. `refs/heads/main`.
        public var ref: String
        /// The commit it points at now.
        public var commit: CommitID
        /// The commit seen at the previous fetch, if any.
        public var previous: CommitID?
        /// True when the new commit does not descend from the previous one: history was rewritten.
        public var forcePushed: Bool
        /// Whether anything new was fetched.
        public var changed: Bool { commit != previous }

        public init(ref: String, commit: CommitID, previous: CommitID?, forcePushed: Bool) {
            self.ref = ref
            self.commit = commit
            self.previous = previous
            self.forcePushed = forcePushed
        }
    }

    /// Fetches `ref` (a branch or tag name, or a full `refs/…` name) and resolves it.
    ///
    /// Asks the remote for its refs first and downloads nothing when the ref has not moved, so
    /// polling an unchanged remote costs about one `git ls-remote`. A force-push is reported,
    /// not refused. On failure the cache is left as it was.
    public func fetch(_ ref: String) throws(GitError) -> FetchResult {
        try cache.withLock { (cache) throws(GitError) -> FetchResult in try cache.fetch(ref) }
    }

    /// The files of `commit` for the fleet loader.
    public func fleetTree(at commit: CommitID) throws(GitError) -> FleetTree {
        try cache.withLock { (cache) throws(GitError) -> FleetTree in try cache.fleetTree(at: commit) }
    }

    /// The remote's refs and the objects they point at, as `git ls-remote` lists them.
    public func remoteRefs() throws(GitError) -> [String: CommitID] {
        try cache.withLock { (cache) throws(GitError) -> [String: CommitID] in try cache.remoteRefs() }
    }

    /// The commit `revision` names in the cache (a fetched ref's mirror name, or an id).
    public func resolve(_ revision: String) throws(GitError) -> CommitID {
        try cache.withLock { (cache) throws(GitError) -> CommitID in try cache.resolve(revision) }
    }

    /// Paths that differ between two fetched commits.
    public func changedPaths(from old: CommitID, to new: CommitID) throws(GitError) -> [String] {
        try cache.withLock { (cache) throws(GitError) -> [String] in try cache.changedPaths(from: old, to: new) }
    }

    /// Where a remote ref is kept in the cache.
    static func mirrorRef(_ remoteRef: String) -> String {
        "refs/flotilla/mirror/" + remoteRef.dropFirst("refs/".count)
    }

    /// A `git_strarray` over `strings` for the duration of `body`.
    static func withStrings<Result>(_ strings: [String], _ body: (inout git_strarray) throws(GitError) -> Result) throws(GitError) -> Result {
        let pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        var mutable = pointers
        return try mutable.withUnsafeMutableBufferPointer { (buffer) throws(GitError) -> Result in
            var array = git_strarray(strings: buffer.baseAddress, count: buffer.count)
            return try body(&array)
        }
    }
}

extension GitMirror {
    /// Verifies the signature of a fetched commit; see `GitRepository.verifySignature`.
    public func verifySignature(of commit: CommitID, trusted: TrustedKeys) throws(GitError) -> SignatureVerification {
        try cache.withLock { (cache) throws(GitError) -> SignatureVerification in try cache.verifySignature(of: commit, trusted: trusted) }
    }
}

extension GitMirror.Cache {
    func fetch(_ ref: String) throws(GitError) -> GitMirror.FetchResult {
        let operation = "fetch \(ref) from \(remote)"
        let advertised = try listRemote(operation: operation)
        let candidates = ref.hasPrefix("refs/") ? [ref] : ["refs/heads/\(ref)", "refs/tags/\(ref)"]
        guard let name = candidates.first(where: { advertised[$0] != nil }), let remoteID = advertised[name] else {
            throw GitError(.notFound, operation: operation, message: "the remote has no branch or tag '\(ref)'")
        }
        if name.hasPrefix("refs/heads/") { reconciledBranches.insert(String(name.dropFirst("refs/heads/".count))) }
        let local = GitMirror.mirrorRef(name)
        if try repository.referenceTarget(local) != remoteID {
            try download(["+\(name):\(local)"], operation: operation)
        }
        let commit = try repository.resolve(local)
        let seenRef = "refs/flotilla/seen/" + name.dropFirst("refs/".count)
        let previous = try repository.referenceTarget(seenRef)
        let forcePushed = previous.map { !repository.isDescendant(commit, of: $0) } ?? false
        if previous != commit {
            try repository.setReference(seenRef, to: commit, message: "flotilla: seen")
        }
        return GitMirror.FetchResult(ref: name, commit: commit, previous: previous, forcePushed: forcePushed)
    }

    func fleetTree(at commit: CommitID) throws(GitError) -> FleetTree {
        return try repository.fleetTree(at: commit)
    }

    func remoteRefs() throws(GitError) -> [String: CommitID] {
        return try listRemote(operation: "list refs of \(remote)")
    }

    func resolve(_ revision: String) throws(GitError) -> CommitID {
        if let id = CommitID(revision), repository.contains(id) { return id }
        // `main~1` names the mirrored main; the suffix after the name is kept.
        let nameEnd = revision.firstIndex { "~^@:".contains($0) } ?? revision.endIndex
        let name = revision[..<nameEnd], suffix = revision[nameEnd...]
        for candidate in [GitMirror.mirrorRef("refs/heads/\(name)") + suffix, GitMirror.mirrorRef("refs/tags/\(name)") + suffix, revision] {
            if let id = try? repository.resolve(candidate) { return id }
        }
        throw GitError(.notFound, operation: "resolve '\(revision)' in the cache of \(remote)", message: "not fetched, or no such revision")
    }

    func changedPaths(from old: CommitID, to new: CommitID) throws(GitError) -> [String] {
        return try repository.changedPaths(from: old, to: new)
    }

    /// The remote's refs and what they point at (`git ls-remote`).
    func listRemote(operation: String) throws(GitError) -> [String: CommitID] {
        try withRemote(operation: operation) { (remote, session) throws(GitError) in
            try session.withCallbacks { (callbacks) throws(GitError) in
                try check(git_remote_connect(remote, GIT_DIRECTION_FETCH, &callbacks, nil, nil), operation, session: session)
                defer { git_remote_disconnect(remote) }
                var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
                var count = 0
                try check(git_remote_ls(&heads, &count, remote), operation, session: session)
                var refs: [String: CommitID] = [:]
                for index in 0..<count {
                    guard let head = heads?[index]?.pointee, let name = head.name else { continue }
                    refs[String(cString: name)] = CommitID(head.oid)
                }
                return refs
            }
        }
    }

    /// Downloads with the given refspecs and updates the local refs they name.
    func download(_ refspecs: [String], operation: String) throws(GitError) {
        try withRemote(operation: operation) { (remote, session) throws(GitError) in
            try session.withCallbacks { (callbacks) throws(GitError) in
                var options = git_fetch_options()
                git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
                options.callbacks = callbacks
                options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
                options.prune = GIT_FETCH_NO_PRUNE
                try GitMirror.withStrings(refspecs) { (array) throws(GitError) in
                    try check(git_remote_fetch(remote, &array, &options, "flotilla: fetch"), operation, session: session)
                }
            }
        }
    }

    /// An anonymous remote for one operation, freed afterwards.
    func withRemote<Result>(operation: String, _ body: (OpaquePointer, RemoteSession) throws(GitError) -> Result) throws(GitError) -> Result {
        var remoteHandle: OpaquePointer?
        var options = git_remote_create_options()
        git_remote_create_options_init(&options, UInt32(GIT_REMOTE_CREATE_OPTIONS_VERSION))
        options.repository = repository.handle
        // insteadOf is applied here, not by libgit2, whose rewrite leaks (see URLRewrites).
        options.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF.rawValue
        let rewrites = URLRewrites(repository: repository.handle)
        try Libgit2.check(git_remote_create_with_opts(&remoteHandle, rewrites.fetchURL(remote.text), &options), operation)
        defer { git_remote_free(remoteHandle) }
        if let push = rewrites.pushURL(remote.text) {
            try Libgit2.check(git_remote_set_instance_pushurl(remoteHandle, push), operation)
        }
        return try body(remoteHandle!, RemoteSession(credentials: credentials))
    }

    /// Like `Libgit2.check`, but names a refused SSH host key and a failed connection plainly.
    func check(_ result: Int32, _ operation: String, session: RemoteSession) throws(GitError) {
        guard result < 0 else { return }
        if let problem = session.hostKeyProblem ?? session.authenticationProblem {
            throw GitError(.authentication, operation: operation, message: problem)
        }
        var error = Libgit2.error(result, operation)
        let lowered = error.message.lowercased()
        if error.code == .failed, ["connect", "resolve address", "connection refused", "could not find repository", "does not appear"].contains(where: lowered.contains) {
            error.code = .unreachable
        }
        throw error
    }

    func verifySignature(of commit: CommitID, trusted: TrustedKeys) throws(GitError) -> SignatureVerification {
        return try repository.verifySignature(of: commit, trusted: trusted)
    }
}
