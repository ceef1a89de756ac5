import FleetGit
import FleetTesting
import Foundation
import Testing

/// Notes and the status branch, checked from the git command line as people would see them.
@Suite(.serialized)
struct RepositoryReportTests {
    let daemon: GitDaemon
    let cache: String

    init() throws {
        daemon = try GitDaemon()
        cache = daemon.root + "/cache"
    }

    @Test func aNoteIsVisibleToGitLogAndReplacedWhenRewritten() throws {
        let work = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let commit = try mirror.fetch("main").commit

        #expect(try mirror.writeNote("thermostat: 12/50 devices at 2.5.0", on: commit))
        #expect(try !mirror.writeNote("thermostat: 12/50 devices at 2.5.0", on: commit))
        #expect(try mirror.writeNote("thermostat: converged, 50/50 at 2.5.0", on: commit))

        let reader = try daemon.clone("fleet")
        try reader.git("fetch", "--quiet", "origin", "refs/notes/flotilla:refs/notes/flotilla")
        #expect(try reader.git("log", "--notes=flotilla", "--format=%N", "-1", commit.hex) == "thermostat: converged, 50/50 at 2.5.0")
        // One note per commit: the notes history holds the two writes, not three.
        #expect(try reader.git("rev-list", "--count", "refs/notes/flotilla") == "2")
    }

    @Test func notesFromAnotherWriterAreKept() throws {
        let work = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        try work.write("README.md", "second\n")
        let second = try work.commitAll("Second")
        try work.git("push", "--quiet", "origin", "main")
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let first = try mirror.resolve(try mirror.fetch("main").commit.hex + "~1")

        // Someone else notes the second commit and pushes first.
        try work.git("notes", "--ref=flotilla", "add", "-m", "from a person", second)
        try work.git("push", "--quiet", "origin", "refs/notes/flotilla")
        #expect(try mirror.writeNote("from the controller", on: first))

        let reader = try daemon.clone("fleet")
        try reader.git("fetch", "--quiet", "origin", "refs/notes/flotilla:refs/notes/flotilla")
        #expect(try reader.git("notes", "--ref=flotilla", "show", second) == "from a person")
        #expect(try reader.git("notes", "--ref=flotilla", "show", first.hex) == "from the controller")
    }

    @Test func theStatusBranchIsCommittedOnlyWhenItChanges() throws {
        _ = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        _ = try mirror.fetch("main")
        let files = ["STATUS.md": Array("# Fleet status\n\nthermostat: converged\n".utf8), "status.json": Array("{\"converged\":true}\n".utf8)]

        let first = try #require(try mirror.commitFiles(files, to: "flotilla/status", message: "Status: converged"))
        #expect(try mirror.commitFiles(files, to: "flotilla/status", message: "Status: converged") == nil)
        var changed = files
        changed["STATUS.md"] = Array("# Fleet status\n\nthermostat: updating\n".utf8)
        let second = try #require(try mirror.commitFiles(changed, to: "flotilla/status", message: "Status: updating"))

        let reader = try daemon.clone("fleet")
        try reader.git("fetch", "--quiet", "origin", "flotilla/status")
        #expect(try reader.git("rev-parse", "FETCH_HEAD") == second.hex)
        #expect(try reader.git("rev-parse", "FETCH_HEAD~1") == first.hex)
        #expect(try reader.git("show", "FETCH_HEAD:STATUS.md") == "# Fleet status\n\nthermostat: updating")
        #expect(try reader.git("ls-tree", "--name-only", "FETCH_HEAD") == "STATUS.md\nstatus.json")
        #expect(try reader.git("log", "-1", "--format=%an <%ae> %s", "FETCH_HEAD") == "Flotilla <flotilla@localhost> Status: updating")
    }

    @Test func neverWritesToTheReconciledBranch() throws {
        _ = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache)
        let head = try mirror.fetch("main").commit
        let error = #expect(throws: GitError.self) { try mirror.commitFiles(["STATUS.md": [1]], to: "main", message: "x") }
        #expect(error?.code == .refused)
        let reader = try daemon.clone("fleet")
        #expect(try reader.git("rev-parse", "origin/main") == head.hex)
    }

    @Test func concurrentWritersToTheStatusBranchAllLand() throws {
        _ = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        let writers = try (0..<2).map { index in
            try GitMirror(url: daemon.url("fleet"), cacheDirectory: cache + "-\(index)")
        }
        let rounds = 5
        let failures = FailureLog()
        DispatchQueue.concurrentPerform(iterations: writers.count) { index in
            for round in 0..<rounds {
                do {
                    let text = "writer \(index) round \(round)\n"
                    _ = try writers[index].commitFiles(["STATUS.md": Array(text.utf8)], to: "flotilla/status", message: text)
                } catch {
                    failures.append("\(error)")
                }
            }
        }
        #expect(failures.entries.isEmpty)
        let reader = try daemon.clone("fleet")
        try reader.git("fetch", "--quiet", "origin", "flotilla/status")
        // Every write landed on top of the others: a straight line of all of them.
        #expect(try reader.git("rev-list", "--count", "FETCH_HEAD") == "\(writers.count * rounds)")
        #expect(try reader.git("rev-list", "--merges", "--count", "FETCH_HEAD") == "0")
    }
}

final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ entry: String) { lock.withLock { stored.append(entry) } }
    var entries: [String] { lock.withLock { stored } }
}
