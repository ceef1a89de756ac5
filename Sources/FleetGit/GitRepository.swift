import Foundation
import CLibGit2
public import FleetCore

/// A git repository opened through libgit2. Every handle it takes is freed before the call
/// returns; no libgit2 pointer leaves this module.
///
/// Not thread-safe: one repository, one caller at a time (`GitMirror` serialises its own).
public final class GitRepository {
    let handle: OpaquePointer
    /// Where the repository lives, for messages.
    public let path: String

    private init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }

    deinit {
        git_repository_free(handle)
    }

    /// Opens the repository at `path` (a working tree or a bare repository).
    public static func open(_ path: String) throws(GitError) -> GitRepository {
        Libgit2.ensureInitialised()
        var handle: OpaquePointer?
        try Libgit2.check(git_repository_open_ext(&handle, path, 0, nil), "open repository \(path)", code: .invalidRepository)
        return GitRepository(handle: handle!, path: path)
    }

    /// Opens the bare repository at `path`, creating it when absent.
    static func openOrCreateBare(_ path: String) throws(GitError) -> GitRepository {
        Libgit2.ensureInitialised()
        var handle: OpaquePointer?
        if git_repository_open_bare(&handle, path) == 0, let handle {
            return GitRepository(handle: handle, path: path)
        }
        try Libgit2.check(git_repository_init(&handle, path, 1), "create cache repository \(path)")
        return GitRepository(handle: handle!, path: path)
    }

    /// The commit a revision names: a branch, a tag, `HEAD`, `HEAD~2`, a full or short id.
    public func resolve(_ revision: String) throws(GitError) -> CommitID {
        var object: OpaquePointer?
        let operation = "resolve '\(revision)' in \(path)"
        try Libgit2.check(git_revparse_single(&object, handle, revision), operation)
        defer { git_object_free(object) }
        var commit: OpaquePointer?
        try Libgit2.check(git_object_peel(&commit, object, GIT_OBJECT_COMMIT), operation, code: .notFound)
        defer { git_object_free(commit) }
        return CommitID(git_object_id(commit).pointee)
    }

    /// The commit a reference points at, or nil when the reference does not exist.
    func referenceTarget(_ name: String) throws(GitError) -> CommitID? {
        var oid = git_oid()
        let result = git_reference_name_to_id(&oid, handle, name)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        try Libgit2.check(result, "read reference \(name) in \(path)")
        return CommitID(oid)
    }

    /// Points `name` at `commit`, creating or moving it.
    func setReference(_ name: String, to commit: CommitID, message: String) throws(GitError) {
        var reference: OpaquePointer?
        var oid = commit.oid
        try Libgit2.check(git_reference_create(&reference, handle, name, &oid, 1, message), "update reference \(name)")
        git_reference_free(reference)
    }

    func deleteReference(_ name: String) {
        var reference: OpaquePointer?
        guard git_reference_lookup(&reference, handle, name) == 0 else { return }
        _ = git_reference_delete(reference)
        git_reference_free(reference)
    }

    /// Whether `commit` has `ancestor` in its history (or is it).
    func isDescendant(_ commit: CommitID, of ancestor: CommitID) -> Bool {
        if commit == ancestor { return true }
        var a = commit.oid, b = ancestor.oid
        return git_graph_descendant_of(handle, &a, &b) == 1
    }

    /// Whether the object exists here.
    func contains(_ commit: CommitID) -> Bool {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, handle) == 0 else { return false }
        defer { git_odb_free(odb) }
        var oid = commit.oid
        return git_odb_exists(odb, &oid) == 1
    }

    /// The files of a commit's tree, as the fleet loader takes them, without a checkout.
    ///
    /// Only paths the loader reads are loaded; blobs over the size limit are not read, and
    /// symbolic links are reported, not followed.
    public func fleetTree(at commit: CommitID) throws(GitError) -> FleetTree {
        let operation = "read tree of \(commit.short) in \(path)"
        let tree = try commitTree(commit, operation: operation)
        defer { git_tree_free(tree) }
        var odb: OpaquePointer?
        try Libgit2.check(git_repository_odb(&odb, handle), operation)
        defer { git_odb_free(odb) }
        var walk = TreeWalk(repository: handle, objects: odb!)
        let result = withUnsafeMutablePointer(to: &walk) { pointer in
            git_tree_walk(tree, GIT_TREEWALK_PRE, { root, entry, payload in
                let walk = payload!.assumingMemoryBound(to: TreeWalk.self)
                return walk.pointee.visit(root: String(cString: root!), entry: entry!)
            }, pointer)
        }
        if let failure = walk.failure { throw GitError(.failed, operation: operation, message: failure) }
        // Stopped at a limit: the tree says where and why, and the loader refuses it.
        guard walk.tree.overflow == nil else { return walk.tree }
        try Libgit2.check(result, operation)
        return walk.tree
    }

    /// Paths added, removed, changed or renamed between two commits, sorted.
    public func changedPaths(from old: CommitID, to new: CommitID) throws(GitError) -> [String] {
        let operation = "diff \(old.short)..\(new.short) in \(path)"
        let oldTree = try commitTree(old, operation: operation)
        defer { git_tree_free(oldTree) }
        let newTree = try commitTree(new, operation: operation)
        defer { git_tree_free(newTree) }
        var diff: OpaquePointer?
        try Libgit2.check(git_diff_tree_to_tree(&diff, handle, oldTree, newTree, nil), operation)
        defer { git_diff_free(diff) }
        var paths = Set<String>()
        for index in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, index)?.pointee else { continue }
            if let path = delta.old_file.path { paths.insert(String(cString: path)) }
            if let path = delta.new_file.path { paths.insert(String(cString: path)) }
        }
        return paths.sorted()
    }

    /// The first line of `commit`'s message and its author, as people read them in `git log`.
    func commitSummary(_ commit: CommitID) throws(GitError) -> CommitSummary {
        var oid = commit.oid
        var handle: OpaquePointer?
        try Libgit2.check(git_commit_lookup(&handle, self.handle, &oid), "read commit \(commit.short)", code: .notFound)
        defer { git_commit_free(handle) }
        let subject = git_commit_summary(handle).map { String(cString: $0) } ?? ""
        let author = git_commit_author(handle)?.pointee
        return CommitSummary(subject: subject, author: author.flatMap { $0.name.map { String(cString: $0) } } ?? "",
                             time: author.map { Date(timeIntervalSince1970: Double($0.when.time)) })
    }

    func commitTree(_ commit: CommitID, operation: String) throws(GitError) -> OpaquePointer {
        var oid = commit.oid
        var commitHandle: OpaquePointer?
        try Libgit2.check(git_commit_lookup(&commitHandle, handle, &oid), operation, code: .notFound)
        defer { git_commit_free(commitHandle) }
        var tree: OpaquePointer?
        try Libgit2.check(git_commit_tree(&tree, commitHandle), operation)
        return tree!
    }
}

