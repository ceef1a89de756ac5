import FleetCLI
import FleetCore
import Foundation
import Testing

/// Each folder under Fixtures/broken is a fleet repository with mistakes, and an
/// `expected.txt` holding exactly the diagnostics the loader must report, in order.
struct BrokenRepositoryTests {
    static let fixtures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: TestPaths.brokenFixtures)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }()

    @Test func theCorpusIsLarge() {
        #expect(Self.fixtures.count >= 30)
    }

    @Test(arguments: fixtures)
    func reportsExactlyTheExpectedDiagnostics(_ name: String) throws {
        let directory = TestPaths.brokenFixtures + "/" + name
        let expected = try String(contentsOfFile: directory + "/expected.txt", encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(!expected.isEmpty)
        let tree = try FleetDirectory.read(directory)
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(tree) }
        #expect(error?.diagnostics.map(\.description) == expected)
    }

    @Test func aTenMegabyteFileIsRefusedWithoutReadingIt() throws {
        let directory = try copyOfTemplate()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let line = Array("# padding padding padding padding padding padding padding padding\n".utf8)
        var bytes: [UInt8] = []
        while bytes.count < 10 * 1_048_576 { bytes += line }
        _ = FileManager.default.createFile(atPath: directory + "/groups/huge.yaml", contents: Data(bytes))

        let tree = try FleetDirectory.read(directory)
        guard case .tooLarge(let size) = tree.entries["groups/huge.yaml"] else {
            Issue.record("the reader should not have read the file's bytes")
            return
        }
        #expect(size == bytes.count)
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(tree) }
        #expect(error?.diagnostics.map(\.description) == [
            "groups/huge.yaml: error: is 10.0 MiB, over the 1.0 MiB limit for a fleet file",
        ])
    }

    @Test func aSymbolicLinkIsReportedNotFollowed() throws {
        let directory = try copyOfTemplate()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.removeItem(atPath: directory + "/groups/canary.yaml")
        try FileManager.default.createSymbolicLink(atPath: directory + "/groups/canary.yaml", withDestinationPath: "/etc/passwd")
        let tree = try FleetDirectory.read(directory)
        let error = #expect(throws: FleetValidationError.self) { try FleetLoader.load(tree) }
        #expect(error?.diagnostics.map(\.description) == [
            "groups/canary.yaml: error: is a symbolic link (to '/etc/passwd'); links are not followed, commit the file itself",
        ])
    }

    /// A writable copy of the (valid) template repository.
    private func copyOfTemplate() throws -> String {
        let directory = try TestPaths.temporaryDirectory() + "/repo"
        try FileManager.default.copyItem(atPath: TestPaths.template, toPath: directory)
        return directory
    }
}
