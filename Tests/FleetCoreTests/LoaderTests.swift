import FleetProtocol
@testable import FleetCore
import Foundation
import Testing

struct LoaderTests {
    @Test func loadsMultiDocumentFilesAndResolvesTargets() throws {
        let fleet = try FleetFixtures.load(FleetFixtures.shop)
        #expect(fleet.groups.map(\.name) == ["berlin", "canary", "everyone", "vip"])
        #expect(fleet.apps.map(\.name) == ["printer", "web"])
        let web = try #require(fleet.apps.last)
        #expect(web.targets.map(\.group) == ["vip", "canary", "berlin", "everyone"])
        #expect(web.targets[0].parameters == ["color": "blue"])
        #expect(web.targets[1].parameters == ["color": "red"])
        // App rollout over fleet defaults over the built-in policy.
        #expect(web.app.rollout.batchSize == .percent(50))
        #expect(web.app.rollout.maxFailures == .count(0))
        #expect(web.app.rollout.maxUnavailable == RolloutPolicy.builtIn.maxUnavailable)
    }

    @Test func digestsChangeWithVersionAndParametersOnly() throws {
        let fleet = try FleetFixtures.load(FleetFixtures.shop)
        let web = try #require(fleet.apps.last)
        #expect(Set(web.targets.map(\.digest)).count == 4)
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = files["flows/simple.yaml"]!.replacingOccurrences(of: "install ${app}", with: "setup ${app}")
        let reworded = try FleetFixtures.load(files)
        #expect(reworded.apps.last?.targets.map(\.digest) == web.targets.map(\.digest))
    }

