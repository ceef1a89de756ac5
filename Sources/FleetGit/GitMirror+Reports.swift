import CLibGit2
import Foundation
import Synchronization

/// Reports written into the repository itself, for forges without a status API and for people
/// who live in git: a note per reconciled commit, and a status branch of files.
extension GitMirror {
    /// The notes ref Flotilla writes.
    public static let notesRef = "refs/notes/flotilla"

    /// Who Flotilla's notes and status commits are by.
    public static let author = (name: "Flotilla", email: "flotilla@localhost")

    /// How often a push is tried again after the remote moved under it.
    static let pushAttempts = 6

    /// Writes `text` as the note on `commit` under `ref` (`refs/notes/flotilla`) and pushes it,
    /// replacing an older note. Returns false, touching nothing, when the note already says this.
    @discardableResult
    public func writeNote(_ text: String, on commit: CommitID, ref: String = notesRef) throws(GitError) -> Bool {
        try cache.withLock { (cache) throws(GitError) -> Bool in try cache.writeNote(text, on: commit, ref: ref) }
    }

    /// The note on `commit` in the cache, if any.
    public func note(on commit: CommitID, ref: String = notesRef) throws(GitError) -> String? {
        try cache.withLock { (cache) throws(GitError) -> String? in try cache.note(on: commit, ref: ref) }
    }

    /// Commits `files` (name → bytes, at the root of the tree) as the whole content of `branch`
    /// and pushes it. Returns nil, making no commit, when the tree would not change.
    ///
    /// Refuses to write to a branch this mirror reconciles.
    @discardableResult
    public func commitFiles(_ files: [String: [UInt8]], to branch: String, message: String) throws(GitError) -> CommitID? {
        try cache.withLock { (cache) throws(GitError) -> CommitID? in try cache.commitFiles(files, to: branch, message: message) }
    }

    private static func sameObject(_ a: git_oid, _ b: git_oid) -> Bool {
        var a = a, b = b
        return git_oid_equal(&a, &b) == 1
    }
}

extension GitMirror.Cache {
    @discardableResult
    func writeNote(_ text: String, on commit: CommitID, ref: String) throws(GitError) -> Bool {
        let operation = "write note on \(commit.short) to \(remote)"
        return try retryingPush(operation: operation) { () throws(GitError) -> String? in
            try download(["+\(ref):\(ref)"], operation: operation)
            if try readNote(on: commit, ref: ref) == text { return nil }
            var signature: UnsafeMutablePointer<git_signature>?
            try Libgit2.check(git_signature_now(&signature, GitMirror.author.name, GitMirror.author.email), operation)
            defer { git_signature_free(signature) }
            var noteID = git_oid()
            var target = commit.oid
            try Libgit2.check(git_note_create(&noteID, repository.handle, ref, signature, signature, &target, text, 1), operation)
            return "\(ref):\(ref)"
        }
    }

    func note(on commit: CommitID, ref: String) throws(GitError) -> String? {
        return try readNote(on: commit, ref: ref)
    }

    private func readNote(on commit: CommitID, ref: String) throws(GitError) -> String? {
        var note: OpaquePointer?
        var target = commit.oid
        let result = git_note_read(&note, repository.handle, ref, &target)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        try Libgit2.check(result, "read note on \(commit.short)")
        defer { git_note_free(note) }
        return git_note_message(note).map { String(cString: $0) }
    }

    @discardableResult
    func commitFiles(_ files: [String: [UInt8]], to branch: String, message: String) throws(GitError) -> CommitID? {
        let operation = "commit status to \(branch) on \(remote)"
        guard !reconciledBranches.contains(branch) else {
            throw GitError(.refused, operation: operation, message: "'\(branch)' is the branch being reconciled; status goes to another branch")
        }
        if let bad = files.keys.first(where: { $0.isEmpty || $0.contains("/") || $0.hasPrefix(".") }) {
            throw GitError(.refused, operation: operation, message: "'\(bad)' is not a plain file name")
        }
        let remoteRef = "refs/heads/\(branch)"
        let local = GitMirror.mirrorRef(remoteRef)
        let pushRef = "refs/flotilla/push/\(branch)"
        var made: CommitID?
        let pushed = try retryingPush(operation: operation) { () throws(GitError) -> String? in
            try download(["+\(remoteRef):\(local)"], operation: operation)
            let parent = try repository.referenceTarget(local)
            let tree = try writeTree(files, operation: operation)
            if let parent, GitMirror.sameObject(try treeID(of: parent, operation: operation), tree) { return nil }
            let commit = try writeCommit(tree: tree, parent: parent, message: message, operation: operation)
            try repository.setReference(pushRef, to: commit, message: "flotilla: status")
            made = commit
            return "\(pushRef):\(remoteRef)"
        }
        guard pushed, let made else { return nil }
        try repository.setReference(local, to: made, message: "flotilla: pushed status")
        return made
    }

