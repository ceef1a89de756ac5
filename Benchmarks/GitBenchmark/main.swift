// Polls an unchanged remote the way the controller does (GitMirror.fetch with nothing new)
// and compares it with `git ls-remote` against the same git daemon, in the same run.
// Run through hack/bench.sh (release build).
import FleetGit
import FleetTesting
import Foundation

let rounds = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 200
let template = TestPackage.template

let daemon = try GitDaemon()
let work = try daemon.createRepository("fleet", contents: template)
for index in 0..<50 {
    try work.write("devices/batch-\(index).yaml", "kind: Devices\ndevices:\n  node-\(index): {tags: {rack: r\(index)}}\n")
    try work.commitAll("Batch \(index)")
}
try work.git("push", "--quiet", "origin", "main")
let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: daemon.root + "/cache")
_ = try mirror.fetch("main")

func time(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
}

/// Runs git and waits, through posix_spawn and waitpid: Foundation's Process adds tens of
/// milliseconds of its own on Linux, which would flatter the comparison.
func spawnGit(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = (["git"] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/usr/bin/git", &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return status
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

var lsRemote: [Double] = [], lsRemoteV2: [Double] = [], listInProcess: [Double] = [], poll: [Double] = []
for _ in 0..<rounds {
    // Interleaved, so drift in the machine's load touches all alike. libgit2 1.5 speaks protocol
    // version 0, so the main baseline is `git ls-remote` speaking it too; version 2 is shown as well.
    lsRemote.append(time { precondition(spawnGit(["-c", "protocol.version=0", "ls-remote", daemon.url("fleet"), "refs/heads/main"]) == 0) })
    lsRemoteV2.append(time { precondition(spawnGit(["-c", "protocol.version=2", "ls-remote", daemon.url("fleet"), "refs/heads/main"]) == 0) })
    listInProcess.append(try time { _ = try mirror.remoteRefs() })
    poll.append(try time {
        let result = try mirror.fetch("main")
        precondition(!result.changed, "the remote changed during the benchmark")
    })
}

print("rounds: \(rounds), median of each")
print(String(format: "git ls-remote, protocol v0 (CLI):            %.2f ms", median(lsRemote)))
print(String(format: "git ls-remote, protocol v2 (CLI):            %.2f ms", median(lsRemoteV2)))
print(String(format: "ls-remote in process (libgit2, baseline 2):  %.2f ms", median(listInProcess)))
print(String(format: "poll unchanged (GitMirror.fetch):            %.2f ms", median(poll)))
print(String(format: "ratio poll / git ls-remote v0:   %.2f×  (target ≤ 1.2×)", median(poll) / median(lsRemote)))
print(String(format: "ratio poll / git ls-remote v2:   %.2f×", median(poll) / median(lsRemoteV2)))
print(String(format: "ratio poll / in-process listing: %.2f×", median(poll) / median(listInProcess)))
