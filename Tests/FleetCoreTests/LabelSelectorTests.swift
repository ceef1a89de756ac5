import FleetProtocol
import FleetCore
import Testing

/// Selectors as Kubernetes parses and matches them (k8s.io/apimachinery `labels.Parse` and
/// `Requirement.Matches`, as its documentation and grammar describe them): the tables are
/// derived from those semantics, not from this parser.
struct LabelSelectorTests {
    static let berlinCanary = ["site": "berlin", "ring": "canary", "hw": "rpi4"]
    static let parisProd = ["site": "paris", "ring": "prod"]
    static let untagged: [String: String] = [:]

    /// (selector, matches berlinCanary, matches parisProd, matches untagged).
    static let table: [(String, Bool, Bool, Bool)] = [
        ("", true, true, true),
        ("site", true, true, false),
        ("!site", false, false, true),
        ("site=berlin", true, false, false),
        ("site==berlin", true, false, false),
        ("site!=berlin", false, true, true),
        ("site in (berlin,paris)", true, true, false),
        ("site in (madrid)", false, false, false),
        ("site notin (berlin)", false, true, true),
        ("site in (berlin,paris),ring!=canary", false, true, false),
        ("ring=canary,hw=rpi4,site", true, false, false),
        ("  site = berlin ,  ring in ( canary , beta )  ", true, false, false),
        ("!decommissioned,site", true, true, false),
        ("example.com/rack=r1", false, false, false),
        ("ring=", false, false, false),
        ("ring!=", true, true, true),
    ]

    @Test(arguments: table)
    func matchesAsKubectlDoes(_ row: (String, Bool, Bool, Bool)) throws {
        let selector = try LabelSelector(parsing: row.0)
        #expect(selector.matches(Self.berlinCanary) == row.1)
        #expect(selector.matches(Self.parisProd) == row.2)
        #expect(selector.matches(Self.untagged) == row.3)
    }

    /// (selector, tags, matches): the corners of Kubernetes' meaning — empty values, numeric
    /// comparisons, absent keys.
    static let corners: [(String, [String: String], Bool)] = [
        // `>` and `<` compare whole numbers; an absent tag or one that is not a number never matches.
        ("x>1", ["x": "2"], true),
        ("x>1", ["x": "1"], false),
        ("x>1", ["x": "10"], true),  // numerically, not as text
        ("x>1", ["x": "abc"], false),
        ("x>1", [:], false),
        ("x>1", ["x": "99999999999999999999"], false),  // beyond 64 bits: not a number
        ("x<1", ["x": "0"], true),
        ("x<1", ["x": "-5"], true),
        ("x<1", ["x": "1"], false),
        ("x<1", ["x": ""], false),
        ("x>01", ["x": "2"], true),
        ("x>1,x<5", ["x": "3"], true),
        ("x>1,x<5", ["x": "5"], false),
        // Empty values: `()` is the set holding the empty value, `(a,)` holds a and the empty value.
        ("x in ()", ["x": ""], true),
        ("x in ()", ["x": "a"], false),
        ("x in ()", [:], false),
        ("x notin ( )", ["x": ""], false),
        ("x notin ( )", ["x": "a"], true),
        ("x notin ( )", [:], true),
        ("x in (abc,)", ["x": ""], true),
        ("x in (abc,)", ["x": "abc"], true),
        ("x in (abc,)", ["x": "ab"], false),
        ("x in (,abc)", ["x": ""], true),
        ("x=", ["x": ""], true),
        ("x=", [:], false),
        ("x!=", [:], true),
        ("x!=", ["x": ""], false),
        ("x", ["x": ""], true),
        ("!x", ["x": ""], false),
        ("x==a", ["x": "a"], true),
        // The example in Kubernetes' own documentation of the grammar.
        ("x in (foo,,baz),y,z notin ()", ["x": "foo", "y": "anything", "w": "other"], true),
        ("x in (foo,,baz),y,z notin ()", ["x": "", "y": "anything"], true),
        ("x in (foo,,baz),y,z notin ()", ["x": "foo", "y": "anything", "z": "set"], true),
        ("x in (foo,,baz),y,z notin ()", ["x": "foo", "y": "anything", "z": ""], false),
        ("x in (foo,,baz),y,z notin ()", ["x": "other", "y": "anything"], false),
        ("x in (foo,,baz),y,z notin ()", ["x": "foo"], false),
        // `in` and `notin` are words where a tag name or value is expected.
        ("in in (in,notin)", ["in": "notin"], true),
        ("notin=in", ["notin": "in"], true),
        // Whitespace is space, tab, carriage return and newline.
        ("x\tin\t(a,\tb)", ["x": "b"], true),
        ("x\r\n=\na,\r\ny", ["x": "a", "y": "1"], true),
    ]