    /// Prepares and pushes until the remote accepts or nothing needs pushing; `prepare` returns
    /// the refspec to push, or nil when there is nothing to do. A push refused because the
    /// remote moved is prepared again on top of what is there now.
    private func retryingPush(operation: String, _ prepare: () throws(GitError) -> String?) throws(GitError) -> Bool {
        var lastRejection = ""
        for attempt in 0..<GitMirror.pushAttempts {
            guard let refspec = try prepare() else { return false }
            do {
                try push(refspec, operation: operation)
                return true
            } catch where error.code == .rejected {
                lastRejection = error.message
                // Spread out competing writers before trying again.
                usleep(UInt32.random(in: 20_000...100_000) * UInt32(attempt + 1))
            }
        }
        throw GitError(.rejected, operation: operation, message: "the remote kept moving; gave up after \(GitMirror.pushAttempts) tries (\(lastRejection))")
    }

    private func push(_ refspec: String, operation: String) throws(GitError) {
        try withRemote(operation: operation) { (remote, session) throws(GitError) in
            try session.withCallbacks { (callbacks) throws(GitError) in
                var options = git_push_options()
                git_push_options_init(&options, UInt32(GIT_PUSH_OPTIONS_VERSION))
                options.callbacks = callbacks
                try GitMirror.withStrings([refspec]) { (array) throws(GitError) in
                    let result = git_remote_push(remote, &array, &options)
                    if result < 0 {
                        var error = Libgit2.error(result, operation)
                        let lowered = error.message.lowercased()
                        if lowered.contains("non-fast") || lowered.contains("not present locally") || lowered.contains("fastforward") {
                            error.code = .rejected
                        }
                        if error.code != .rejected { try check(result, operation, session: session) }
                        throw error
                    }
                }
                if let (ref, reason) = session.rejections.first {
                    throw GitError(.rejected, operation: operation, message: "the remote refused \(ref): \(reason)")
                }
            }
        }
    }

    private func writeTree(_ files: [String: [UInt8]], operation: String) throws(GitError) -> git_oid {
        var builder: OpaquePointer?
        try Libgit2.check(git_treebuilder_new(&builder, repository.handle, nil), operation)
        defer { git_treebuilder_free(builder) }
        for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
            var blob = git_oid()
            try Libgit2.check(bytes.withUnsafeBytes { git_blob_create_from_buffer(&blob, repository.handle, $0.baseAddress, $0.count) }, operation)
            try Libgit2.check(git_treebuilder_insert(nil, builder, name, &blob, GIT_FILEMODE_BLOB), operation)
        }
        var tree = git_oid()
        try Libgit2.check(git_treebuilder_write(&tree, builder), operation)
        return tree
    }

    private func treeID(of commit: CommitID, operation: String) throws(GitError) -> git_oid {
        let tree = try repository.commitTree(commit, operation: operation)
        defer { git_tree_free(tree) }
        return git_tree_id(tree).pointee
    }

    private func writeCommit(tree: git_oid, parent: CommitID?, message: String, operation: String) throws(GitError) -> CommitID {
        var treeID = tree
        var treeHandle: OpaquePointer?
        try Libgit2.check(git_tree_lookup(&treeHandle, repository.handle, &treeID), operation)
        defer { git_tree_free(treeHandle) }
        var parentHandle: OpaquePointer?
        if let parent {
            var parentID = parent.oid
            try Libgit2.check(git_commit_lookup(&parentHandle, repository.handle, &parentID), operation)
        }
        defer { git_commit_free(parentHandle) }
        var signature: UnsafeMutablePointer<git_signature>?
        try Libgit2.check(git_signature_now(&signature, GitMirror.author.name, GitMirror.author.email), operation)
        defer { git_signature_free(signature) }
        var commit = git_oid()
        var parents: [OpaquePointer?] = parentHandle.map { [$0] } ?? []
        try Libgit2.check(git_commit_create(&commit, repository.handle, nil, signature, signature, "UTF-8", message, treeHandle,
                                            parents.count, &parents), operation)
        return CommitID(commit)
    }
}
