@testable import FleetServer
import FleetProtocol
import Foundation
import Testing

/// The operator API's JSON reader (`JSONBody.decode`): unknown fields are refused whatever the
/// keys spell, and a large body costs one pass, not one per key.
struct OperatorJSONTests {
    struct Grant: Codable {
        var kind: String
        var group: String?
        var expiresInSeconds: Int?
    }

    struct Settings: Codable {
        var name: String
        var parameters: [String: String]
    }

    @Test func aKeyThatSpellsOtherKeysDoesNotPassAsAShapeAlreadyChecked() throws {
        _ = try JSONBody.decode(Grant.self, from: Data(#"{"kind":"enrollment","group":"g","expiresInSeconds":60}"#.utf8))
        // Written without lengths, this body's keys made the same shape as the one above, so it
        // was taken as checked and its unknown field let through.
        let crafted = Data(#"{"expiresInSeconds:s,group":1,"kind":"operator"}"#.utf8)
        #expect(throws: APIError.self) { try JSONBody.decode(Grant.self, from: crafted) }
        do {
            _ = try JSONBody.decode(Grant.self, from: crafted)
        } catch let error as APIError {
            #expect(error.field == "expiresInSeconds:s,group")
        }
    }

    /// 200,000 keys: compared one scan per key, the check was 2×10¹⁰ string comparisons (minutes
    /// of a core, from one request under the body limit); by key it is one pass.
    @Test(.timeLimit(.minutes(1))) func aMapOfManyKeysIsCheckedInOnePassAndItsShapeIsNotKept() throws {
        var body = #"{"name":"big","parameters":{"#
        body += (0..<200_000).map { #""k\#($0)":"v""# }.joined(separator: ",")
        body += "}}"
        let data = Data(body.utf8)
        let settings = try JSONBody.decode(Settings.self, from: data)
        #expect(settings.parameters.count == 200_000)
        // A shape that large is not remembered: thousands of them would hold thousands of bodies.
        let shape = "\(Settings.self)|" + (try #require(WireJSON.parse(data))).shape()
        #expect(shape.utf8.count > KnownShapes.longest && !KnownShapes.shared.contains(shape))

        let unknown = Data(#"{"name":"big","parameters":{"a":"b"},"colour":"red"}"#.utf8)
        #expect(throws: APIError.self) { try JSONBody.decode(Settings.self, from: unknown) }
    }
}
