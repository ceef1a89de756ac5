import Foundation
import Testing

/// docs/ARCHITECTURE.md's module table says what each module depends on; Package.swift decides
/// it. This keeps the two from drifting apart (for the project's own modules).
struct ModuleGraphTests {
    /// Each target's own-module dependencies, read from Package.swift's text.
    static func packageGraph() throws -> [String: Set<String>] {
        let text = try String(contentsOfFile: TestPaths.packageRoot + "/Package.swift", encoding: .utf8)
        var graph: [String: [String]] = [:]
        var rest = Substring(text)
        while let start = rest.range(of: #"\.(target|executableTarget|testTarget|systemLibrary)\("#, options: .regularExpression) {
            rest = rest[start.upperBound...]
            guard let name = rest.firstMatch(of: /name: "([^"]+)"/) else { break }
            // The target's own text runs to the next target.
            let end = rest.range(of: #"\.(target|executableTarget|testTarget|systemLibrary)\("#, options: .regularExpression)?.lowerBound ?? rest.endIndex
            let body = rest[..<end]
            var dependencies: [String] = []
            if let list = body.range(of: "dependencies: [") {
                var depth = 1, index = list.upperBound
                while index < body.endIndex, depth > 0 {
                    if body[index] == "[" { depth += 1 } else if body[index] == "]" { depth -= 1 }
                    index = body.index(after: index)
                }
                // Plain "Name" entries are the project's own targets; products are `.product(name:…)`.
                let entries = body[list.upperBound..<index].replacing(/\.product\([^)]*\)/, with: "")
                dependencies = entries.matches(of: /"([^"]+)"/).map { String($0.1) }
            }
            graph[String(name.1)] = dependencies
        }
        return graph.mapValues(Set.init)
    }

    @Test func theArchitectureTableNamesEveryModulesOwnDependencies() throws {
        let graph = try Self.packageGraph()
        #expect(graph["FleetCore"] == ["FleetProtocol"], "the table could not be read from Package.swift: \(graph)")
        let ours = Set(graph.keys)
        let document = try String(contentsOfFile: TestPaths.packageRoot + "/docs/ARCHITECTURE.md", encoding: .utf8)
        var checked = 0
        var named = Set<String>()
        for line in document.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let names = cells[1].matches(of: /`([^`]+)`/).map { String($0.1) }
            named.formUnion(names)
            guard names.count == 1, let module = names.first, let dependencies = graph[module] else { continue }
            let listed = Set(cells[3].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }).intersection(ours)
            #expect(listed == dependencies, "\(module): ARCHITECTURE.md lists \(listed.sorted()), Package.swift has \(dependencies.sorted())")
            checked += 1
        }
        #expect(checked >= 10, "only \(checked) modules of the table were checked")
        // And every module the package builds (tests aside) has a row.
        let unlisted = ours.filter { !$0.hasSuffix("Tests") && !named.contains($0) }
        #expect(unlisted.isEmpty, "modules ARCHITECTURE.md does not list: \(unlisted.sorted())")
    }

    /// The core does no I/O and depends on nothing of ours but the wire types; the controller
    /// and the server do not import each other.
    /// Every path the "Where to find it" table of docs/ARCHITECTURE.md names exists: a file moved
    /// or renamed fails here until the table says where it went.
    @Test func theArchitecturesFileTableNamesFilesThatExist() throws {
        let document = try String(contentsOfFile: TestPaths.packageRoot + "/docs/ARCHITECTURE.md", encoding: .utf8)
        let section = try #require(document.components(separatedBy: "## Where to find it").dropFirst().first?.components(separatedBy: "\n## ").first)
        var checked = 0
        for row in section.split(separator: "\n") where row.hasPrefix("| ") {
            var folder = ""
            for piece in row.split(separator: "`").enumerated().filter({ $0.offset % 2 == 1 }).map({ String($0.element) }) {
                if piece.hasPrefix("Sources/") {
                    folder = piece.hasSuffix("/") ? piece : (piece as NSString).deletingLastPathComponent + "/"
                    #expect(FileManager.default.fileExists(atPath: TestPaths.packageRoot + "/" + piece), "\(piece)")
                    checked += 1
                } else if piece.hasSuffix(".swift") {
                    // A file named alone lies in the folder named last in its row.
                    #expect(FileManager.default.fileExists(atPath: TestPaths.packageRoot + "/" + folder + piece), "\(folder + piece)")
                    checked += 1
                }
            }
        }
        #expect(checked > 20)
    }

    @Test func dependenciesPointDown() throws {
        let graph = try Self.packageGraph()
        #expect(graph["FleetCore"] == ["FleetProtocol"])
        #expect(graph["FleetProtocol"] == [])
        #expect(graph["FleetController"]?.contains("FleetServer") == false)
        #expect(graph["FleetServer"]?.contains("FleetController") == false)
        #expect(graph["FleetCLI"]?.contains("FleetAgent") == false, "flotilla would link the agent's libyaml beside Yams")
    }
}
