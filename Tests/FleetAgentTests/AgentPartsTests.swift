@testable import FleetAgent
import FleetProtocol
import FleetTesting
import Foundation
import Testing

func temporaryDirectory() throws -> String { try TestPackage.temporaryDirectory(prefix: "flotilla-agent-test-") }

func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

@Suite struct AgentConfigurationTests {
    @Test func readsEverySetting() throws {
        let text = """
            server: https://fleet.example.com
            enrollmentToken: fle_abc
            claimCode: 0123abcd
            dataDirectory: /var/lib/x
            heartbeatIntervalSeconds: 10
            hardwareID: serial-9
            tags: {site: berlin, ring: canary}
            mounts: [/, /data]
            processes:
              - nginx
              - {name: app, pidfile: /run/app.pid}
            custom: /var/lib/x/custom
            allowedRoots: [/opt/apps]
            outboxLimit: 50
            downloadLimitBytes: 1073741824
            downloadReserveBytes: 0
            """
        let configuration = try AgentConfiguration.parse(Array(text.utf8), file: "agent.yaml")
        #expect(configuration.downloadLimitBytes == 1 << 30 && configuration.downloadReserveBytes == 0)
        let defaults = AgentConfiguration()
        #expect(defaults.downloadLimitBytes == nil && defaults.downloadReserveBytes == 64 << 20)
        #expect(configuration.server == "https://fleet.example.com")
        #expect(configuration.claimCode == "0123abcd")
        #expect(configuration.heartbeatIntervalSeconds == 10)
        #expect(configuration.tags == ["site": "berlin", "ring": "canary"])
        #expect(configuration.mounts == ["/", "/data"])
        #expect(configuration.processes == [.init(name: "nginx"), .init(name: "app", pidfile: "/run/app.pid")])
        #expect(configuration.allowedRoots == ["/opt/apps"])
        #expect(configuration.outboxLimit == 50)
    }

    @Test(arguments: [
        ("server: x\nintervall: 3\n", "agent.yaml:2:1: unknown setting 'intervall'"),
        ("heartbeatIntervalSeconds: fast\n", "agent.yaml:1:27: 'heartbeatIntervalSeconds' must be a whole number from 1 to 3600"),
        ("mounts: /\n", "agent.yaml:1:9: 'mounts' must be a list"),
        ("allowedRoots: [/]\n", "agent.yaml:1:15: 'allowedRoots' entries must be absolute directories other than /: '/'"),
        ("a: &x 1\nb: *x\n", "agent.yaml:2:4: aliases are not supported"),
        (String(repeating: "[", count: 900), "agent.yaml:1:33: settings nest deeper than 32 levels"),
        ("server: [1,\n", "agent.yaml:2:1:"),
        ("server: a\nserver: b\n", "agent.yaml:2:1: 'server' is set twice"),
        ("processes: [{pid: 3}]\n", "agent.yaml:1:14: unknown key 'pid' in a process"),
        ("downloadLimitBytes: 0\n", "agent.yaml:1:21: 'downloadLimitBytes' must be a whole number of bytes, at least 1"),
        ("downloadReserveBytes: 64M\n", "agent.yaml:1:23: 'downloadReserveBytes' must be a whole number of bytes, at least 0"),
    ])
    func errorsNameFileLineAndColumn(_ testCase: (String, String)) {
        do {
            _ = try AgentConfiguration.parse(Array(testCase.0.utf8), file: "agent.yaml")
            Issue.record("accepted \(testCase.0)")
        } catch {
            #expect(error.description.hasPrefix(testCase.1), "\(error.description)")
        }
    }
}

@Suite struct PlainHTTPTests {
    /// Whoever is on the path to a plain-HTTP server can hand the device commands run as root.
    @Test func plainHTTPIsForThisMachineOrSetOnPurpose() throws {
        for local in ["http://127.0.0.1:8080", "http://localhost/", "http://[::1]:80", "https://fleet.example.com", "HTTPS://fleet.example.com"] {
            #expect(AgentConfiguration.plainHTTPProblem(server: local, allowed: false) == nil, "\(local)")
        }
        for remote in ["http://fleet.example.com", "HTTP://10.0.0.5:8080", "http://127.0.0.1.evil.example/", "http://localhost.evil.example"] {
            #expect(AgentConfiguration.plainHTTPProblem(server: remote, allowed: false)?.contains("allowPlainHTTP: true") == true, "\(remote)")
            #expect(AgentConfiguration.plainHTTPProblem(server: remote, allowed: true) == nil, "\(remote)")
        }
        for bypass in ["fleet.example.com:8080", "http://127.evil.example.com/", "http://127.0.0.1:x@fleet.example.com/", "http://localhost:pw@fleet.example.com"] {
            #expect(AgentConfiguration.plainHTTPProblem(server: bypass, allowed: false) != nil, "\(bypass)")
        }
        #expect(try AgentConfiguration.parse(Array("allowPlainHTTP: true\n".utf8), file: "agent.yaml").allowPlainHTTP)
        // Tags the server would refuse are named where they are written.
        let tagged = try AgentConfiguration.parse(Array("tags:\n  site: Berlin West\n  -ring: main\n".utf8), file: "agent.yaml")
        #expect(tagged.tagProblems.count == 2 && tagged.tagProblems[0].hasPrefix("agent.yaml:2:9: invalid tag value 'Berlin West'")
                 && tagged.tagProblems[1].hasPrefix("agent.yaml:3:3: invalid tag name '-ring'"), "\(tagged.tagProblems)")
        #expect(throws: AgentError.self) { try AgentConfiguration.parse(Array("allowPlainHTTP: yes\n".utf8), file: "agent.yaml") }
    }
}

