@testable import FleetAgent
import FleetGit
import FleetTesting
import Foundation
import Testing

/// The install script and the files it installs, into a temporary root.
@Suite struct PackagingTests {
    static let packaging = TestPackage.root + "/packaging"

    func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
    }

    @Test func installsBinaryUnitAndAPrivateConfigurationOnce() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try ChildProcess.run("/bin/sh", [Self.packaging + "/install-agent.sh", "--root", root, "--binary", Binaries.agent,
                                                     "--server", "https://fleet.example.com", "--token", "fle_0123_secret"])
        #expect(first.status == 0, "\(first.errorText)")
        #expect(!first.outputText.contains("fle_0123_secret") && !first.errorText.contains("fle_0123_secret"))
        #expect(try mode(root + "/usr/local/bin/flotilla-agent") == 0o755)
        #expect(try mode(root + "/etc/flotilla/agent.yaml") == 0o600)
        #expect(try mode(root + "/var/lib/flotilla") == 0o700)
        let unit = try String(contentsOfFile: root + "/etc/systemd/system/flotilla-agent.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/flotilla-agent --config /etc/flotilla/agent.yaml"))
        #expect(unit.contains("RestartPreventExitStatus=2 3"))
        // The written configuration is one the agent reads, with the server and token filled in.
        let configuration = try AgentConfiguration.load(path: root + "/etc/flotilla/agent.yaml")
        #expect(configuration.server == "https://fleet.example.com")
        #expect(configuration.enrollmentToken == "fle_0123_secret")
        #expect(configuration.allowedRoots == ["/opt", "/var/lib/flotilla"])
        // Installing again keeps the configuration an operator may have edited.
        try "server: https://edited.example.com\n".write(toFile: root + "/etc/flotilla/agent.yaml", atomically: true, encoding: .utf8)
        let second = try ChildProcess.run("/bin/sh", [Self.packaging + "/install-agent.sh", "--root", root, "--binary", Binaries.agent,
                                                      "--server", "https://other.example.com"])
        #expect(second.status == 0)
        #expect(second.outputText.contains("keeping the existing"))
        #expect(try AgentConfiguration.load(path: root + "/etc/flotilla/agent.yaml").server == "https://edited.example.com")
        let installed = try ChildProcess.run(root + "/usr/local/bin/flotilla-agent", ["--version"])
        #expect(installed.outputText == "flotilla-agent \(Agent.version)\n")
    }

    @Test func refusesBadInput() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let script = Self.packaging + "/install-agent.sh"
        let badURL = try ChildProcess.run("/bin/sh", [script, "--root", root, "--binary", Binaries.agent, "--server", "fleet.example.com"])
        #expect(badURL.status == 2 && badURL.errorText.contains("--server must be an http:// or https:// URL"))
        let noBinary = try ChildProcess.run("/bin/sh", [script, "--root", root, "--binary", root + "/none"])
        #expect(noBinary.status == 2 && noBinary.errorText.contains("no agent binary"))
        let noServer = try ChildProcess.run("/bin/sh", [script, "--root", root, "--binary", Binaries.agent])
        #expect(noServer.status == 2 && noServer.errorText.contains("pass --server"))
        // Plain HTTP to another machine is said before anything is installed; on purpose, it is written down.
        let plain = try ChildProcess.run("/bin/sh", [script, "--root", root, "--binary", Binaries.agent, "--server", "http://fleet.example.com"])
        #expect(plain.status == 2 && plain.errorText.contains("--allow-plain-http"), "\(plain.errorText)")
        #expect(!FileManager.default.fileExists(atPath: root + "/etc/flotilla/agent.yaml"))
        let allowed = try ChildProcess.run("/bin/sh", [script, "--root", root, "--binary", Binaries.agent, "--server", "http://fleet.example.com",
                                                       "--allow-plain-http"])
        #expect(allowed.status == 0, "\(allowed.errorText)")
        let written = try String(contentsOfFile: root + "/etc/flotilla/agent.yaml", encoding: .utf8)
        #expect(written.contains("\nallowPlainHTTP: true\n") && written.contains("server: http://fleet.example.com"))
        let configuration = try AgentConfiguration.parse(Array(written.utf8), file: "agent.yaml")
        #expect(configuration.allowPlainHTTP && configuration.server == "http://fleet.example.com")
    }

    @Test func theAgentRefusesBadFlagsAndSettings() throws {
        let unknown = try ChildProcess.run(Binaries.agent, ["--colour"])
        #expect(unknown.status == 2 && unknown.errorText.hasPrefix("flotilla-agent: unknown option '--colour'"))
        let interval = try ChildProcess.run(Binaries.agent, ["--server", "http://x", "--interval", "0"])
        #expect(interval.status == 2 && interval.errorText.contains("--interval must be a whole number"))
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "server: http://x\nheartbeat: 5\n".write(toFile: root + "/agent.yaml", atomically: true, encoding: .utf8)
        let config = try ChildProcess.run(Binaries.agent, ["--config", root + "/agent.yaml"])
        #expect(config.status == 2 && config.errorText.contains("\(root)/agent.yaml:2:1: unknown setting 'heartbeat'"))
        // Not enrolled and no token: said plainly, nothing sent.
        let noToken = try ChildProcess.run(Binaries.agent, ["--server", "http://127.0.0.1:9", "--data", root + "/data", "--hardware-id", "x"],
                                           environment: ["PATH": "/usr/bin:/bin"])
        #expect(noToken.status == 2 && noToken.errorText.contains("no enrollment token"))
        // Plain HTTP to another machine is refused unless set on purpose.
        let plain = try ChildProcess.run(Binaries.agent, ["--server", "http://fleet.example.com", "--data", root + "/data", "--hardware-id", "x"],
                                         environment: ["PATH": "/usr/bin:/bin"])
        #expect(plain.status == 2 && plain.errorText.contains("allowPlainHTTP: true"), "\(plain.errorText)")
    }
}
