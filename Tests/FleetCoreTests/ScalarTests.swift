@testable import FleetCore
import Testing

struct DurationTests {
    static let valid: [(String, Int64)] = [
        ("30s", 30_000), ("5m", 300_000), ("2h", 7_200_000), ("1h30m", 5_400_000), ("500ms", 500), ("7d", 604_800_000), ("0s", 0),
    ]

    @Test(arguments: valid)
    func parses(_ row: (String, Int64)) throws {
        #expect(try DurationText.parse(row.0).get() == .milliseconds(row.1))
    }

    @Test(arguments: ["", "30", "5 minutes", "m5", "3w", "1.5h", "99999999999999999999s"])
    func rejects(_ text: String) {
        #expect(throws: DurationText.Problem.self) { try DurationText.parse(text).get() }
    }

    @Test func formatsShortest() {
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.milliseconds(3_600_250)) == "1h250ms")
        #expect(DurationText.format(.zero) == "0s")
    }
}

struct QuantityTests {
    @Test func parsesCountsAndPercentages() {
        #expect(Quantity.parse("5") == .count(5))
        #expect(Quantity.parse("12.5%") == .percent(12.5))
        #expect(Quantity.parse("five") == nil)
        #expect(Quantity.parse("%") == nil)
    }

    /// Exactly the grammar the JSON Schema's patterns state: digits, a fraction only before '%',
    /// a '+' as YAML integers may carry; no spaces, exponents or minus.
    @Test(arguments: [
        ("+5", Quantity.count(5)), ("007", .count(7)), ("0.5%", .percent(0.5)), ("100%", .percent(100)),
        (" 5 %", nil), ("1e1%", nil), ("5.0", nil), ("-3", nil), ("+5%", nil), (".5%", nil), ("5.%", nil), ("", nil), ("5 ", nil),
    ] as [(String, Quantity?)])
    func readsOnlyWhatTheSchemaStates(_ row: (String, Quantity?)) {
        #expect(Quantity.parse(row.0) == row.1)
    }

    @Test func batchesRoundUpAndAllowancesRoundDown() {
        #expect(Quantity.percent(10).devices(of: 5) == 1)
        #expect(Quantity.percent(25).devices(of: 10) == 3)
        #expect(Quantity.percent(5).allowance(of: 10) == 0)
        #expect(Quantity.percent(5).allowance(of: 40) == 2)
        #expect(Quantity.count(7).devices(of: 3) == 7)
    }

    @Test func wavesCoverEveryDeviceOnce() {
        var policy = RolloutPolicy(batchSize: .percent(30), maxUnavailable: .count(5), maxFailures: .count(0),
                                   onAbort: .rollback, executionTimeout: .seconds(60))
        #expect(policy.waveSizes(for: 10) == [3, 3, 3, 1])
        // A wave never holds more than maxUnavailable: 25% of 20 is 5, but at most 3 at once.
        policy.batchSize = .percent(25)
        policy.maxUnavailable = .count(3)
        #expect(policy.waveSizes(for: 20) == [3, 3, 3, 3, 3, 3, 2])
        // Percentages are of the whole rollout, offline devices included, though they are in no wave.
        #expect(policy.waveSizes(for: 16, total: 20) == [3, 3, 3, 3, 3, 1])
        #expect(policy.waveSizes(for: 0) == [])
        #expect(PlanRenderer.waveSummary([3, 3, 3, 1]) == "3×3, 1×1")
    }
}

struct TemplateTests {
    @Test func findsReferencesWithOffsets() throws {
        let references = try Template.references(in: "curl ${url}/${version}.tgz").get()
        #expect(references == [Template.Reference(name: "url", offset: 5), Template.Reference(name: "version", offset: 12)])
    }

    @Test func rendersAndEscapes() {
        let values = ["app": "web", "version": "1.2"]
        #expect(Template.render("/opt/${app}/${version}", { values[$0] }) == "/opt/web/1.2")
        #expect(Template.render("echo $${HOME} $PATH", { values[$0] }) == "echo ${HOME} $PATH")
        #expect(Template.render("${missing}", { values[$0] }) == "${missing}")
    }

    @Test func reportsSyntaxErrors() {
        #expect(throws: Template.Problem(offset: 5, reason: "'${' is not closed by '}'")) { try Template.references(in: "echo ${app").get() }
        #expect(throws: Template.Problem(offset: 0, reason: "'${a-b}' is not a parameter name; names are letters, digits and '_'")) {
            try Template.references(in: "${a-b}").get()
        }
    }
}