@Suite struct UntrustedFileTests {
    /// What a power cut between a temporary file's creation and its rename leaves goes at the next
    /// start — unless the process that made it still runs (it may be writing it now).
    @Test func leftoversOfInterruptedWritesGoUnlessTheirWriterRuns() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let ended = process.processIdentifier
        for name in ["identity.json.tmp-\(ended)", "journal.json.tmp-\(ended)", "identity.json", "notes.tmp-x",
                     "lock.tmp-\(getppid())", "mine.tmp-\(getpid())"] {
            try write("{}", to: root + "/" + name)
        }
        #expect(Files.removeLeftovers(in: root) == 2)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: root))
                == ["identity.json", "notes.tmp-x", "lock.tmp-\(getppid())", "mine.tmp-\(getpid())"])
    }

    /// An app's custom data, pidfile and update lock are files its own user writes; the agent
    /// reads them as root. A link there is not followed (its target would go out in a heartbeat),
    /// and a FIFO is refused at once rather than blocking the heartbeat thread for good.
    @Test(.timeLimit(.minutes(1))) func filesAnAppWritesAreReadOnlyWhenRegularAndNotLinks() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("root only\n", to: root + "/shadow")
        #expect(symlink(root + "/shadow", root + "/linked") == 0)
        #expect(mkfifo(root + "/piped", 0o644) == 0)
        #expect(throws: AgentError.self) { try Files.read(root + "/linked", untrusted: true) }
        #expect(throws: AgentError.self) { try Files.read(root + "/piped", untrusted: true) }
        #expect(try Files.read(root + "/shadow", untrusted: true) == Array("root only\n".utf8))
        #expect(try Files.read(root + "/absent", untrusted: true) == nil)
        // The custom-data directory reads what is regular and skips the rest.
        try FileManager.default.createDirectory(atPath: root + "/custom", withIntermediateDirectories: true)
        try write("eco", to: root + "/custom/mode")
        #expect(symlink(root + "/shadow", root + "/custom/stolen") == 0)
        #expect(mkfifo(root + "/custom/stuck", 0o644) == 0)
        #expect(CustomData.read(root + "/custom") == ["mode": "eco"])
        // Nor is the directory itself reached through a link: pointed at a root-only directory,
        // its files would go out in a heartbeat.
        try FileManager.default.createDirectory(atPath: root + "/private", withIntermediateDirectories: true)
        try write("-----BEGIN PRIVATE KEY-----\n", to: root + "/private/ssh_host_key")
        #expect(symlink(root + "/private", root + "/status") == 0)
        #expect(CustomData.read(root + "/private") == ["ssh_host_key": "-----BEGIN PRIVATE KEY-----"], "read as a directory when it is one")
        #expect(CustomData.read(root + "/status") == [:])
    }

    /// An app's user may write where the update lock is, and leave a link where the agent will
    /// write its temporary file: the agent, as root, makes its own file instead of truncating
    /// and writing the link's target.
    @Test func aFileWrittenAtomicallyIsNotWrittenThroughALinkLeftForIt() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("root:x:0:0\n", to: root + "/shadow")
        let lock = root + "/app/update.lock"
        try FileManager.default.createDirectory(atPath: root + "/app", withIntermediateDirectories: true)
        #expect(symlink(root + "/shadow", lock + ".tmp-\(getpid())") == 0)
        try UpdateLockFile.write(lock, reason: "calibrating", untilMilliseconds: nil)
        #expect(try String(contentsOfFile: root + "/shadow", encoding: .utf8) == "root:x:0:0\n", "the link's target is untouched")
        #expect(try String(contentsOfFile: lock, encoding: .utf8) == "calibrating\n")
        #expect(UpdateLockFile.read(lock)?.reason == "calibrating")
    }

    /// What an app writes for the heartbeat is held to what the server accepts, so one odd file
    /// cannot get every heartbeat refused: a bad name is left out, a value cut to 1 KiB on a
    /// character's boundary, invalid UTF-8 included (its replacement characters are longer).
    @Test func customDataIsHeldToWhatTheServerAccepts() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("ok", to: root + "/custom/" + String(repeating: "n", count: 128))
        try write("too long a name", to: root + "/custom/" + String(repeating: "n", count: 129))
        try write("control", to: root + "/custom/bell\u{7}")
        try write(String(repeating: "é", count: 600), to: root + "/custom/accents")
        try Data(repeating: 0xFF, count: 1_024).write(to: URL(fileURLWithPath: root + "/custom/garbage"))
        let values = CustomData.read(root + "/custom")
        #expect(Set(values.keys) == [String(repeating: "n", count: 128), "accents", "garbage"])
        #expect(values["accents"] == String(repeating: "é", count: 512))
        #expect(values["garbage"] == String(repeating: "\u{FFFD}", count: 341))
        for value in values.values { #expect(value.utf8.count <= CustomData.maximumValueBytes) }
        // The same from a JSON file.
        try write(#"{"a\u2028b": "x", "mode": "\#(String(repeating: "é", count: 600))"}"#, to: root + "/custom.json")
        #expect(CustomData.read(root + "/custom.json") == ["mode": String(repeating: "é", count: 512)])
        // An update lock's reason loses every character the server refuses, not only ASCII controls.
        try write("calibrating\u{9B}\u{202E} now\n", to: root + "/update.lock")
        #expect(UpdateLockFile.read(root + "/update.lock")?.reason == "calibrating now")
    }
}

