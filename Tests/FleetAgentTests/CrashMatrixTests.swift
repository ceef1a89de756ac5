import FleetGit
import FleetTesting
import Foundation
import Testing

/// The agent killed with SIGKILL at every step boundary and in the middle of a step, then
/// started again: a finished step never runs twice; an interrupted step counts as failed and
/// leads to rollback, unless it is idempotent, in which case it runs again.
///
/// The flow: `prepare` (not idempotent), `fetch` (idempotent), `switch` (not idempotent), and a
/// rollback step `undo`. Each step appends its name to a log, so the log is what really ran.
@Suite(.serialized)
struct CrashMatrixTests {
    struct Case: CustomTestStringConvertible, Sendable {
        /// `begun`, `ran` or `completed` (the agent kills itself there), or `midway` (killed from outside).
        var point: String
        var step: Int
        var expectedLog: [String]
        var expectedState: String
        var testDescription: String { "\(point) step \(step)" }
    }

    static let names = ["prepare", "fetch", "switch"]

    static let cases: [Case] = [
        // Killed after journaling the start, before the step ran: nothing of it happened.
        Case(point: "begun", step: 0, expectedLog: ["undo"], expectedState: "failed"),
        Case(point: "begun", step: 1, expectedLog: ["prepare", "fetch", "switch"], expectedState: "succeeded"),
        Case(point: "begun", step: 2, expectedLog: ["prepare", "fetch", "undo"], expectedState: "failed"),
        // Killed after the step ran, before its result was journaled: it may have done its work.
        Case(point: "ran", step: 0, expectedLog: ["prepare", "undo"], expectedState: "failed"),
        Case(point: "ran", step: 1, expectedLog: ["prepare", "fetch", "fetch", "switch"], expectedState: "succeeded"),
        Case(point: "ran", step: 2, expectedLog: ["prepare", "fetch", "switch", "undo"], expectedState: "failed"),
        // Killed after the result was journaled: the restart goes on with the next step.
        Case(point: "completed", step: 0, expectedLog: ["prepare", "fetch", "switch"], expectedState: "succeeded"),
        Case(point: "completed", step: 1, expectedLog: ["prepare", "fetch", "switch"], expectedState: "succeeded"),
        Case(point: "completed", step: 2, expectedLog: ["prepare", "fetch", "switch"], expectedState: "succeeded"),
        // Killed from outside while the step's command runs.
        Case(point: "midway", step: 0, expectedLog: ["prepare", "undo"], expectedState: "failed"),
        Case(point: "midway", step: 1, expectedLog: ["prepare", "fetch", "fetch", "switch"], expectedState: "succeeded"),
        Case(point: "midway", step: 2, expectedLog: ["prepare", "fetch", "switch", "undo"], expectedState: "failed"),
    ]