    @Test func collectsEveryErrorNotOnlyTheFirst() {
        var files = FleetFixtures.shop
        files["apps/web.yaml"] = """
            kind: App
            name: web
            flow: simple
            targets:
              - {group: vip, version: "3.0", parameters: {color: green}}
              - {group: nobody, version: "2.1"}
            rollout: {batchSize: 0%, maxUnavailable: 200%}
            selfheal: true
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.map(\.description) == [
            "apps/web.yaml:5:54: error: parameter 'color' (enum): expected one of red, blue, found 'green'",
            "apps/web.yaml:6:13: error: unknown group 'nobody'",
            "apps/web.yaml:7:22: error: 'batchSize' must be more than 0%, found 0%",
            "apps/web.yaml:7:42: error: 'maxUnavailable' is 200%, over 100%",
            "apps/web.yaml:8:1: error: unknown key 'selfheal' in App; did you mean 'selfHeal'?",
        ])
    }

    @Test func aBuiltInNameCannotBeAParameter() {
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = """
            kind: UpdateFlow
            name: simple
            parameters:
              version: {type: string}
            steps:
              - run: echo ${version}
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.map(\.description).contains("flows/simple.yaml:4:3: error: 'version' is built in; choose another parameter name") == true)
    }

    /// A flow in the repository is held to the rules the API and the agent apply (StepRules).
    @Test func stepsKeepTheRulesEveryPathShares() {
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = """
            kind: UpdateFlow
            name: simple
            steps:
              - name: fetch
                download:
                  url: https://cdn.example.com/${app}.tgz
                  sha256: abc
                  destination: /opt/${app}/../../etc/passwd
              - name: relative
                download:
                  url: https://cdn.example.com/x.tgz
                  sha256: abc
                  destination: etc/passwd
              - name: slow
                run: sleep 1
                timeout: 8d
              - name: many
                run: "true"
                retries: 101
              - name: "bad\\tname"
                run: "true"
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.map(\.description) == [
            "apps/web.yaml:5:54: error: the target for group 'vip' sets parameter 'color', which flow 'simple' does not declare",
            "flows/simple.yaml:8:20: error: the destination of step 'fetch' must not contain a '..' component: a download stays under the directory it names",
            "flows/simple.yaml:13:20: error: the destination of step 'relative' must be an absolute path",
            "flows/simple.yaml:16:14: error: 'timeout' must be from 1s to 7d",
            "flows/simple.yaml:19:14: error: 'retries' must be between 0 and 100, found 101",
            "flows/simple.yaml:20:11: error: the name of step 5 of 'steps' must be 1 to 128 bytes without control characters",
        ])
    }

    @Test(arguments: [
        ("kind: !custom Group\nname: x\nselector: a=b\n", "groups/all.yaml:1:7: error: YAML tag '!custom' is not allowed; fleet files hold plain strings, numbers, booleans, lists and mappings"),
        ("kind: Group\nname: !!python/object:os.system x\nselector: a=b\n", "groups/all.yaml:2:7: error: YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed; fleet files hold plain strings, numbers, booleans, lists and mappings"),
        ("kind: Group\nname: x\nselector: !!binary YWJj\n", "groups/all.yaml:3:11: error: YAML tag 'tag:yaml.org,2002:binary' is not allowed; fleet files hold plain strings, numbers, booleans, lists and mappings"),
        ("kind: Group\nname: canary\nselector: \"\"\n", "groups/all.yaml:3:12: error: invalid selector: an empty selector would select every device; write its requirements, or list 'devices'"),
        ("kind: Group\nname: canary\nselector: '  '\n", "groups/all.yaml:3:12: error: invalid selector: an empty selector would select every device; write its requirements, or list 'devices'"),
    ])
    func tagsAndEmptySelectorsAreRefusedWithTheirPlace(_ text: String, _ expected: String) {
        var files = FleetFixtures.shop
        files["groups/all.yaml"] = text
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.first?.description == expected)
    }

    /// A file name or a value chosen to rewrite the terminal is printed escaped, and a huge one cut.
    @Test func diagnosticsEscapeControlCharactersAndCutHugeNames() {
        var files = FleetFixtures.shop
        files["apps/evil\u{1B}[2J.yaml"] = "kind: App\nname: \(String(repeating: "x", count: 5_000))\n"
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        let text = error?.description ?? ""
        #expect(text.contains("apps/evil\\u{1b}[2J.yaml:"))
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B })
        #expect(text.split(separator: "\n").allSatisfy { $0.count < 1_000 })
        #expect(DisplayText.safe("a\tb\u{202E}c\u{9B}", limit: 10) == "a\\u{9}b\\u{202e}c\\u{9b}")
        #expect(DisplayText.safe("abcdef", limit: 3) == "abc…")
    }

    /// A device reports each step by its number, and the server refuses numbers past
    /// `StepResult.maximumCount`: a flow longer than that is refused where it is written.
    @Test func aFlowOfMoreStepsThanReportsCanNumberIsRefused() {
        var files = FleetFixtures.shop
        let step = "  - name: s\n    run: 'true'\n"
        files["flows/simple.yaml"] = "kind: UpdateFlow\nname: simple\nparameters:\n  color: {type: enum, values: [red, blue], default: red}\nsteps:\n"
            + String(repeating: step, count: StepResult.maximumCount + 1)
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.contains { $0.description.contains("flows/simple.yaml:6:") && $0.description.contains("at most 10000") } == true,
                "\(error?.description ?? "")")
    }

    @Test func quotedSelectorErrorsPointInsideTheQuotes() {
        var files = FleetFixtures.shop
        files["groups/all.yaml"] = "kind: Group\nname: canary\nselector: 'ring in canary'\n"
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.first?.description == "groups/all.yaml:3:20: error: invalid selector: expected '(' to open the list of values, found 'canary'")
    }

    @Test func filesOutsideTheFleetFoldersAreIgnored() throws {
        var files = FleetFixtures.shop
        files["README.md"] = "not yaml: [\n"
        files["docs/notes.yaml"] = "kind: Gadget\n"
        files["groups/README.md"] = "# groups\n"
        #expect(throws: Never.self) { try FleetFixtures.load(files) }
    }

    @Test func anEmptyDocumentIsSkipped() throws {
        var files = FleetFixtures.shop
        files["groups/empty.yaml"] = "# nothing here yet\n---\n"
        #expect(try FleetFixtures.load(files).groups.count == 4)
    }
}

/// Parameters of type `secret`: git holds a secret's name, never its value.
struct SecretParameterTests {
    static func files(flowStep: String = "run: login --password ${password}", value: String = "db-password") -> [String: String] {
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = """
            kind: UpdateFlow
            name: simple
            parameters:
              color: {type: enum, values: [red, blue], default: red}
              password: {type: secret, default: db-password}
            steps:
              - name: install
                run: install ${app} ${version} ${color}
              - name: login
                \(flowStep)
            """
        files["apps/printer.yaml"] = """
            kind: App
            name: printer
            flow: simple
            parameters: {password: \(value)}
            targets:
              - {group: berlin, version: "7"}
            """
        return files
    }

    @Test func aSecretParameterNamesASecretAndStaysOutOfTheParameters() throws {
        let fleet = try FleetFixtures.load(Self.files())
        let target = try #require(fleet.apps.first { $0.name == "printer" }?.targets.first)
        #expect(target.secrets == ["password": "db-password"])
        #expect(target.parameters["password"] == nil)
        #expect(target.parameters["color"] == "red")
        // Naming another secret is another deployment; the web app's digests, without secrets, keep their old form.
        let renamed = try FleetFixtures.load(Self.files(value: "db-password-2"))
        #expect(renamed.apps.first { $0.name == "printer" }?.targets.first?.digest != target.digest)
    }

    @Test(arguments: [
        (value: "'hunter2!'", message: "parameter 'password' (secret): expected the name of a secret the server keeps (flotilla secret set PROJECT NAME), never the secret itself"),
        (value: "Db_Password", message: "never the secret itself"),
    ])
    func aValueThatIsNotASecretNameIsRefused(value: String, message: String) {
        #expect(throws: FleetValidationError.self) { try FleetFixtures.load(Self.files(value: value)) }
        do { _ = try FleetFixtures.load(Self.files(value: value)) } catch {
            #expect("\(error)".contains("apps/printer.yaml:4:"), "\(error)")
            #expect("\(error)".contains(message), "\(error)")
            #expect(!"\(error)".contains("hunter2!") || value.contains("hunter2"), "\(error)")
        }
    }

    @Test func aSecretGoesOnlyIntoRunAndScriptSteps() {
        let download = "download: {url: 'https://cdn.example.com/${password}/a.tgz', sha256: '\(String(repeating: "a", count: 64))', destination: /opt/a.tgz}"
        do {
            _ = try FleetFixtures.load(Self.files(flowStep: download))
            Issue.record("a secret in a download URL was accepted")
        } catch {
            #expect("\(error)".contains("flows/simple.yaml:9:5: error: step 'login' uses secret parameter 'password' outside a run or script step"),
                    "\(error)")
        }
    }
}

/// `probe:` of a flow: what the devices run to tell which version really runs.
struct ProbeDeclarationTests {
    static func files(probe: String) -> [String: String] {
        var files = SecretParameterTests.files()
        files["flows/simple.yaml"]! += "\nprobe:\n" + probe.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        return files
    }

    @Test func aProbeIsReadWithItsDefaultsAndReachesTheFlow() throws {
        let fleet = try FleetFixtures.load(Self.files(probe: "run: cat /opt/${app}/VERSION"))
        let probe = try #require(fleet.apps.first { $0.name == "printer" }?.flow.probe)
        #expect(probe.command == "cat /opt/${app}/VERSION")
        #expect(probe.timeout == .seconds(30))
        #expect(probe.interval == .seconds(300))
        let timed = try FleetFixtures.load(Self.files(probe: "run: 'dpkg-query -W -f=${color} x'\ntimeout: 5s\ninterval: 1m"))
        #expect(timed.apps.first?.flow.probe?.interval == .seconds(60))
        #expect(timed.apps.first?.flow.probe?.timeout == .seconds(5))
        // A probe is not part of the digest: adding one does not redeploy every device.
        let without = try FleetFixtures.load(SecretParameterTests.files())
        #expect(without.apps.map { $0.targets.map(\.digest) } == fleet.apps.map { $0.targets.map(\.digest) })
    }

    @Test(arguments: [
        ("timeout: 5s", "flows/simple.yaml:12:3: error: missing required key 'run' in probe of UpdateFlow 'simple'"),
        ("run: check\ntimeout: 2h", "flows/simple.yaml:13:12: error: the probe's 'timeout' must be from 1s to 1h\n"),
        ("run: check\ninterval: 5s", "flows/simple.yaml:13:13: error: the probe's 'interval' must be from 10s to 1d\n"),
        ("run: check\ntimeout: 1m\ninterval: 1m", "flows/simple.yaml:13:12: error: the probe's timeout must be shorter than its interval"),
        ("run: check ${password}", "flows/simple.yaml:12:8: error: the probe of UpdateFlow 'simple' uses secret parameter 'password'"),
        ("run: check ${colour}", "flows/simple.yaml:12:14: error: step 'probe' uses '${colour}', which is neither a declared parameter"),
        ("run: \"  \"", "flows/simple.yaml:12:8: error: the probe of UpdateFlow 'simple' has an empty command"),
        ("run: check\nevery: 5m", "flows/simple.yaml:13:3: error: unknown key 'every' in probe of UpdateFlow 'simple'"),
    ])
    func aBadProbeIsRefusedWhereItIsWrong(probe: String, message: String) {
        do {
            _ = try FleetFixtures.load(Self.files(probe: probe))
            Issue.record("accepted: \(probe)")
        } catch {
            // One error each: an out-of-range duration is not compared with the other as well.
            #expect("\(error)\n".contains(message), "\(error)")
            #expect("\(error)".split(separator: "\n").count == 1, "\(error)")
        }
    }
}

/// `remote:` in fleet.yaml: off unless written, and a path that could not be checked safely is
/// refused where it is written.
struct RemoteAccessDeclarationTests {
    static func files(remote: String?) -> [String: String] {
        var files = FleetFixtures.shop
        if let remote {
            files["fleet.yaml"] = "kind: Fleet\nproject: shop\nremote:\n" + remote.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return files
    }

    @Test func offUnlessWrittenAndReadWhenItIs() throws {
        #expect(try FleetFixtures.load(Self.files(remote: nil)).fleet.remote == RemoteAccess())
        #expect(!RemoteAccess().isEnabled)
        let on = try FleetFixtures.load(Self.files(remote: "exec: true\nfetchPaths: [/var/log, /opt/app/logs]")).fleet.remote
        #expect(on == RemoteAccess(exec: true, fetchPaths: ["/var/log", "/opt/app/logs"]))
        #expect(on.fetchProblem("/var/log/syslog") == nil)
        #expect(on.fetchProblem("/var/log") == nil)
        #expect(on.fetchProblem("/var/logs/x") != nil, "a prefix that is not at a / is not under it")
        #expect(on.fetchProblem("/var/log/../shadow")?.contains(". or ..") == true)
        #expect(RemoteAccess(fetchPaths: ["/"]).fetchProblem("/etc/hosts") == nil)
        #expect(RemoteAccess().fetchProblem("/var/log/x")?.contains("remote: {fetchPaths: [/var/log]}") == true)
    }

    @Test(arguments: [
        ("exec: yes please", "fleet.yaml:4:9: error: expected true or false for 'exec'"),
        ("fetchPaths: [var/log]", "fleet.yaml:4:16: error: invalid fetch path: 'var/log' is not an absolute path"),
        ("fetchPaths: [/var/log/../etc]", "fleet.yaml:4:16: error: invalid fetch path: '/var/log/../etc' has a . or .. part"),
        ("fetchPaths: [/var/log/]", "fleet.yaml:4:16: error: invalid fetch path: '/var/log/' has an empty part"),
        ("fetchPaths: [/var/log, /var/log]", "fleet.yaml:4:26: error: '/var/log' is listed twice in 'fetchPaths'"),
        ("shell: true", "fleet.yaml:4:3: error: unknown key 'shell' in remote"),
        ("fetchPaths: [/]", "fleet.yaml:4:16: error: invalid fetch path: '/' would allow every file"),
    ])
    func aBadRemoteSectionIsRefusedWhereItIsWrong(remote: String, message: String) {
        do {
            _ = try FleetFixtures.load(Self.files(remote: remote))
            Issue.record("accepted: \(remote)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }
}

/// `status.repository` goes into the forge's API paths and web links: nothing in it may reach
/// past the repository.
struct StatusRepositoryTests {
    static func files(repository: String) -> [String: String] {
        var files = FleetFixtures.shop
        files["fleet.yaml"] = "kind: Fleet\nproject: shop\nstatus:\n  forge: gitlab\n  repository: '\(repository)'\n"
        return files
    }

    @Test func ownerNameAPathOrAnIdAreRead() throws {
        for repository in ["acme/fleet", "acme/fleet.git-mirror_2", "group/subgroup/fleet", "12345"] {
            #expect(try FleetFixtures.load(Self.files(repository: repository)).fleet.status.repository == repository)
        }
    }

    @Test func anythingElseIsAnErrorAtItsPlace() {
        let table = ["acme", "acme/../admin", "acme/./fleet", "acme//fleet", "/acme/fleet", "acme/fleet#x", "acme/fleet?x=1", "acme/fl eet",
                     "evil/x/commit/0000#\"><script>"]
        for repository in table {
            do {
                _ = try FleetFixtures.load(Self.files(repository: repository))
                Issue.record("accepted: \(repository)")
            } catch {
                #expect("\(error)".contains("fleet.yaml:5:15: error: invalid 'repository'"), "\(error)")
            }
        }
    }
}
