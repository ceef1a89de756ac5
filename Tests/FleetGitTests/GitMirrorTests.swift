import FleetCore
@testable import FleetGit
import FleetTesting
import Foundation
import Testing

/// A mirror against a real git daemon on loopback, fed by commits made with the git CLI.
@Suite(.serialized)
struct GitMirrorTests {
    let daemon: GitDaemon
    let cache: String

    init() throws {
        daemon = try GitDaemon()
        cache = daemon.root + "/cache"
    }

    static let template = TestPackage.template

    @Test func fetchesAndReadsTheTreeWithoutACheckout() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        let head = try work.git("rev-parse", "HEAD")
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)

        let first = try mirror.fetch("main")
        #expect(first.ref == "refs/heads/main")
        #expect(first.commit.hex == head)
        #expect(first.previous == nil)
        #expect(!first.forcePushed)

        let fleet = try FleetLoader.load(try mirror.fleetTree(at: first.commit))
        #expect(fleet.fleet.project == "acme-climate")
        #expect(fleet.apps.map(\.name) == ["telemetry", "thermostat"])

        let again = try mirror.fetch("main")
        #expect(again.commit == first.commit)
        #expect(again.previous == first.commit)
        #expect(!again.changed)

        // What the console and status.json show of it: the subject line and the author.
        try work.git("commit", "--quiet", "--allow-empty", "-m", "thermostat 2.5.0 for the canary\n\nWhy: the fan curve.")
        try work.git("push", "--quiet", "origin", "main")
        let next = try mirror.fetch("main")
        let summary = try mirror.commitSummary(next.commit)
        #expect(summary.subject == "thermostat 2.5.0 for the canary")
        #expect(summary.author == (try work.git("log", "-1", "--format=%an")))
        #expect(summary.time.map { abs($0.timeIntervalSinceNow) < 300 } == true)
    }

    /// git's url.<base>.insteadOf in the mirror's configuration is honoured (the mirror applies
    /// it itself; libgit2's own rewrite leaks memory on every fetch).
    @Test func fetchesThroughAnInsteadOfRewrite() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        let mirror = try GitMirror(url: "git://fleet-alias.invalid/fleet.git", cacheDirectory: cache)
        let repositories = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".git") }
        #expect(repositories.count == 1)
        let base = daemon.url("fleet").replacingOccurrences(of: "fleet.git", with: "")
        let configured = Process()
        configured.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        configured.arguments = ["config", "--file", cache + "/" + repositories[0] + "/config",
                                "url.\(base).insteadOf", "git://fleet-alias.invalid/"]
        try configured.run()
        configured.waitUntilExit()
        #expect(configured.terminationStatus == 0)
        #expect(try mirror.fetch("main").commit.hex == (try work.git("rev-parse", "HEAD")))
    }

    @Test(arguments: [
        // (rules, url, fetch URL, push URL)
        ([("url.git://mirror/.insteadof", "gh:")], "gh:acme/fleet", "git://mirror/acme/fleet", nil),
        ([("url.git://mirror/.insteadof", "gh:")], "https://example.com/fleet", "https://example.com/fleet", nil),
        // The longest matching prefix wins, whatever the order.
        ([("url.short/.insteadof", "https://h/"), ("url.long/.insteadof", "https://h/acme/")], "https://h/acme/x", "long/x", nil),
        ([("url.long/.insteadof", "https://h/acme/"), ("url.short/.insteadof", "https://h/")], "https://h/acme/x", "long/x", nil),
        // pushInsteadOf rewrites the push URL only; the base may hold dots.
        ([("url.ssh://git@h.example.com/.pushinsteadof", "https://h.example.com/")], "https://h.example.com/fleet",
         "https://h.example.com/fleet", "ssh://git@h.example.com/fleet"),
        // Other url.* keys and empty prefixes are not rules.
        ([("url.x.other", "gh:"), ("url.y.insteadof", "")], "gh:fleet", "gh:fleet", nil),
    ] as [([(String, String)], String, String, String?)])
    func rewritesURLsAsGitDoes(_ entries: [(String, String)], _ url: String, _ fetch: String, _ push: String?) {
        let rewrites = URLRewrites(entries: entries.map { (name: $0.0, value: $0.1) })
        #expect(rewrites.fetchURL(url) == fetch)
        #expect(rewrites.pushURL(url) == push)
    }

    @Test func seesANewCommitAndTheChangedPaths() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let before = try mirror.fetch("main").commit
        let thermostat = try String(contentsOfFile: work.path + "/apps/thermostat.yaml", encoding: .utf8)
        try work.write("apps/thermostat.yaml", thermostat.replacingOccurrences(of: "version: 2.5.0", with: "version: 2.5.1"))
        try work.write("groups/oslo.yaml", "kind: Group\nname: oslo\nselector: site=oslo\n")
        try work.commitAll("Bump thermostat canary to 2.5.1")
        try work.git("push", "--quiet", "origin", "main")

        let after = try mirror.fetch("main")
        #expect(after.changed)
        #expect(after.previous == before)
        #expect(!after.forcePushed)
        #expect(try mirror.changedPaths(from: before, to: after.commit) == ["apps/thermostat.yaml", "groups/oslo.yaml"])
        let fleet = try FleetLoader.load(try mirror.fleetTree(at: after.commit))
        #expect(fleet.apps.first { $0.name == "thermostat" }?.targets.first?.version == "2.5.1")
    }

    @Test func reportsAForcePushWithoutFailing() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        try work.write("notes.txt", "one\n")
        try work.commitAll("One more")
        try work.git("push", "--quiet", "origin", "main")
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let seen = try mirror.fetch("main").commit

        try work.git("reset", "--quiet", "--hard", "HEAD~1")
        try work.write("notes.txt", "rewritten\n")
        let rewritten = try work.commitAll("Rewritten history")
        try work.git("push", "--quiet", "--force", "origin", "main")

        let result = try mirror.fetch("main")
        #expect(result.commit.hex == rewritten)
        #expect(result.previous == seen)
        #expect(result.forcePushed)
        // The next fetch is a normal one again.
        #expect(try !mirror.fetch("main").forcePushed)
    }

    @Test func fetchesATag() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        try work.git("tag", "-a", "release-1", "-m", "Release 1")
        try work.git("push", "--quiet", "origin", "release-1")
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let result = try mirror.fetch("release-1")
        #expect(result.ref == "refs/tags/release-1")
        #expect(result.commit.hex == (try work.git("rev-parse", "HEAD")))
    }

    @Test func aMissingRefIsAClearError() throws {
        _ = try daemon.createRepository("fleet", contents: Self.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let error = #expect(throws: GitError.self) { try mirror.fetch("release") }
        #expect(error?.code == .notFound)
        #expect(error?.description == "fetch release from \(daemon.url("fleet")): the remote has no branch or tag 'release'")
    }

    @Test func anUnreachableRemoteFailsAndLeavesTheCacheAsItWas() throws {
        _ = try daemon.createRepository("fleet", contents: Self.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let seen = try mirror.fetch("main").commit
        daemon.stop()

        let error = #expect(throws: GitError.self) { try mirror.fetch("main") }
        #expect(error?.code == .unreachable)
        #expect(error?.operation == "fetch main from \(daemon.url("fleet"))")
        #expect(try mirror.resolve("main") == seen)
        #expect(try FleetLoader.load(try mirror.fleetTree(at: seen)).apps.count == 2)
    }

    @Test func anUnknownSchemeIsRefusedInOneSentence() {
        let error = #expect(throws: GitError.self) { try GitMirror(url: "svn://example.com/fleet", cacheDirectory: cache) }
        #expect(error?.code == .unsupportedTransport)
        #expect(error?.message == "unknown URL scheme; use a path, file://, git://, https://, ssh:// or user@host:path")
    }

    @Test func credentialsInAURLNeverAppearInErrors() {
        #expect(RemoteURL.redact("https://bot:s3cret@forge.example/acme/fleet.git failed") == "https://***@forge.example/acme/fleet.git failed")
        #expect(RemoteURL.redact("fetch https://ghp_token@forge.example/a.git") == "fetch https://***@forge.example/a.git")
        #expect(RemoteURL.redact("ssh://git@forge.example/a.git and ssh://git:pw@forge.example/b.git")
                == "ssh://git@forge.example/a.git and ssh://git:***@forge.example/b.git")
        #expect(GitCredentials(token: "s3cret").description == "token ***")
    }

    @Test func readsAFleetOfTwoThousandFiles() throws {
        let work = try daemon.createRepository("big", contents: Self.template)
        for index in 0..<2_000 {
            try work.write(String(format: "devices/rack-%04d.yaml", index),
                           "kind: Devices\ndevices:\n  node-\(index):\n    tags: {rack: r\(index % 40), hw: rpi4}\n")
        }
        try work.commitAll("Two thousand device files")
        try work.git("push", "--quiet", "origin", "main")
        let mirror = try GitMirror(url: daemon.url("big"), cacheDirectory: cache)
        let tree = try mirror.fleetTree(at: try mirror.fetch("main").commit)
        #expect(tree.entries.count == 2_000 + 13)
        let fleet = try FleetLoader.load(tree)
        #expect(fleet.devices.count == 2_004)
    }

    /// Replaces `groups/` in the work tree's head with `tree` (a tree object id) and pushes it.
    private func pushGroups(_ tree: String, in work: WorkTree, _ message: String) throws {
        let root = try work.git("rev-parse", "HEAD^{tree}")
        let listing = try work.git("ls-tree", root).split(separator: "\n").filter { !$0.hasSuffix("\tgroups") }
        let newRoot = try GitCommand.run(["mktree"], in: work.path, input: (listing + ["040000 tree \(tree)\tgroups"]).joined(separator: "\n") + "\n")
        let commit = try GitCommand.run(["commit-tree", newRoot, "-p", "HEAD", "-m", message], in: work.path)
        try work.git("update-ref", "refs/heads/main", commit)
        try work.git("push", "--quiet", "origin", "main")
    }

    /// Folders of 16 entries, `depth` deep, each naming `entry` (a blob or a tree) 16 times.
    private func nested(_ entry: String, kind: String, name: String, depth: Int, in work: WorkTree) throws -> String {
        var tree = try GitCommand.run(["mktree"], in: work.path,
                                      input: (0..<16).map { "\(kind == "blob" ? "100644" : "040000") \(kind) \(entry)\t\(name)\($0)\(kind == "blob" ? ".yaml" : "")" }
                                          .joined(separator: "\n") + "\n")
        for _ in 1..<depth {
            tree = try GitCommand.run(["mktree"], in: work.path, input: (0..<16).map { "040000 tree \(tree)\td\($0)" }.joined(separator: "\n") + "\n")
        }
        return tree
    }

    /// A few kilobytes of git naming one 600 KiB blob a million times: the walk stops at the
    /// tree's 64 MiB, having copied no more, and the loader refuses the commit with why.
    @Test func aTreeNamingOneBlobAMillionTimesStopsAtItsLimit() throws {
        let work = try daemon.createRepository("bomb", contents: Self.template)
        let blob = try GitCommand.run(["hash-object", "-w", "--stdin"], in: work.path,
                                      input: "kind: Devices\n# " + String(repeating: "x", count: 600 << 10) + "\n")
        try pushGroups(try nested(blob, kind: "blob", name: "x", depth: 5, in: work), in: work, "A million files of one blob")
        let mirror = try GitMirror(url: daemon.url("bomb"), cacheDirectory: cache)
        let tree = try mirror.fleetTree(at: try mirror.fetch("main").commit)
        #expect(tree.overflow?.reason == "the repository's fleet files are more than 64 MiB in all")
        #expect(tree.totalBytes <= FleetTree.maximumTotalBytes)
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(tree) }
        #expect(error?.diagnostics.count == 1)
        #expect(error?.diagnostics.first?.message.contains("reading stopped here and nothing was loaded") == true)
    }

    /// A blob over the file limit is named from its object header, never inflated: 4,096 names
    /// of one 20 MiB blob (80 GB inflated) read in moments. A link over 4 KiB is not loaded either.
    @Test(.timeLimit(.minutes(1)))
    func blobsTooLargeAndLongLinksAreNeverLoaded() throws {
        let work = try daemon.createRepository("large", contents: Self.template)
        let big = try GitCommand.run(["hash-object", "-w", "--stdin"], in: work.path, input: String(repeating: "0", count: 20 << 20))
        let longLink = try GitCommand.run(["hash-object", "-w", "--stdin"], in: work.path, input: String(repeating: "a/", count: 2_600))
        let files = try nested(big, kind: "blob", name: "huge", depth: 3, in: work)
        let top = try GitCommand.run(["mktree"], in: work.path,
                                     input: "040000 tree \(files)\tmany\n120000 blob \(longLink)\tlink.yaml\n")
        try pushGroups(top, in: work, "Large blobs and a long link")
        let mirror = try GitMirror(url: daemon.url("large"), cacheDirectory: cache)
        let tree = try mirror.fleetTree(at: try mirror.fetch("main").commit)
        #expect(tree.overflow == nil)
        #expect(tree.totalBytes < 1 << 20, "the template's own files only: no blob over the limit is read")
        guard case .tooLarge(let size) = tree.entries["groups/many/d0/d0/huge0.yaml"] else {
            Issue.record("a 20 MiB blob is too large, not read")
            return
        }
        #expect(size == 20 << 20)
        guard case .symlink(let target) = tree.entries["groups/link.yaml"] else {
            Issue.record("the link is named as a link")
            return
        }
        #expect(target == "(a link of 5200 bytes)")
    }

    /// A million entries the loader never reads still cost a walk: it stops at its limit.
    @Test func aTreeOfAMillionEntriesIsWalkedOnlyToItsLimit() throws {
        let work = try daemon.createRepository("wide", contents: Self.template)
        let blob = try GitCommand.run(["hash-object", "-w", "--stdin"], in: work.path, input: "not a fleet file\n")
        let listing = (0..<16).map { "100644 blob \(blob)\tnote\($0).txt" }.joined(separator: "\n") + "\n"
        var tree = try GitCommand.run(["mktree"], in: work.path, input: listing)
        for _ in 1..<5 {
            tree = try GitCommand.run(["mktree"], in: work.path, input: (0..<16).map { "040000 tree \(tree)\td\($0)" }.joined(separator: "\n") + "\n")
        }
        try pushGroups(tree, in: work, "A million notes")
        let mirror = try GitMirror(url: daemon.url("wide"), cacheDirectory: cache)
        let read = try mirror.fleetTree(at: try mirror.fetch("main").commit)
        #expect(read.overflow?.reason == "the repository has more than 100000 entries under its fleet folders")
        // Under a hidden folder, which neither reader opens, the same tree costs one entry.
        let hidden = try GitCommand.run(["mktree"], in: work.path, input: "040000 tree \(tree)\t.archive\n")
        try pushGroups(hidden, in: work, "The notes, archived")
        #expect(try mirror.fleetTree(at: try mirror.fetch("main").commit).overflow == nil)
    }

    /// A submodule (gitlink) where a fleet file belongs is named as such, not an unreadable blob.
    @Test func aSubmoduleInAFleetFolderIsNamed() throws {
        let work = try daemon.createRepository("sub", contents: Self.template)
        let commit = String(repeating: "ab", count: 20)
        try work.git("update-index", "--add", "--cacheinfo", "160000,\(commit),groups/vendor.yaml")
        try work.git("commit", "--quiet", "-m", "A submodule")
        try work.git("push", "--quiet", "origin", "main")
        let mirror = try GitMirror(url: daemon.url("sub"), cacheDirectory: cache)
        let tree = try mirror.fleetTree(at: try mirror.fetch("main").commit)
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(tree) }
        #expect(error?.diagnostics.map(\.description) == [
            "groups/vendor.yaml: error: is a submodule (commit \(commit)); submodules are not followed, commit the file itself",
        ])
    }

    @Test func readsFromALocalPathAndAFileURL() throws {
        let work = try daemon.createRepository("fleet", contents: Self.template)
        let head = try work.git("rev-parse", "HEAD")
        for url in [daemon.root + "/fleet.git", "file://" + daemon.root + "/fleet.git"] {
            let mirror = try GitMirror(url: url, cacheDirectory: cache)
            #expect(try mirror.fetch("main").commit.hex == head)
        }
    }
}