/// State for one `git_tree_walk`, passed to the C callback through its payload pointer.
private struct TreeWalk {
    let repository: OpaquePointer
    /// The object database, to learn a blob's size from its header before loading it.
    let objects: OpaquePointer
    var tree = FleetTree()
    var failure: String?
    var visited = 0

    /// The most of a link's target kept: a path, not content.
    static let maximumLinkTarget = 4_096

    /// 0 to go on, 1 to skip a folder the loader never reads, -1 to stop on an error or at a
    /// limit (the tree's `overflow` says which). Entries under the fleet folders are counted, as
    /// `FleetDirectory` counts them: hidden ones too, though neither reads them.
    mutating func visit(root: String, entry: OpaquePointer) -> Int32 {
        let name = String(cString: git_tree_entry_name(entry))
        let path = root + name
        let mode = git_tree_entry_filemode(entry)
        if !root.isEmpty {
            visited += 1
            guard visited <= FleetTree.maximumEntriesVisited else {
                tree.stop(at: path, "the repository has more than \(FleetTree.maximumEntriesVisited) entries under its fleet folders")
                return -1
            }
        }
        if mode == GIT_FILEMODE_TREE {
            // Descend only into the folders that hold fleet files, never into hidden ones.
            if FleetTree.isHidden(name) { return 1 }
            return root.isEmpty && !FleetTree.folders.contains(where: { $0.folder == name }) ? 1 : 0
        }
        guard FleetTree.isFleetFile(path) else { return 0 }
        if mode == GIT_FILEMODE_COMMIT {
            // A gitlink names a commit of another repository: there is no blob to read.
            tree.add(path, .submodule(commit: git_tree_entry_id(entry).map { CommitID($0.pointee).hex } ?? "?"))
            return tree.overflow == nil ? 0 : -1
        }
        // The size from the object's header, before anything is inflated: a tree may name one
        // huge blob many times, and a blob too large (or a link too long) is never loaded.
        var size = 0
        var type = GIT_OBJECT_ANY
        guard git_odb_read_header(&size, &type, objects, git_tree_entry_id(entry)) == 0 else {
            failure = "cannot read \(path)"
            return -1
        }
        let link = mode == GIT_FILEMODE_LINK
        if link ? size > Self.maximumLinkTarget : size > FleetTree.maximumFileSize {
            tree.add(path, link ? .symlink(target: "(a link of \(size) bytes)") : .tooLarge(size: size))
            return tree.overflow == nil ? 0 : -1
        }
        guard tree.admits(size: size, at: path) else { return -1 }
        var blob: OpaquePointer?
        guard git_blob_lookup(&blob, repository, git_tree_entry_id(entry)) == 0 else {
            failure = "cannot read \(path)"
            return -1
        }
        defer { git_blob_free(blob) }
        let bytes = git_blob_rawcontent(blob).map {
            Array(UnsafeBufferPointer(start: $0.assumingMemoryBound(to: UInt8.self), count: min(Int(git_blob_rawsize(blob)), size)))
        } ?? []
        if link {
            tree.add(path, .symlink(target: String(decoding: bytes, as: UTF8.self)))
        } else {
            tree.addFile(path, bytes: bytes)
        }
        return tree.overflow == nil ? 0 : -1
    }
}
