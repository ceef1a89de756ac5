public import FleetCore
public import Foundation
import Synchronization

/// The fleet repository as the controller reads and writes it. `GitMirror` is the real one: a
/// bare cache of a remote, through libgit2. `MemoryRepository` keeps commits in memory, so the
/// controller's wiring is tested without a git process, a daemon or a disk.
///
/// Calls block (network, object writes); callers keep them off the cooperative pool.
public protocol FleetRepository: Sendable {
    /// Fetches `ref` and resolves it; says whether it moved and whether history was rewritten.
    func fetch(_ ref: String) throws(GitError) -> GitMirror.FetchResult
    /// The files of `commit` for the fleet loader.
    func fleetTree(at commit: CommitID) throws(GitError) -> FleetTree
    func verifySignature(of commit: CommitID, trusted: TrustedKeys) throws(GitError) -> SignatureVerification
    /// Writes `text` as the note on `commit` under `ref`; false when it already said this.
    @discardableResult
    func writeNote(_ text: String, on commit: CommitID, ref: String) throws(GitError) -> Bool
    /// Makes `files` the whole content of `branch`; nil when nothing changed.
    @discardableResult
    func commitFiles(_ files: [String: [UInt8]], to branch: String, message: String) throws(GitError) -> CommitID?
    /// The subject and author of a fetched commit, for the console and the status report.
    func commitSummary(_ commit: CommitID) throws(GitError) -> CommitSummary
}

/// A commit as people name it: the first line of its message, who wrote it, and when.
public struct CommitSummary: Sendable, Equatable {
    public var subject: String
    public var author: String
    public var time: Date?

    public init(subject: String, author: String, time: Date? = nil) {
        self.subject = subject
        self.author = author
        self.time = time
    }
}

extension GitMirror: FleetRepository {}

extension GitMirror {
    public func commitSummary(_ commit: CommitID) throws(GitError) -> CommitSummary {
        try cache.withLock { (cache) throws(GitError) -> CommitSummary in try cache.repository.commitSummary(commit) }
    }
}

/// A fleet repository in memory: commit files to a branch, and read back the notes and status
/// files the controller wrote. The same rules as `GitMirror` where the controller can tell:
/// an unknown ref is `notFound`, the reconciled branch refuses status files, notes and status
/// commits that change nothing report so.
public final class MemoryRepository: FleetRepository {
    struct State {
        var commits: [CommitID: (files: [String: [UInt8]], parent: CommitID?, verdict: SignatureVerification.Verdict)] = [:]
        var branches: [String: CommitID] = [:]
        var seen: [String: CommitID] = [:]
        var notes: [String: [CommitID: String]] = [:]
        var statusFiles: [String: [String: [UInt8]]] = [:]
        var summaries: [CommitID: CommitSummary] = [:]
        var fetched = Set<String>()
        var unreachable = false
        var counter = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Commits `files` (path → text) as the whole tree of `branch`, signed with `verdict` as
    /// far as `verifySignature` is concerned; returns the new commit.
    @discardableResult
    public func commit(_ files: [String: String], to branch: String = "main", signed verdict: SignatureVerification.Verdict = .unsigned,
                       message: String = "A change", author: String = "Operator") -> CommitID {
        state.withLock { state in
            state.counter += 1
            let bytes = files.mapValues { Array($0.utf8) }
            let digest = SHA256.hex(Array("\(state.counter)\n\(files.keys.sorted())\n\(files.values.sorted())".utf8))
            let id = CommitID(String(digest.prefix(40)))!
            state.summaries[id] = CommitSummary(subject: String(message.prefix { $0 != "\n" }), author: author)
            state.commits[id] = (bytes, state.branches[branch], verdict)
            state.branches[branch] = id
            return id
        }
    }

    /// While set, every fetch fails as an unreachable remote does.
    public func setUnreachable(_ unreachable: Bool) {
        state.withLock { $0.unreachable = unreachable }
    }

    /// The note on `commit` under `ref`, as written.
    public func note(on commit: CommitID, ref: String = GitMirror.notesRef) -> String? {
        state.withLock { $0.notes[ref]?[commit] }
    }

    /// The files last committed to a status branch.
    public func statusFiles(on branch: String) -> [String: [UInt8]]? {
        state.withLock { $0.statusFiles[branch] }
    }

    public func fetch(_ ref: String) throws(GitError) -> GitMirror.FetchResult {
        let operation = "fetch \(ref) from memory"
        return try state.withLock { (state) throws(GitError) -> GitMirror.FetchResult in
            if state.unreachable { throw GitError(.unreachable, operation: operation, message: "the remote does not answer") }
            let name = ref.hasPrefix("refs/heads/") ? String(ref.dropFirst("refs/heads/".count)) : ref
            guard let commit = state.branches[name] else {
                throw GitError(.notFound, operation: operation, message: "the remote has no branch or tag '\(ref)'")
            }
            state.fetched.insert(name)
            let previous = state.seen[name]
            state.seen[name] = commit
            var ancestor: CommitID? = commit
            while let current = ancestor, current != previous { ancestor = state.commits[current]?.parent }
            return GitMirror.FetchResult(ref: "refs/heads/\(name)", commit: commit, previous: previous,
                                         forcePushed: previous != nil && ancestor == nil)
        }
    }

    public func fleetTree(at commit: CommitID) throws(GitError) -> FleetTree {
        guard let files = state.withLock({ $0.commits[commit]?.files }) else {
            throw GitError(.notFound, operation: "read tree of \(commit.short)", message: "no such commit")
        }
        var tree = FleetTree()
        for (path, bytes) in files { tree.addFile(path, bytes: bytes) }
        return tree
    }

    public func commitSummary(_ commit: CommitID) throws(GitError) -> CommitSummary {
        guard let summary = state.withLock({ $0.summaries[commit] }) else {
            throw GitError(.notFound, operation: "read commit \(commit.short)", message: "no such commit")
        }
        return summary
    }

    public func verifySignature(of commit: CommitID, trusted: TrustedKeys) throws(GitError) -> SignatureVerification {
        guard let verdict = state.withLock({ $0.commits[commit]?.verdict }) else {
            throw GitError(.notFound, operation: "verify \(commit.short)", message: "no such commit")
        }
        return SignatureVerification(verdict: verdict, signer: verdict == .unsigned ? nil : "memory", detail: "in memory")
    }

    @discardableResult
    public func writeNote(_ text: String, on commit: CommitID, ref: String) throws(GitError) -> Bool {
        state.withLock { state in
            guard state.notes[ref]?[commit] != text else { return false }
            state.notes[ref, default: [:]][commit] = text
            return true
        }
    }

    @discardableResult
    public func commitFiles(_ files: [String: [UInt8]], to branch: String, message: String) throws(GitError) -> CommitID? {
        try state.withLock { (state) throws(GitError) -> CommitID? in
            guard !state.fetched.contains(branch) else {
                throw GitError(.refused, operation: "commit status to \(branch)", message: "'\(branch)' is the branch being reconciled")
            }
            guard state.statusFiles[branch] != files else { return nil }
            state.statusFiles[branch] = files
            state.counter += 1
            return CommitID(String(SHA256.hex(Array("status \(state.counter) \(message)".utf8)).prefix(40)))
        }
    }
}
