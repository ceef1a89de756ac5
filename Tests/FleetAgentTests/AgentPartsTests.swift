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
            """
        let configuration = try AgentConfiguration.parse(Array(text.utf8), file: "agent.yaml")
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
        #expect(UpdateLockFile.read(root + "/update.lock")?.reason == "the update lock file cannot be read")
    }

    @Test(arguments: ["", "2", "h", "2x", "-1h", "0s", "１h", "36501d", String(repeating: "999999999d", count: 200)])
    func badLockDurations(_ text: String) {
        #expect(LockDuration.milliseconds(text) == nil)
    }
}