    @Test(arguments: corners)
    func matchesKubernetesInItsCorners(_ row: (String, [String: String], Bool)) throws {
        let selector = try LabelSelector(parsing: row.0)
        #expect(selector.matches(row.1) == row.2, "\(row.0) against \(row.1)")
    }

    /// (selector, canonical form): Kubernetes' `String()` of the parsed selector — requirements
    /// in key order, values of a set sorted and without duplicates, `==` kept as written.
    static let canonical: [(String, String)] = [
        ("", ""),
        ("   ", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,x=a", "x=a,z=c"),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x= ,z= ", "x=,z="),
        ("!x", "!x"),
        ("! x", "!x"),
        ("x>1", "x>1"),
        ("x>1,z<5", "x>1,z<5"),
        ("z<5,x>1", "x>1,z<5"),
        ("x==a", "x==a"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("x in (abc,)", "x in (,abc)"),
        ("x in (,abc)", "x in (,abc)"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x notin ( )", "x notin ()"),
        ("x in()", "x in ()"),
        ("x in(b,a,b)", "x in (a,b)"),
        ("x\tin\t(a)", "x in (a)"),
        ("x\n=\na,\r\ny", "x=a,y"),
        ("in in (in,notin)", "in in (in,notin)"),
        ("notin=in", "notin=in"),
        ("site in (paris, berlin, paris), !old ,ring==canary", "!old,ring==canary,site in (berlin,paris)"),
        ("b=1,a,b!=2", "a,b=1,b!=2"),
        ("example.com/rack=r1", "example.com/rack=r1"),
        ("a-b.c-d/x_y.z=V.1", "a-b.c-d/x_y.z=V.1"),
        ("x>01", "x>01"),
    ]

    @Test(arguments: canonical)
    func printsAsKubernetesDoes(_ row: (String, String)) throws {
        let selector = try LabelSelector(parsing: row.0)
        #expect(selector.description == row.1)
        // The canonical form reads back as the same selector.
        #expect(try LabelSelector(parsing: selector.description) == selector)
    }

    static let longName = String(repeating: "a", count: 64)
    static let longPrefix = String(repeating: "a.", count: 127) + "a"  // 255 characters

    /// (selector, column of the error, reason): what Kubernetes refuses, with where.
    static let errors: [(String, Int, String)] = [
        ("x=a||y=b", 2, "invalid tag value 'a||y': use only letters, digits, '-', '_' and '.'"),
        ("x==a==b", 4, "expected ',' between requirements, found '=='"),
        ("!x=a", 2, "expected ',' between requirements, found '='"),
        ("x<a", 2, "'<' compares whole numbers, and 'a' is not one"),
        ("x>", 2, "'>' needs a whole number after it"),
        ("x>1.5", 2, "'>' compares whole numbers, and '1.5' is not one"),
        ("x>99999999999999999999", 2, "'>' compares whole numbers, and '99999999999999999999' is not one"),
        ("x>-1", 2, "invalid tag value '-1': it must start and end with a letter or digit"),
        ("x>=1", 2, "expected a value after '>', found '='"),
        ("x,", 2, "expected a requirement after ','"),
        ("x=a,", 4, "expected a requirement after ','"),
        ("x,,y", 2, "expected a requirement after ',', found ','"),
        ("x=a y=b", 4, "expected ',' between requirements, found 'y'"),
        ("x=a)", 3, "expected ',' between requirements, found ')'"),
        ("x in (,,)", 8, "expected a value or ',' in the list of values, found ')'"),
        ("x in (a,,)", 9, "expected a value or ',' in the list of values, found ')'"),
        ("x in (a b)", 8, "expected ',' or ')' in the list of values, found 'b'"),
        ("x in a", 5, "expected '(' to open the list of values, found 'a'"),
        ("x in", 4, "expected '(' to open the list of values"),
        ("x in (a", 7, "expected ')' to close the list of values"),
        ("x in (", 6, "expected ')' to close the list of values"),
        ("x in (=)", 6, "expected a value, ',' or ')' in the list of values, found '='"),
        ("x in (a,=)", 8, "expected a value or ',' in the list of values, found '='"),
        ("x in (a,-b)", 8, "invalid tag value '-b': it must start and end with a letter or digit"),
        ("x y", 2, "expected '=', '==', '!=', 'in', 'notin', '>' or '<' after 'x', found 'y'"),
        ("site ~ berlin", 5, "expected '=', '==', '!=', 'in', 'notin', '>' or '<' after 'site', found '~'"),
        ("site!berlin", 4, "expected '=', '==', '!=', 'in', 'notin', '>' or '<' after 'site', found '!'"),
        ("x(", 1, "expected '=', '==', '!=', 'in', 'notin', '>' or '<' after 'x', found '('"),
        ("=x", 0, "expected a tag name or '!', found '='"),
        ("!=a", 0, "expected a tag name or '!', found '!='"),
        (",x", 0, "expected a tag name or '!', found ','"),
        ("!", 1, "expected a tag name after '!'"),
        ("!!x", 1, "expected a tag name after '!', found '!'"),
        ("-site=x", 0, "invalid tag name '-site': it must start and end with a letter or digit"),
        ("x=-a", 2, "invalid tag value '-a': it must start and end with a letter or digit"),
        ("x=" + longName, 2, "invalid tag value '\(longName)': it is longer than 63 characters"),
        (longName, 0, "invalid tag name '\(longName)': it is longer than 63 characters"),
        // Keys: the prefix is a lower-case DNS subdomain (RFC 1123), the name one segment.
        ("A.B/x", 0, "invalid tag name 'A.B/x': the prefix before '/' must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"),
        ("a..b/x", 0, "invalid tag name 'a..b/x': the prefix before '/' must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"),
        ("-a/x", 0, "invalid tag name '-a/x': the prefix before '/' must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"),
        ("a-.b/x", 0, "invalid tag name 'a-.b/x': the prefix before '/' must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"),
        ("a_b/x", 0, "invalid tag name 'a_b/x': the prefix before '/' must be a DNS name: lower-case letters, digits and '-' between dots, each part starting and ending with a letter or digit"),
        ("/x", 0, "invalid tag name '/x': the prefix before '/' is empty"),
        ("a/", 0, "invalid tag name 'a/': it is empty"),
        ("a/b/c", 0, "invalid tag name 'a/b/c': use only letters, digits, '-', '_' and '.'"),
        (longPrefix + "/x", 0, "invalid tag name '\(longPrefix)/x': the prefix before '/' is longer than 253 characters"),
        ("größe=x", 0, "invalid tag name 'größe': use only letters, digits, '-', '_' and '.'"),
    ]

    @Test(arguments: errors)
    func refusesWhatKubernetesRefusesAtItsColumn(_ row: (String, Int, String)) {
        #expect(throws: LabelSelector.ParseError(offset: row.1, reason: row.2)) { try LabelSelector(parsing: row.0) }
    }

    /// A selector is checked against every device: a long one is work on every device, so one
    /// holds at most `maximumRequirements` different requirements, and a repeated one counts once.
    @Test func aSelectorHoldsABoundedNumberOfRequirements() throws {
        let most = LabelSelector.maximumRequirements
        let keys = (0..<most).map { "k\($0)" }
        #expect(try LabelSelector(parsing: keys.map { "!" + $0 }.joined(separator: ",")).requirements.count == most)
        // One more, at its column.
        let over = keys.map { "!" + $0 }.joined(separator: ",") + ",x=1"
        #expect(throws: LabelSelector.ParseError(offset: over.count - 3, reason: "a selector holds at most \(most) different requirements")) {
            try LabelSelector(parsing: over)
        }
        // The same requirement 20,000 times is one requirement, however it is spelled.
        let repeated = try LabelSelector(parsing: Array(repeating: "!x", count: 20_000).joined(separator: ","))
        #expect(repeated.requirements.count == 1)
        #expect(repeated.description == "!x")
        #expect(try LabelSelector(parsing: "site in (b,a),site in (a,b,a), ring").description == "ring,site in (a,b)")
        // Still an AND: two different requirements on one key both hold.
        #expect(try LabelSelector(parsing: "x>1,x<5,x>1").requirements.count == 2)
    }

    /// `in` and `notin` look a value up among the sorted values: the same answers as a plain
    /// search of the list, for every value and its neighbours.
    @Test func aLongListOfValuesIsSearchedAsAPlainListWouldBe() throws {
        let values = (0..<500).map { "v\($0 * 3)" }
        let within = try LabelSelector(parsing: "x in (\(values.joined(separator: ",")))")
        let without = try LabelSelector(parsing: "x notin (\(values.joined(separator: ",")))")
        for probe in (0..<1_502).map({ "v\($0)" }) + ["", "a", "w", "v", "v00"] {
            #expect(within.matches(["x": probe]) == values.contains(probe), "\(probe)")
            #expect(without.matches(["x": probe]) == !values.contains(probe), "\(probe)")
        }
        #expect(!within.matches([:]))
        #expect(without.matches([:]))
    }

    @Test func aPrefixOf253CharactersIsAllowed() throws {
        let prefix = String(repeating: "a.", count: 126) + "a"  // 253 characters
        #expect(prefix.count == 253)
        #expect(try LabelSelector(parsing: "\(prefix)/x=1").requirements.first?.key == "\(prefix)/x")
        #expect(TagSyntax.keyProblem(String(repeating: "n", count: 63)) == nil)
    }
}

/// The planner's compiled membership agrees with `LabelSelector.matches` on every device, for
/// selectors drawn at random from the whole grammar (numeric comparisons and empty values too),
/// with git-declared tags overriding reported ones as groups promise.
struct SelectorMembershipTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let keys = ["a", "b", "fw", "example.com/n"]
    static let values = ["", "x", "y", "1", "7", "12", "-3", "abc"]