@Suite struct LogTests {
    /// What a log line quotes from a server or a step cannot start a line of its own.
    @Test func aLogLineStaysOneLine() {
        #expect(Log.printable("execution ex-1\nflotilla-agent info: all good\u{1B}[2J") == "execution ex-1\\u{a}flotilla-agent info: all good\\u{1b}[2J")
        #expect(Log.printable("plain text, é") == "plain text, é")
    }
}

@Suite struct BackoffTests {
    /// A server (or a proxy before it) answering `Retry-After: 9223372036854775807` once crashed
    /// the agent where the wait was logged, and an answer of years stopped its heartbeats.
    @Test func aServersRetryAfterIsHeededUpToAnHour() {
        var backoff = Backoff()
        #expect(backoff.next(retryAfter: .max) == Double(Backoff.longestRetryAfter))
        #expect(Int(backoff.next(retryAfter: 100_000_000)) == Backoff.longestRetryAfter)
        #expect(backoff.next(retryAfter: 120) >= 120)
    }
}

@Suite struct SystemMetricsTests {
    @Test func readsProcFiles() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n", to: root + "/stat")
        try write("MemTotal:        2000 kB\nMemFree:          500 kB\nMemAvailable:    1500 kB\n", to: root + "/meminfo")
        try write("3600.52 7000.00\n", to: root + "/uptime")
        try write("0.10 0.25 1.50 1/100 42\n", to: root + "/loadavg")
        try write("nginx\n", to: root + "/42/comm")
        try write("a-very-long-process-name\n".prefix(15) + "\n", to: root + "/43/comm")
        let metrics = SystemMetrics(procRoot: root)
        // 300 more busy ticks out of 1,000: 30 %.
        try write("cpu  250 0 250 1500 0 0 0 0 0 0\n", to: root + "/stat")
        #expect(metrics.cpuPercent() == 30)
        #expect(metrics.memory() == Heartbeat.Memory(usedBytes: 500 * 1024, totalBytes: 2000 * 1024))
        #expect(metrics.uptimeSeconds() == 3600)
        #expect(metrics.load() == [0.1, 0.25, 1.5])
        let pidfile = root + "/self.pid"
        try write("\(getpid())\n", to: pidfile)
        #expect(metrics.processes([.init(name: "nginx"), .init(name: "postgres"), .init(name: "a-very-long-process-name"),
                                   .init(name: "me", pidfile: pidfile), .init(name: "gone", pidfile: root + "/none.pid")])
            == [.init(name: "nginx", running: true), .init(name: "postgres", running: false),
                .init(name: "a-very-long-process-name", running: true), .init(name: "me", running: true), .init(name: "gone", running: false)])
        let disks = metrics.disks(["/", "/no/such/mount"])
        #expect(disks.count == 1 && disks[0].mount == "/" && disks[0].totalBytes > 0)
    }

    @Test func customDataFromAFileOrADirectory() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(#"{"firmware":"1.4","temperature":41.5,"door":true,"nested":{"x":1}}"#, to: root + "/custom.json")
        #expect(CustomData.read(root + "/custom.json") == ["firmware": "1.4", "temperature": "41.5", "door": "true"])
        try write("  3.2.1\n", to: root + "/dir/firmware")
        try write("ok", to: root + "/dir/status")
        try write("x", to: root + "/dir/.hidden")
        #expect(CustomData.read(root + "/dir") == ["firmware": "3.2.1", "status": "ok"])
        #expect(CustomData.read(root + "/missing").isEmpty)
    }
}

