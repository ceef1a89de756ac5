import FleetTesting
import Foundation
import Testing

/// `flotilla validate` and `plan` reading from git: a remote served by git daemon, and a
/// pull request's base and head in a local clone.
@Suite(.serialized)
struct GitSourceTests {
    let daemon: GitDaemon
    let work: WorkTree
    let inventory = TestPaths.template + "/inventory.example.json"

    init() throws {
        daemon = try GitDaemon()
        work = try daemon.createRepository("fleet", contents: TestPaths.template)
    }

    var cache: String { daemon.root + "/cache" }

    @Test func validatesARemoteBranch() throws {
        let result = try CommandResult.run(["validate", "--repo", daemon.url("fleet"), "--ref", "main", "--cache", cache])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("valid: project acme-climate"))
    }

    @Test func reportsAnInvalidRemoteBranchWithPlaces() throws {
        try work.git("checkout", "--quiet", "-b", "broken")
        try work.write("groups/oslo.yaml", "kind: Group\nname: oslo\nselectr: site=oslo\n")
        try work.commitAll("Add oslo")
        try work.git("push", "--quiet", "origin", "broken")
        let result = try CommandResult.run(["validate", "--repo", daemon.url("fleet"), "--ref", "broken", "--cache", cache])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("groups/oslo.yaml:3:1: error: unknown key 'selectr' in Group; did you mean 'selector'?\n"))
    }

    /// A hidden file is skipped by both readers: what passes `validate` on a checkout is what
    /// the controller deploys from the git tree.
    @Test func aCheckoutAndItsGitTreeSkipTheSameHiddenFiles() throws {
        try work.git("checkout", "--quiet", "-b", "shadow")
        let shadow = "kind: App\nname: shadow\nflow: no-such-flow\ntargets: [{group: canary, version: '1'}]\n"
        try work.write("apps/.shadow.yaml", shadow)
        try work.write("apps/.hidden/app.yaml", shadow)
        try work.commitAll("Add hidden files")
        try work.git("push", "--quiet", "origin", "shadow")
        let checkout = try CommandResult.run(["validate", work.path])
        #expect(checkout.status == 0, "\(checkout.stderr)")
        let tree = try CommandResult.run(["validate", "--repo", daemon.url("fleet"), "--ref", "shadow", "--cache", cache])
        #expect(tree.status == 0, "\(tree.stderr)")
        #expect(tree.stdout == checkout.stdout)
    }

    @Test func anUnreachableRemoteIsAClearError() throws {
        daemon.stop()
        let result = try CommandResult.run(["validate", "--repo", daemon.url("fleet"), "--cache", cache])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: fetch main from \(daemon.url("fleet")): "))
    }

    @Test func aPullRequestPlanShowsOnlyWhatTheChangeMoves() throws {
        let base = try work.git("rev-parse", "HEAD")
        let thermostat = try String(contentsOfFile: work.path + "/apps/thermostat.yaml", encoding: .utf8)
        try work.write("apps/thermostat.yaml", thermostat.replacingOccurrences(of: "version: 2.3.9", with: "version: 2.4.1"))
        let head = try work.commitAll("Move the remaining thermostats to 2.4.1")

        let result = try CommandResult.run(["plan", work.path, "--devices", inventory, "--base", base, "--head", head])
        #expect(result.status == 1)
        // Only the thermostats target moved; thermo-oslo-002 was pending already but now goes to 2.4.1.
        #expect(result.stdout.contains("  thermostats → 2.4.1: 2 to change (2 update), 0 unchanged"))
        #expect(result.stdout.contains("    ~ thermo-oslo-001  2.3.9 → 2.4.1"))
        #expect(result.stdout.contains("    ~ thermo-oslo-002  2.3.8 → 2.4.1"))
        // Devices that were already out of date at the base, and still go to the same version, are not this change's doing.
        #expect(!result.stdout.contains("thermo-berlin-004"))
        #expect(result.stdout.hasSuffix("2 changes across 1 app from this change (20 devices in the inventory).\n"))

        let same = try CommandResult.run(["plan", work.path, "--devices", inventory, "--base", head, "--head", head])
        #expect(same.status == 0)
        #expect(same.stdout.hasSuffix("No changes: this change moves no device.\n"))
    }

    @Test func aPullRequestPlanCanReadTheRemote() throws {
        let thermostat = try String(contentsOfFile: work.path + "/apps/thermostat.yaml", encoding: .utf8)
        try work.git("checkout", "--quiet", "-b", "bump")
        try work.write("apps/thermostat.yaml", thermostat.replacingOccurrences(of: "version: 2.3.9", with: "version: 2.4.1"))
        try work.commitAll("Bump")
        try work.git("push", "--quiet", "origin", "bump")
        let result = try CommandResult.run(["plan", "--repo", daemon.url("fleet"), "--cache", cache, "--devices", inventory,
                                            "--base", "main", "--head", "bump", "--format", "json"])
        #expect(result.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["changes"] as? Int == 2)
    }

    @Test func baseWithoutHeadIsAUsageError() throws {
        let result = try CommandResult.run(["plan", work.path, "--devices", inventory, "--base", "HEAD"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--base and --head go together"))
    }
}