    static func randomRequirement(_ generator: inout Generator) -> String {
        let key = keys.randomElement(using: &generator)!
        let word = { (generator: inout Generator) in ["", "x", "y", "1", "7", "in"].randomElement(using: &generator)! }
        // A list: none (the empty value), or words, perhaps after a leading ',' (the empty value
        // too). Kubernetes refuses two empty values in a row at the end, as in "(a,,)".
        let list = { (generator: inout Generator) -> String in
            let words = (0..<Int.random(in: 0...3, using: &generator)).map { _ in ["x", "y", "1", "7", "in"].randomElement(using: &generator)! }
            return "(" + (Bool.random(using: &generator) && !words.isEmpty ? "," : "") + words.joined(separator: ",") + ")"
        }
        switch Int.random(in: 0..<9, using: &generator) {
        case 0: return key
        case 1: return "!" + key
        case 2: return "\(key)=\(word(&generator))"
        case 3: return "\(key)==\(word(&generator))"
        case 4: return "\(key)!=\(word(&generator))"
        case 5: return "\(key)>\(["0", "5", "10"].randomElement(using: &generator)!)"
        case 6: return "\(key)<\(["0", "5", "10"].randomElement(using: &generator)!)"
        case 7: return "\(key) in \(list(&generator))"
        default: return "\(key) notin \(list(&generator))"
        }
    }