@Suite struct OutboxTests {
    @Test func dropsOldestHeartbeatsFirstAndNeverReports() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let outbox = try Outbox(directory: root + "/outbox", limit: 3)
        try outbox.enqueue(heartbeat: Array(#"{"reportID":"h1"}"#.utf8))
        try outbox.enqueue(report: ExecutionReport(reportID: "r1", state: .running), execution: "ex-1")
        try outbox.enqueue(heartbeat: Array(#"{"reportID":"h2"}"#.utf8))
        try outbox.enqueue(heartbeat: Array(#"{"reportID":"h3"}"#.utf8))
        try outbox.enqueue(report: ExecutionReport(reportID: "r2", state: .running), execution: "ex-1")
        try outbox.enqueue(report: ExecutionReport(reportID: "r3", state: .succeeded), execution: "ex-1")
        let contents = try outbox.entries.map { try String(contentsOfFile: root + "/outbox/" + $0, encoding: .utf8) }
        #expect(contents.map { $0.contains("r1") || $0.contains("r2") || $0.contains("r3") } == [true, true, true])
        try outbox.enqueue(heartbeat: Array(#"{"reportID":"h4"}"#.utf8))
        #expect(outbox.entries.count == 4)
        // A new outbox over the same directory numbers on from the last entry: order survives a restart.
        let reopened = try Outbox(directory: root + "/outbox", limit: 10)
        try reopened.enqueue(heartbeat: Array(#"{"reportID":"h5"}"#.utf8))
        #expect(reopened.entries.last?.hasSuffix("-heartbeat.json") == true)
        #expect(reopened.entries.sorted() == reopened.entries)
        #expect(throws: AgentError.self) { try outbox.enqueue(report: ExecutionReport(reportID: "r", state: .running), execution: "../x") }
    }
}

/// The update lock file, as `flotilla-agent lock` and applications write it.
struct UpdateLockFileTests {
    @Test func aLockHoldsUntilItExpiresOrIsRemoved() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/deep/update.lock"
        #expect(UpdateLockFile.read(path) == nil)
        try UpdateLockFile.write(path, reason: "surgery\nin progress", untilMilliseconds: 5_000)
        #expect(UpdateLockFile.read(path, now: 4_999) == .init(reason: "surgery in progress", untilMilliseconds: 5_000))
        #expect(UpdateLockFile.read(path, now: 5_000) == nil, "an expired lock holds nothing")
        // An application's own file: a reason alone, or nothing at all.
        try "  kiosk in use \r\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UpdateLockFile.read(path) == .init(reason: "kiosk in use"))
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UpdateLockFile.read(path)?.reason == "locked")
        try (String(repeating: "é", count: 300) + "\u{7}").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UpdateLockFile.read(path)?.reason.utf8.count ?? 0 <= 200)
        UpdateLockFile.remove(path)
        #expect(UpdateLockFile.read(path) == nil)
    }

    @Test(arguments: [("30m", Int64(1_800_000)), ("2h", 7_200_000), ("1h30m", 5_400_000), ("45s", 45_000), ("1d", 86_400_000)])
    func lockDurations(_ testCase: (String, Int64)) {
        #expect(LockDuration.milliseconds(testCase.0) == testCase.1)
    }

    /// A lock file that is there but cannot be read (here: a directory) locks, rather than unlocking.
    @Test func anUnreadableLockFileLocks() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/update.lock", withIntermediateDirectories: true)
        #expect(UpdateLockFile.read(root + "/update.lock")?.reason.hasPrefix("the update lock file cannot be read (") == true)
        // A link is not followed: its target's first line (a root-only file's) would go out as the reason.
        try write("root:secret\n", to: root + "/shadow")
        #expect(symlink(root + "/shadow", root + "/linked.lock") == 0)
        let linked = UpdateLockFile.read(root + "/linked.lock")
        #expect(linked?.reason.contains("a link is not followed") == true && linked?.reason.contains("root:secret") == false)
    }

    @Test(arguments: ["", "2", "h", "2x", "-1h", "0s", "１h", "36501d", String(repeating: "999999999d", count: 200)])
    func badLockDurations(_ text: String) {
        #expect(LockDuration.milliseconds(text) == nil)
    }
}
