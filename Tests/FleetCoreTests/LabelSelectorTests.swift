import FleetCore
import Testing

struct LabelSelectorTests {
    static let berlinCanary = ["site": "berlin", "ring": "canary", "hw": "rpi4"]
    static let parisProd = ["site": "paris", "ring": "prod"]
    static let untagged: [String: String] = [:]

    /// (selector, matches berlinCanary, matches parisProd, matches untagged) — kubectl's semantics.
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

    /// (selector, offset of the error, reason).
    static let errors: [(String, Int, String)] = [
        ("site in (berlin", 15, "expected ')' to close the list of values"),
        ("site ~ berlin", 5, "expected '=', '!=', 'in' or 'notin' after 'site', found '~'"),
        ("site=berlin,", 12, "expected a requirement after ','"),
        ("site=berlin ring=x", 12, "expected ',' between requirements, found 'r'"),
        ("site in berlin", 8, "expected '(' to open the list of values"),
        ("site in ()", 9, "expected a value in the list"),
        ("-site=x", 0, "invalid tag name '-site': it must start and end with a letter or digit"),
        ("site=ber lin", 9, "expected ',' between requirements, found 'l'"),
        ("site!berlin", 5, "expected '!=' after 'site'"),
        ("=x", 0, "expected a tag name, found '='"),
        ("site=" + String(repeating: "a", count: 64), 5, "invalid tag value '\(String(repeating: "a", count: 64))': it is longer than 63 characters"),
    ]

    @Test(arguments: errors)
    func syntaxErrorsPointAtTheirColumn(_ row: (String, Int, String)) {
        #expect(throws: LabelSelector.ParseError(offset: row.1, reason: row.2)) { try LabelSelector(parsing: row.0) }
    }

    @Test func printsInCanonicalForm() throws {
        let selector = try LabelSelector(parsing: "site in (paris, berlin, paris), !old ,ring==canary")
        #expect(selector.description == "site in (berlin,paris),!old,ring=canary")
    }
}
