import Foundation
import Testing

/// The `flotilla` binary as scripts and CI use it: exit codes, streams and formats.
struct CommandLineTests {
    let template = TestPaths.template
    let inventory = TestPaths.template + "/inventory.example.json"

    @Test func validateAcceptsTheTemplate() throws {
        let result = try CommandResult.run(["validate", template])
        #expect(result.status == 0)
        #expect(result.stdout == "valid: project acme-climate, 2 apps, 5 groups, 2 flows, 4 declared devices, 3 alert rules\n")
        #expect(result.stderr.isEmpty)
    }

    @Test func validateReportsErrorsLikeACompilerAndExitsTwo() throws {
        let result = try CommandResult.run(["validate", TestPaths.brokenFixtures + "/many-errors-in-many-files"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.split(separator: "\n") == [
            "apps/web.yaml:3:7: error: App 'web' uses flow 'basik', which is not declared in flows/; did you mean 'basic'?",
            "fleet.yaml:6:18: error: 'maxFailures' is 101%, over 100%",
            "groups/canary.yaml:3:23: error: invalid selector: expected a requirement after ','",
            "3 errors",
        ])
    }

    @Test func validateSpeaksJSONForTools() throws {
        let result = try CommandResult.run(["validate", TestPaths.brokenFixtures + "/dangling-group", "--format", "json"])
        #expect(result.status == 2)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["valid"] as? Bool == false)
        let errors = json?["errors"] as? [[String: Any]]
        #expect(errors?.count == 1)
        #expect(errors?.first?["path"] as? String == "apps/web.yaml")
        #expect(errors?.first?["line"] as? Int == 5)
        #expect(errors?.first?["column"] as? Int == 12)
        #expect(errors?.first?["message"] as? String == "unknown group 'canry'; did you mean 'canary'?")
    }

    /// Help offers only the formats validate accepts; plan, which speaks markdown, still offers it.
    @Test func validateOffersOnlyTheFormatsItAccepts() throws {
        let help = try CommandResult.run(["validate", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("text, json"))
        #expect(!help.stdout.contains("markdown"))
        let refused = try CommandResult.run(["validate", template, "--format", "markdown"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("markdown"))
        #expect(try CommandResult.run(["plan", "--help"]).stdout.contains("markdown"))
    }

    @Test func aMissingDirectoryIsAClearErrorNotACrash() throws {
        let result = try CommandResult.run(["validate", "/nonexistent/fleet"])
        #expect(result.status == 2)
        #expect(result.stderr == "error: /nonexistent/fleet: no such directory\n")
    }

    @Test func anUnknownFlagExitsTwoAndNamesTheFlag() throws {
        let result = try CommandResult.run(["plan", template, "--devices", inventory, "--formatt", "json"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("Unknown option '--formatt'"))
        #expect(!result.stderr.contains("Swift"))
    }

    @Test func planExitsOneWhenDevicesWouldChange() throws {
        let result = try CommandResult.run(["plan", template, "--devices", inventory])
        #expect(result.status == 1)
        #expect(result.stdout.contains("    ~ thermo-berlin-004  2.4.0 → 2.4.1"))
        #expect(result.stdout.contains("    + thermo-paris-004 (offline)  (not installed) → 2.4.1"))
        #expect(result.stdout.hasSuffix("8 changes across 2 apps (20 devices in the inventory).\n"))
    }

    @Test func planExitsZeroWhenNothingWouldChange() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The devices report exactly what the template wants them to run.
        let converged = """
            {"devices": [
              {"id": "thermo-lab-01", "tags": {"hw": "rpi4"}, "apps": {"thermostat": "2.5.0"}},
              {"id": "thermo-oslo-001", "tags": {"hw": "rpi4", "site": "oslo"}, "apps": {"thermostat": "2.3.9"}},
              {"id": "gw-paris-01", "tags": {"hw": "gateway", "site": "paris"}, "apps": {"telemetry": "1.7.3"}}
            ]}
            """
        _ = FileManager.default.createFile(atPath: directory + "/devices.json", contents: Data(converged.utf8))
        let result = try CommandResult.run(["plan", template, "--devices", directory + "/devices.json"])
        #expect(result.status == 0)
        #expect(result.stdout.hasSuffix("No changes: every device already runs what the repository says.\n"))
    }

    @Test func planExitsTwoOnAnInvalidRepository() throws {
        let result = try CommandResult.run(["plan", TestPaths.brokenFixtures + "/bad-duration", "--devices", inventory])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("fleet.yaml:7:23: error: invalid duration '5 minutes'"))
    }

    @Test func planExitsTwoOnABrokenInventoryAndSaysWhere() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/devices.json",
                                       contents: Data(#"{"devices": [{"id": "a"}, {"id": "b", "online": "yes"}]}"#.utf8))
        let result = try CommandResult.run(["plan", template, "--devices", directory + "/devices.json"])
        #expect(result.status == 2)
        #expect(result.stderr == "error: \(directory)/devices.json: devices[1].online: expected true or false\n")
    }

    @Test func planRefusesAnInventoryThatListsADeviceTwice() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/devices.json",
                                       contents: Data(#"[{"id": "b"}, {"id": "a"}, {"id": "b"}]"#.utf8))
        let result = try CommandResult.run(["plan", template, "--devices", directory + "/devices.json"])
        #expect(result.status == 2)
        #expect(result.stderr == "error: \(directory)/devices.json: device 'b' appears more than once in the inventory\n")
    }

    @Test func planMarkdownIsAPullRequestComment() throws {
        let result = try CommandResult.run(["plan", template, "--devices", inventory, "--format", "markdown", "--limit", "1"])
        #expect(result.status == 1)
        #expect(result.stdout.hasPrefix("## Flotilla plan\n\n8 changes across 2 apps"))
        // One of the two is offline: it is in no wave and waits.
        #expect(result.stdout.contains("| thermostat | europe | `2.4.1` | **2** (1 install, 1 update) | 8 | 1 | 1×1 |"))
        #expect(result.stdout.contains("1. wave of 1: `"))
        #expect(result.stdout.contains("- waiting, offline (updated when heard again, not failed): `"))
        #expect(result.stdout.contains("_and 1 more_"))
    }

    @Test func planJSONListsEveryChange() throws {
        let result = try CommandResult.run(["plan", template, "--devices", inventory, "--format", "json"])
        #expect(result.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["changes"] as? Int == 8)
        let apps = json?["apps"] as? [[String: Any]]
        #expect(apps?.map { $0["name"] as? String } == ["telemetry", "thermostat"])
    }

    /// A data directory made before with looser rules (0755, a world-readable database) is made
    /// private to the server's user, and what is created in it from then on is private too.
    @Test func theDataDirectoryIsMadePrivateEvenWhenItExisted() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = root + "/data"
        let manager = FileManager.default
        try manager.createDirectory(atPath: data + "/git", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: data)
        #expect(manager.createFile(atPath: data + "/device-signing-key.pem", contents: Data("key".utf8), attributes: [.posixPermissions: 0o644]))
        let first = try CommandResult.run(["token", "create", "--project", "acme", "--data", data])
        #expect(first.status == 0, "\(first.stderr)")
        func mode(_ path: String) throws -> Int { try manager.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1 }
        #expect(try mode(data) == 0o700)
        #expect(try mode(data + "/git") == 0o700)
        #expect(try mode(data + "/device-signing-key.pem") == 0o600)
        let files = try manager.contentsOfDirectory(atPath: data).filter { $0.hasPrefix("flotilla.sqlite") }
        #expect(files.contains("flotilla.sqlite"))
        for file in files { #expect(try mode(data + "/" + file) == 0o600, "\(file)") }
    }

    /// Whatever another user could plant while the directory was open to them is refused, not trusted.
    @Test func aPlantedLinkInTheDataDirectoryIsRefused() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = root + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/their-key.pem", contents: Data("key".utf8)))
        try FileManager.default.createSymbolicLink(atPath: data + "/device-signing-key.pem", withDestinationPath: root + "/their-key.pem")
        let refused = try CommandResult.run(["token", "create", "--project", "acme", "--data", data])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("device-signing-key.pem is a symbolic link"), "\(refused.stderr)")
        try FileManager.default.removeItem(atPath: data + "/device-signing-key.pem")
        try FileManager.default.linkItem(atPath: root + "/their-key.pem", toPath: data + "/device-signing-key.pem")
        let linked = try CommandResult.run(["token", "create", "--project", "acme", "--data", data])
        #expect(linked.stderr.contains("has 2 hard links"), "\(linked.stderr)")
    }

    @Test func resetIdentityTakesOnlyADeviceID() throws {
        let result = try CommandResult.run(["devices", "reset-identity", "../tokens"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("'../tokens' is not a device id"))
        for bad in ["10s", "31d", "soon"] {
            let refused = try CommandResult.run(["devices", "reset-identity", "d-1", "--claim-expires", bad])
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("--claim-expires must be a duration from 1m to 30d, such as 24h, not '\(bad)'"))
        }
    }

    @Test func schemaIsJSONSchema2020() throws {
        let result = try CommandResult.run(["schema"])
        #expect(result.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        let committed = try String(contentsOfFile: template + "/.flotilla/schema.json", encoding: .utf8)
        #expect(committed == result.stdout, "regenerate fleet-repo-template/.flotilla/schema.json with `flotilla schema`")
    }

    @Test func versionIsPrinted() throws {
        let result = try CommandResult.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout == "0.1.0\n")
    }
}