struct SHA256Tests {
    @Test func matchesTheStandardVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(Array(repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

struct WebURLTests {
    @Test func allowlistMatchesAtSegmentBoundaries() throws {
        let source = ArtifactSource(url: try WebURL.parse("https://artifacts.example.com/releases").get(), location: SourceLocation(path: "fleet.yaml"))
        func allows(_ text: String) throws -> Bool { source.allows(try WebURL.parse(text).get()) }
        #expect(try allows("https://artifacts.example.com/releases/web/1.0.tgz"))
        #expect(try allows("https://ARTIFACTS.example.com/releases/web.tgz"))
        #expect(try !allows("https://artifacts.example.com/releases-evil/web.tgz"))
        #expect(try !allows("http://artifacts.example.com/releases/web.tgz"))
        #expect(try !allows("https://artifacts.example.com:8443/releases/web.tgz"))
        #expect(try !allows("https://artifacts.example.com.evil.net/releases/web.tgz"))
    }

    @Test(arguments: ["ftp://x/y", "https://user@host/x", "https:///x", "https://host/a/../b", "https://host/%2E%2E/b", "https://host:99999/"])
    func refusesTricks(_ text: String) {
        #expect(throws: WebURL.Problem.self) { try WebURL.parse(text).get() }
    }
}

/// Text means the same to the loader and to every YAML 1.2 reader (the editor's schema check,
/// yq, scripts): a plain scalar those read as a number or a boolean is not taken as text.
struct ScalarTypeTests {
    @Test(arguments: [
        ("0", true), ("-12", true), ("+5", true), ("0o17", true), ("0x1F", true), ("2.6", true), ("2.", true), (".5", true),
        ("1e3", true), ("1.5E-2", true), (".inf", true), ("-.Inf", true), (".nan", true),
        ("2.5.0", false), ("1e", false), ("0o8", false), ("0x", false), ("e3", false), (".", false), ("+", false), ("1_000", false),
        ("yes", false), ("0b101", false), ("12:30", false), ("2026-12-04", false), ("inf", false), ("1 2", false),
    ])
    func numbersAsYAMLReadsThem(_ row: (String, Bool)) {
        #expect(CoreSchema.isNumber(row.0) == row.1)
    }

    static func load(group: String = "", device: String = "", step: String = "", target: String = "") throws -> CompiledFleet {
        try FleetFixtures.load([
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/g.yaml": "kind: Group\nname: g\nselector: ring=main\n" + group,
            "devices/d.yaml": "kind: Devices\ndevices:\n  d1: {tags: {ring: main}\(device)}\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x\(step)}\n",
            "apps/a.yaml": "kind: App\nname: a\nflow: f\ntargets:\n  - {group: g\(target)}\n",
        ])
    }

    /// Each refusal names the place and says how to write it.
    @Test(arguments: [
        ("group", "description: 42\n", "groups/g.yaml:4:14: error: expected text for 'description', found the number 42; quote it (\"42\")"),
        ("group", "description: true\n", "groups/g.yaml:4:14: error: expected text for 'description', found the boolean true"),
        ("device", ", description: 1.5", "devices/d.yaml:3:41: error: expected text for 'description', found the number 1.5"),
        ("device", ", description: {a: b}", "devices/d.yaml:3:41: error: expected a string for 'description', found a mapping"),
        ("step", ", idempotent: \"true\"", "flows/f.yaml:4:35: error: expected true or false for 'idempotent', found the text \"true\"; write it without quotes"),
        ("step", ", retries: '3'", "flows/f.yaml:4:32: error: expected a whole number for 'retries', found the text \"3\""),
        ("group", "description: 0x1F\n", "groups/g.yaml:4:14: error: expected text for 'description', found the number 0x1F"),
        ("target", ", version: true", "apps/a.yaml:5:25: error: expected text or a number for 'version', found true or false"),
    ])
    func misreadScalarsAreRefused(_ row: (String, String, String)) throws {
        let error = #expect(throws: FleetValidationError.self) {
            switch row.0 {
            case "group": try Self.load(group: row.1, target: ", version: '1'")
            case "device": try Self.load(device: row.1, target: ", version: '1'")
            case "step": try Self.load(step: row.1, target: ", version: '1'")
            default: try Self.load(target: row.1)
            }
        }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.contains { $0.hasPrefix(row.2) }, "\(messages)")
    }

    /// What every reader takes the same way is accepted: versions as numbers, quoted text,
    /// tag values that are numbers or booleans, text YAML 1.1 would have read as a boolean, null.
    @Test func whatEveryReaderAgreesOnIsAccepted() throws {
        let fleet = try Self.load(group: "description: !!str 42\n", device: ", description: null", step: ", retries: 3, idempotent: true",
                                  target: ", version: 2.10")
        #expect(fleet.apps.first?.targets.first?.version == "2.10")
        let tagged = try FleetFixtures.load([
            "fleet.yaml": "kind: Fleet\nproject: p\ndescription: yes\n",
            "groups/g.yaml": "kind: Group\nname: g\nselector: ring=main\n",
            "devices/d.yaml": "kind: Devices\ndevices:\n  d1: {tags: {ring: main, floor: 3, lab: true, rev: 1.5}}\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x}\n",
            "apps/a.yaml": "kind: App\nname: a\nflow: f\ntargets:\n  - {group: g, version: 7}\n",
        ])
        #expect(tagged.devices.first?.tags == ["ring": "main", "floor": "3", "lab": "true", "rev": "1.5"])
    }
}
