@testable import FleetCore
import FleetProtocol
import Testing

/// A fleet repository is anyone's to write who can push to it, and CI plans what a pull request
/// would change before anyone merges it: what a repository says must cost bounded work and
/// memory to load, and must not rewrite what a plan or a status shows.
struct HostileRepositoryTests {
    /// The shop's flow with one more string parameter and these steps.
    static func flow(_ parameter: String, default value: String, steps: String) -> String {
        """
        kind: UpdateFlow
        name: simple
        parameters:
          color: {type: enum, values: [red, blue], default: red}
          \(parameter): {type: string, default: "\(value)"}
        steps:
        \(steps)
        """
    }

    /// A flow referencing a long value thousands of times: measured, refused at the step, never
    /// expanded (here gigabytes, and again for every device it would be handed to).
    @Test func aTemplateThatWouldFillGigabytesIsRefusedUnexpanded() {
        let references = String(repeating: "${blob}", count: 20_000)
        let blob = String(repeating: "x", count: 100_000)
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = Self.flow("blob", default: blob, steps: """
              - name: install
                run: "\(references)"
              - name: fetch
                download: {url: "https://cdn.example.com/${blob}${blob}", sha256: "\(String(repeating: "a", count: 64))", destination: /opt/x}
            """)
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.contains { $0.hasPrefix("flows/simple.yaml:7:5: error: step 'install' of flow 'simple', filled in for group ")
                                    && $0.contains("would be 2000000000 bytes, over the 65536 a step's text may hold") }, "\(messages.prefix(3))")
        #expect(messages.contains { $0.hasPrefix("flows/simple.yaml:9:5: error: step 'fetch' of flow 'simple'") && $0.contains("would be \("https://cdn.example.com/".utf8.count + 200_000) bytes") },
                "\(messages.prefix(3))")

        // At the limit it compiles; a secret's value is not known here and counts as its reference.
        var fits = FleetFixtures.shop
        fits["flows/simple.yaml"] = Self.flow("blob", default: String(repeating: "x", count: 1_000), steps: """
              - name: install
                run: "\(String(repeating: "${blob}", count: 65))"
            """)
        #expect(throws: Never.self) { try FleetFixtures.load(fits) }
    }

    @Test func aHealthCheckThatWouldFillGigabytesIsRefusedUnexpanded() {
        var files = FleetFixtures.shop
        files["flows/simple.yaml"] = Self.flow("note", default: String(repeating: "n", count: 100_000), steps: """
              - name: install
                run: install
            """)
        files["apps/printer.yaml"] = """
            kind: App
            name: printer
            flow: simple
            health:
              custom: {note: text}
              checks: ["custom.note == \(String(repeating: "${note}", count: 20_000))"]
            targets:
              - {group: berlin, version: "7"}
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.contains { $0.description.contains("a health check, filled in for group 'berlin', would be 2000000000 bytes") } == true,
                "\(error?.diagnostics.prefix(3).map(\.description) ?? [])")
    }

    /// One long value named by alias thousands of times is refused as it is read: a file
    /// expands to at most 4 MiB of text, whatever its aliases.
    @Test func anAliasedLongValueIsRefusedAsItIsRead() {
        var files = FleetFixtures.shop
        files["groups/bomb.yaml"] = """
            kind: Group
            name: bomb
            description: &k "\(String(repeating: "z", count: 900_000))"
            devices: [\(Array(repeating: "*k", count: 25_000).joined(separator: ", "))]
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.map(\.description) == [
            "groups/bomb.yaml:3:14: error: document expands to more than 4 MiB of text; YAML aliases (*name) may not be used to multiply content",
        ])
    }

    /// Under that, the same error thousands of times: a thousand problems are kept, each cut,
    /// and one more says there were more.
    @Test func thousandsOfErrorsKeepAThousand() {
        var files = FleetFixtures.shop
        files["groups/many.yaml"] = """
            kind: Group
            name: many
            devices: [\(Array(repeating: "\"\(String(repeating: "q", count: 300))\"", count: 3_000).joined(separator: ", "))]
            """
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        let diagnostics = error?.diagnostics ?? []
        #expect(diagnostics.count == DiagnosticSink.maximumKept + 1)
        #expect(diagnostics.first?.message == "invalid device id '\(String(repeating: "q", count: 80))…': use 1 to 253 characters")
        #expect(diagnostics.contains { $0.message.hasPrefix("more problems were found than the 1000 listed") })
    }

    @Test func theSinkKeepsAThousandAndMakesNoMessageItDoesNotKeep() {
        let sink = DiagnosticSink()
        var made = 0
        func message() -> String {
            made += 1
            return String(repeating: "m", count: 5_000)
        }
        for _ in 0..<5_000 { sink.error(SourceLocation(path: "a.yaml"), message()) }
        #expect(sink.diagnostics.count == 1_001)
        #expect(sink.dropped == 4_000)
        #expect(made == 1_000, "a message past the kept ones is never made")
        #expect(sink.diagnostics[0].message.unicodeScalars.count == DiagnosticSink.maximumMessageLength + 1)
        #expect(sink.diagnostics.last?.message == "more problems were found than the 1000 listed; fix these and validate again")
        let exact = DiagnosticSink()
        for _ in 0..<1_000 { exact.error(SourceLocation(path: "a.yaml"), "one") }
        #expect(exact.diagnostics.count == 1_000 && exact.diagnostics.allSatisfy { $0.message == "one" }, "exactly the most: all kept, none said to be missing")
    }

    /// Skipping candidates by length, and long words altogether, gives the same hints as
    /// comparing every candidate, over seeded random words and names.
    @Test func hintsAreTheSameWithoutComparingWhatCannotBeATypo() {
        var generator = SelectorMembershipTests.Generator(state: 7)
        let letters = Array("abcde-")
        func word(_ length: Int) -> String {
            String((0..<length).map { _ in letters[Int(generator.next() % UInt64(letters.count))] })
        }
        func bruteForce(_ word: String, _ candidates: [String]) -> String? {
            let lowered = word.lowercased()
            var best: (name: String, distance: Int)?
            for candidate in candidates {
                let distance = Suggestion.editDistance(lowered, candidate.lowercased())
                if let current = best, distance > current.distance || (distance == current.distance && candidate >= current.name) { continue }
                best = (candidate, distance)
            }
            guard let best else { return nil }
            return best.distance <= max(1, min(3, best.name.count / 3)) ? best.name : nil
        }
        for _ in 0..<2_000 {
            let candidates = (0..<8).map { _ in word(1 + Int(generator.next() % 12)) }
            let probe = word(1 + Int(generator.next() % 14))
            #expect(Suggestion.closest(to: probe, in: candidates) == bruteForce(probe, candidates), "\(probe) in \(candidates)")
        }
        let long = String(repeating: "a", count: Suggestion.maximumWordLength + 1)
        #expect(Suggestion.closest(to: long, in: [long]) == nil)
        #expect(Suggestion.closest(to: "canry", in: ["canary", "berlin"]) == "canary")
    }

    /// Every limit of the tree, in the order a reader meets them.
    @Test func aTreeTakesAtMostItsFilesAndBytes() {
        var tree = FleetTree()
        let mebibyte = [UInt8](repeating: 0x61, count: 1 << 20)
        for index in 0..<64 { tree.addFile("groups/g\(index).yaml", bytes: mebibyte) }
        #expect(tree.overflow == nil)
        #expect(tree.totalBytes == 64 << 20)
        // A file too large is marked, not read, and costs no bytes; the next byte is over.
        tree.addFile("groups/huge.yaml", bytes: mebibyte + [0x61])
        #expect(tree.overflow == nil)
        let admitted = tree.admits(size: 1, at: "groups/one.yaml")
        #expect(!admitted)
        #expect(tree.overflow?.path == "groups/one.yaml")
        #expect(tree.overflow?.reason == "the repository's fleet files are more than 64 MiB in all")
        tree.addFile("groups/later.yaml", bytes: [0x61])
        #expect(tree.entries["groups/later.yaml"] == nil, "nothing more is taken")

        var many = FleetTree()
        for index in 0..<FleetTree.maximumFiles { many.add("devices/d\(index).yaml", .file([])) }
        #expect(many.overflow == nil)
        many.add("devices/one-more.yaml", .symlink(target: "x"))
        #expect(many.overflow?.reason == "the repository has more than 10000 fleet files")
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(many) }
        #expect(error?.diagnostics.map(\.description) == [
            "devices/one-more.yaml: error: the repository has more than 10000 fleet files; reading stopped here and nothing was loaded "
                + "(at most 10000 files and 64 MiB under fleet.yaml, groups/, devices/, flows/, apps/, alerts/)",
        ])
    }

    @Test func aSubmoduleWhereAFileIsExpectedIsNamed() {
        var files = FleetFixtures.tree(FleetFixtures.shop)
        files.add("groups/vendor.yaml", .submodule(commit: String(repeating: "ab", count: 20)))
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(files) }
        #expect(error?.diagnostics.map(\.description) == [
            "groups/vendor.yaml: error: is a submodule (commit \(String(repeating: "ab", count: 20))); submodules are not followed, commit the file itself",
        ])
    }

    /// A health check's text is the repository's: in a pull request's plan it is a code span, so
    /// a `<!--` in it cannot hide the devices listed after it, nor a new line start a forged one.
    @Test func aHealthChecksTextCannotRewriteThePlanComment() throws {
        var files = FleetFixtures.shop
        files["apps/printer.yaml"] = """
            kind: App
            name: printer
            flow: simple
            health:
              custom: {note: text}
              checks:
                - |-
                  custom.note == x
                  <!--
            targets:
              - {group: berlin, version: "7"}
            """
        let fleet = try FleetFixtures.load(files)
        let health = try #require(fleet.apps.first { $0.app.name == "printer" }?.targets.first?.health)
        #expect(health.markdownSummary == "`custom.note == x\\u{a}<!--`")
        // In the comment a pull request gets, and in the terminal.
        var inventory = DeviceInventory()
        inventory.append(id: "b1", tags: [("site", "berlin")], apps: [], online: true)
        let plan = try Planner.plan(fleet, inventory: inventory)
        let markdown = PlanRenderer.markdown(plan)
        #expect(markdown.contains("**Health:** each wave must pass `custom.note == x\\u{a}<!--`."), "\(markdown)")
        #expect(!markdown.contains("\n<!--"))
        #expect(PlanRenderer.text(plan).contains("each wave must pass: custom.note == x\\u{a}<!--"))
    }
}