    @Test(arguments: cases)
    func killedAndRestarted(_ testCase: Case) async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        let log = agent.root + "/apps/log"
        let midway = agent.root + "/apps/midway"
        try FileManager.default.createDirectory(atPath: agent.root + "/apps", withIntermediateDirectories: true)
        try agent.start(fault: testCase.point == "midway" ? nil : "\(testCase.point):step:\(testCase.step)")
        let device = try await agent.deviceID()
        let steps = Self.names.enumerated().map { index, name in
            // The step to be killed midway marks that it is running, then waits to be killed — only
            // on its first run; a second run (an idempotent one) goes straight through.
            let pause = testCase.point == "midway" && index == testCase.step
                ? " && if [ ! -e \(midway) ]; then touch \(midway); sleep 30; fi" : ""
            return step(name, "echo \(name) >> \(log)\(pause)", idempotent: index == 1)
        }
        let execution = try await server.deploy(to: device, steps: steps,
                                                rollback: [step("undo", "echo undo >> \(log)", onFailure: "continue")])
        if testCase.point == "midway" {
            _ = try await eventually(seconds: 20, "the step to start") { FileManager.default.fileExists(atPath: midway) ? true : nil }
            agent.kill()
        } else {
            #expect(try await agent.waitForExit() == 128 + SIGKILL, "the agent should have killed itself at \(testCase.testDescription)")
        }
        try agent.start()
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == testCase.expectedState, "\(agent.logText)")
        let ran = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(ran == testCase.expectedLog)
        // The server saw each step's result once, in order, and nothing after the final report.
        let reported = (result["results"] as? [[String: Any]] ?? []).map { ($0["rollback"] as? Bool == true ? "undo:" : "") + ($0["name"] as? String ?? "") }
        let expectedResults = testCase.expectedState == "succeeded" ? Self.names : Array(Self.names[0...testCase.step]) + ["undo:undo"]
        #expect(reported == expectedResults)
        // The installed version changed only when the whole flow succeeded. After a failure, a
        // heartbeat sent after the final report must still show no app (ISO 8601 times to the
        // second: a later second is later); after a success, a heartbeat shows it installed.
        let finishedAt = try #require(result["updatedAt"] as? String)
        let installed: [String: Any]
        do { installed = try await eventually(seconds: 60, "a heartbeat after the execution") { () -> [String: Any]? in
            let device = try await server.device(hardwareID: agent.hardwareID)
            let apps = device?["apps"] as? [String: Any] ?? [:]
            if testCase.expectedState == "succeeded" { return apps["web"] != nil ? apps : nil }
            guard let heard = device?["lastHeartbeatAt"] as? String, heard > finishedAt else { return nil }
            return apps
        } } catch {
            let device = try await server.device(hardwareID: agent.hardwareID)
            Issue.record("\(error)\nthe agent's log: \(agent.logText)\nthe device: \(String(describing: device))\nthe execution: \(result)")
            return
        }
        #expect((installed["web"] != nil) == (testCase.expectedState == "succeeded"))
    }

    /// The end of an execution that cannot be recorded (a full disk; here the record's path is
    /// a directory) stops the agent with the journal kept; started again, it finishes from the
    /// journal and runs nothing twice.
    @Test func anEndThatCannotBeRecordedStopsTheAgentAndFinishesOnRestart() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        let log = agent.root + "/apps/log"
        try FileManager.default.createDirectory(atPath: agent.root + "/apps", withIntermediateDirectories: true)
        try agent.start()
        let device = try await agent.deviceID()
        let blocked = agent.root + "/data/finished.json"
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: true)
        let execution = try await server.deploy(to: device, steps: [step("prepare", "echo prepare >> \(log)", idempotent: false)],
                                                rollback: [step("undo", "echo undo >> \(log)", onFailure: "continue")])
        #expect(try await agent.waitForExit(seconds: 60) == 1, "\(agent.logText)")
        #expect(FileManager.default.fileExists(atPath: agent.root + "/data/journal.json"), "the journal is kept")
        try FileManager.default.removeItem(atPath: blocked)
        try agent.start()
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "succeeded", "\(agent.logText)")
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "prepare\n", "the step ran once")
    }

    /// A journal the restarted agent cannot decode (here one a later agent wrote, in a phase
    /// this one does not know, as after a rollback of the agent itself) does not start its
    /// execution again from the first step when the server hands it out again: the execution
    /// ends failed, saying why, and no step runs twice.
    @Test func anUnreadableJournalFailsItsExecutionRatherThanRunningItAgain() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        let log = agent.root + "/apps/log"
        try FileManager.default.createDirectory(atPath: agent.root + "/apps", withIntermediateDirectories: true)
        try agent.start(fault: "begun:step:1")
        let device = try await agent.deviceID()
        let execution = try await server.deploy(to: device, steps: [step("prepare", "echo prepare >> \(log)"), step("switch", "echo switch >> \(log)")],
                                                rollback: [step("undo", "echo undo >> \(log)", onFailure: "continue")])
        #expect(try await agent.waitForExit() == 128 + SIGKILL)
        let journal = agent.root + "/data/journal.json"
        let written = try String(contentsOfFile: journal, encoding: .utf8)
        #expect(written.contains("\"phase\":\"steps\""))
        try written.replacingOccurrences(of: "\"phase\":\"steps\"", with: "\"phase\":\"verifying\"")
            .write(toFile: journal, atomically: true, encoding: .utf8)
        try agent.start()
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "failed", "\(agent.logText)")
        #expect((result["message"] as? String)?.contains("journal of this execution could not be read") == true, "\(result)")
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "prepare\n", "nothing ran twice, and nothing after the restart")
        #expect(FileManager.default.fileExists(atPath: journal + ".unreadable"))
    }
}