    @Test(arguments: 0..<20)
    func plannedMembershipIsTheSelectorsMeaning(seed: Int) throws {
        var generator = Generator(state: UInt64(seed) &* 7919)
        let selectors = (0..<12).map { _ in
            (0..<Int.random(in: 1...3, using: &generator)).map { _ in Self.randomRequirement(&generator) }.joined(separator: ",")
        }
        var files = FleetFixtures.shop.filter { $0.key == "fleet.yaml" || $0.key.hasPrefix("flows/") }
        files["groups/random.yaml"] = selectors.enumerated().map { index, selector in
            "kind: Group\nname: g\(index)\nselector: \"\(selector)\"\n"
        }.joined(separator: "---\n")
        files["apps/random.yaml"] = selectors.indices.map { index in
            "kind: App\nname: app\(index)\nflow: simple\ntargets:\n  - {group: g\(index), version: \"1\"}\n"
        }.joined(separator: "---\n")
        // Every third device has tags declared in git, which win over what it reports.
        var declared: [String: [String: String]] = [:]
        var reported: [ReportedDevice] = []
        for number in 0..<60 {
            func tags(_ generator: inout Generator) -> [String: String] {
                var tags: [String: String] = [:]
                for key in Self.keys where Bool.random(using: &generator) {
                    tags[key] = Self.values.randomElement(using: &generator)!
                }
                return tags
            }
            let id = "d-\(number)"
            reported.append(ReportedDevice(id: id, tags: tags(&generator)))
            if number % 3 == 0 {
                declared[id] = tags(&generator).filter { TagSyntax.valueProblem($0.value) == nil }
            }
        }
        files["devices/declared.yaml"] = "kind: Devices\ndevices:\n" + declared.sorted { $0.key < $1.key }.map { id, tags in
            "  \(id):\n    tags: {\(tags.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", "))}\n"
        }.joined()
        let fleet = try FleetFixtures.load(files)
        let plan = try Planner.plan(fleet, inventory: DeviceInventory(reported))

        for (index, text) in selectors.enumerated() {
            let selector = try LabelSelector(parsing: text)
            let expected = Set(reported.filter { device in
                selector.matches(device.tags.merging(declared[device.id] ?? [:]) { _, git in git })
            }.map(\.id))
            let app = try #require(plan.apps.first { $0.name == "app\(index)" })
            let planned = Set(app.targets[0].changes.map { plan.deviceID($0.device) })
            #expect(planned == expected, "seed \(seed), selector \(text)")
        }
    }
}
