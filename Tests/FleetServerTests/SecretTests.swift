import Crypto
import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Secret flow parameters: set by an operator, sealed at rest, handed only to the device inside
/// its assignment, and never answered, stored in clear or echoed back.
extension ServerTests {
    static let password = "s3cr3t-P@ss w0rd"

    func putSecret(_ client: some TestClientProtocol, _ token: String, name: String = "db-password", value: String = password) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/secrets/\(name)", method: .put, headers: [.authorization: "Bearer \(token)"],
                                 body: Self.json(["value": value]))
    }

    /// A deployment of one `run` step, `login ${db_password}`, whose parameter names the secret `db-password`.
    func deployLogin(_ client: some TestClientProtocol, _ tokens: Tokens, device: String) async throws -> String {
        let steps = [AssignedStep(name: "login", kind: .run, command: "login ${db_password}", timeoutSeconds: 30, retries: 0,
                                  onFailure: "abort", idempotent: true)]
        let body = DeploymentController.Request(app: "thermostat", version: "2.5.0", flow: "f", digest: nil, parameters: nil,
                                                secrets: ["db_password": "db-password"], steps: steps, rollback: nil, artifactAllowlist: nil,
                                                devices: [device])
        let created = try await client.execute(uri: "/api/v1/deployments", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                               body: Self.json(body))
        return try Self.decode(DeploymentController.Detail.self, created).deployment.id
    }

    @Test func secretsAreSetListedAndDeletedNeverShown() async throws {
        try await withServer { client, tokens in
            let created = try await putSecret(client, tokens.operator)
            #expect(created.status == .created)
            #expect(!String(buffer: created.body).contains(Self.password))
            let replaced = try await putSecret(client, tokens.operator, value: "another")
            #expect(replaced.status == .ok)
            #expect(try Self.decode(SecretController.View.self, replaced).version == 2)

            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let listed = try await client.execute(uri: "/api/v1/secrets", method: .get, headers: own)
            #expect(String(buffer: listed.body).contains("\"db-password\""))
            #expect(!String(buffer: listed.body).contains("another"))
            // The store holds it sealed: neither value is in what it keeps.
            let record = try #require(try await store.secret(project: "acme", name: "db-password"))
            #expect(!Data(record.sealed).contains(Data("another".utf8)))

            // Another project sees none of it and cannot delete it.
            let other: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            #expect(String(buffer: try await client.execute(uri: "/api/v1/secrets", method: .get, headers: other).body) == #"{"secrets":[]}"#)
            #expect(try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: other).status == .notFound)

            // Bad names and values are refused by field, without echoing the value.
            let badName = try await putSecret(client, tokens.operator, name: "Bad_Name")
            #expect(badName.status == .badRequest)
            #expect(try Self.error(badName).field == "name")
            let empty = try await putSecret(client, tokens.operator, value: "")
            #expect(empty.status == .badRequest)
            #expect(try Self.error(empty).field == "value")
            let huge = try await putSecret(client, tokens.operator, value: String(repeating: "x", count: 64 * 1024 + 1))
            #expect(huge.status == .badRequest)
            #expect(try Self.error(huge).field == "value")
            let nul = try await putSecret(client, tokens.operator, value: "a\u{0}b")
            #expect(nul.status == .badRequest && !String(buffer: nul.body).contains("a\\u0000b"))

            #expect(try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: own).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: own).status == .notFound)
            let actions = try await store.audit(project: "acme", limit: 10).map(\.action)
            #expect(actions.filter { $0.hasPrefix("secret.") } == ["secret.delete", "secret.set", "secret.set"])
        }
    }

    @Test func aSecretReachesOnlyTheDeviceAndIsHiddenInWhatItReports() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            let steps = [AssignedStep(name: "login", kind: .run, command: "login --password '${db_password}' ${app}", timeoutSeconds: 30,
                                      retries: 0, onFailure: "abort", idempotent: true)]
            func deploy(_ secrets: [String: String]) async throws -> TestResponse {
                let body = DeploymentController.Request(app: "thermostat", version: "2.5.0", flow: "compose-app", digest: "d1", parameters: nil,
                                                        secrets: secrets, steps: steps, rollback: nil, artifactAllowlist: nil, devices: [device.deviceID])
                return try await client.execute(uri: "/api/v1/deployments", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                body: Self.json(body))
            }
            // Not set yet: refused, naming the field and how to set it.
            let unset = try await deploy(["db_password": "db-password"])
            #expect(unset.status == .badRequest)
            #expect(try Self.error(unset).field == "secrets.db_password")
            #expect(try Self.error(unset).message.contains("flotilla secret set acme db-password"))

            _ = try await putSecret(client, tokens.operator)
            let created = try await deploy(["db_password": "db-password"])
            #expect(created.status == .created)
            let id = try Self.decode(DeploymentController.Detail.self, created).deployment.id
            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            for uri in ["/api/v1/deployments", "/api/v1/deployments/\(id)", "/api/v1/audit"] {
                let body = String(buffer: try await client.execute(uri: uri, method: .get, headers: own).body)
                #expect(!body.contains(Self.password), "\(uri) shows the secret")
            }
            #expect(String(buffer: try await client.execute(uri: "/api/v1/deployments/\(id)", method: .get, headers: own).body)
                .contains(#""secrets":{"db_password":"db-password"}"#))

            // The device gets the value, filled into its command.
            let auth: HTTPFields = [.authorization: "Bearer \(device.deviceToken)"]
            let assignment = try #require(try Self.decode(AssignmentList.self,
                                                          try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth)).assignments.first)
            #expect(assignment.steps[0].command == "login --password '\(Self.password)' thermostat")

            // A step that echoes it: the value never reaches what is stored or answered.
            let echoed = StepResult(index: 0, name: "login", status: .failed, exitCode: 1,
                                    outputTail: "login: bad password \(Self.password) for thermostat\n")
            // The message is long enough to be cut, and the value lies across the cut: hidden first,
            // so no piece of it is kept that no mark replaces.
            let padding = String(repeating: "x", count: 2_030)
            let report = ExecutionReport(reportID: "r-1", state: .failed, step: echoed, message: "exit 1: \(padding)\(Self.password)")
            let sent = try await client.execute(uri: "/agent/v1/executions/\(assignment.executionID)/report", method: .post, headers: auth,
                                                body: Self.json(report))
            #expect(sent.status == .ok)
            let detail = String(buffer: try await client.execute(uri: "/api/v1/deployments/\(id)", method: .get, headers: own).body)
            #expect(!detail.contains(Self.password))
            #expect(detail.contains("login: bad password [secret:db_password] for thermostat"))
            let stored = try await store.executions(deploymentID: id)
            #expect(stored.first?.results.first?.outputTail == "login: bad password [secret:db_password] for thermostat\n")
            #expect(stored.first?.message == "exit 1: \(padding)[secret\u{2026}")
            #expect(stored.first?.message?.contains(Self.password.prefix(6)) == false)
        }
    }

    /// The device's report arrives after the server ended the execution (aborted here), and after
    /// the secret was deleted: neither lets the value through.
    @Test func lateReportsAndReportsWhoseSecretIsGoneAreHiddenToo() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            _ = try await putSecret(client, tokens.operator)
            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            func deploy() async throws -> String { try await deployLogin(client, tokens, device: device.deviceID) }
            let auth: HTTPFields = [.authorization: "Bearer \(device.deviceToken)"]
            func take() async throws -> Assignment {
                let polled = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth)
                #expect(polled.headers[.cacheControl] == "no-store")
                return try #require(try Self.decode(AssignmentList.self, polled).assignments.last)
            }
            func report(_ execution: String, _ id: String) async throws -> TestResponse {
                let step = StepResult(index: 0, name: "login", status: .failed, exitCode: 1, outputTail: "echo: \(Self.password)\n")
                return try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth,
                                                body: Self.json(ExecutionReport(reportID: id, state: .failed, step: step, message: "no: \(Self.password)")))
            }

            let first = try await deploy()
            let taken = try await take()
            _ = try await client.execute(uri: "/api/v1/deployments/\(first)/abort", method: .post, headers: own)
            #expect(try await report(taken.executionID, "late-1").status == .ok, "a late final report is recorded")
            let late = try #require(try await store.executions(deploymentID: first).first)
            #expect(late.results.first?.outputTail == "echo: [secret:db_password]\n")
            #expect(late.message?.hasPrefix("no: [secret:db_password];") == true, "\(late.message ?? "")")

            let second = try await deploy()
            let again = try await take()
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: own)
            _ = try await report(again.executionID, "gone-1")
            let withheld = try #require(try await store.executions(deploymentID: second).first)
            #expect(withheld.results.first?.outputTail == "[withheld: secret 'db-password' could not be opened to hide it]")
            #expect(withheld.message?.contains(Self.password) == false)
        }
    }

    @Test func secretsGoOnlyIntoCommands() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            _ = try await putSecret(client, tokens.operator, name: "cdn-token")
            let steps = [AssignedStep(name: "fetch", kind: .download, url: "https://cdn.example.com/${token}/a.tgz", sha256: String(repeating: "a", count: 64),
                                      destination: "/opt/a.tgz", timeoutSeconds: 60, retries: 0, onFailure: "abort", idempotent: true)]
            let body = DeploymentController.Request(app: "thermostat", version: "2.5.0", flow: "f", digest: nil, parameters: nil,
                                                    secrets: ["token": "cdn-token"], steps: steps, rollback: nil,
                                                    artifactAllowlist: ["https://cdn.example.com/"], devices: [device.deviceID])
            let refused = try await client.execute(uri: "/api/v1/deployments", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                   body: Self.json(body))
            #expect(refused.status == .badRequest)
            #expect(try Self.error(refused).field == "steps[0].url")

            // Nor into a probe: the device keeps its command long after the install.
            let login = [AssignedStep(name: "login", kind: .run, command: "login ${token}", timeoutSeconds: 30, retries: 0, onFailure: "abort",
                                      idempotent: true)]
            let probed = DeploymentController.Request(app: "thermostat", version: "2.5.0", flow: "f", digest: nil, parameters: nil,
                                                      secrets: ["token": "cdn-token"], steps: login, rollback: nil, artifactAllowlist: nil,
                                                      probe: AssignedProbe(command: "check --token ${token}"), devices: [device.deviceID])
            let probe = try await client.execute(uri: "/api/v1/deployments", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                 body: Self.json(probed))
            #expect(probe.status == .badRequest)
            #expect(try Self.error(probe).field == "probe.command")
            #expect(!String(buffer: probe.body).contains(Self.password))
        }
    }

    @Test func aSecretDeletedBeforeTheDeviceTakesItCancelsTheExecutionSayingWhy() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            _ = try await putSecret(client, tokens.operator)
            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let id = try await deployLogin(client, tokens, device: device.deviceID)
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: own)
            let polled = try await client.execute(uri: "/agent/v1/assignments", method: .get,
                                                  headers: [.authorization: "Bearer \(device.deviceToken)"])
            #expect(try Self.decode(AssignmentList.self, polled).assignments.isEmpty, "a step with a hole in it must not run")
            let execution = try #require(try await store.executions(deploymentID: id).first)
            #expect(execution.state == .cancelled)
            #expect(execution.message?.contains("secret 'db-password' is no longer set in project acme") == true)
        }
    }
}

/// The sealing itself.
struct SecretBoxTests {
    @Test func aSealedValueOpensOnlyForItsProjectAndNameUnderItsKey() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal("hunter2", project: "acme", name: "db")
        #expect(box.open(sealed, project: "acme", name: "db") == "hunter2")
        #expect(try box.seal("hunter2", project: "acme", name: "db") != sealed, "a fresh nonce each time")
        #expect(box.open(sealed, project: "other", name: "db") == nil, "moved to another project's row")
        #expect(box.open(sealed, project: "acme", name: "api") == nil, "moved to another name")
        #expect(SecretBox(key: SymmetricKey(size: .bits256)).open(sealed, project: "acme", name: "db") == nil, "another key")
        var tampered = sealed
        tampered[tampered.count / 2] ^= 1
        #expect(box.open(tampered, project: "acme", name: "db") == nil)
    }

    @Test func theKeyFileIsMadeOnceAndPrivate() throws {
        let file = NSTemporaryDirectory() + "flotilla-secret-key-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let first = try SecretBox.load(keyFile: file)
        let sealed = try first.seal("v", project: "p", name: "n")
        #expect(try SecretBox.load(keyFile: file).open(sealed, project: "p", name: "n") == "v", "the same key on the next start")
        #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
        chmod(file, 0o644)
        #expect(throws: SecretKeyError.self) { try SecretBox.load(keyFile: file) }
        let link = file + ".link"
        defer { unlink(link) }
        symlink(file, link)
        #expect(throws: SecretKeyError.self) { try SecretBox.load(keyFile: link) }
        try "not a key".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        #expect(throws: SecretKeyError.self) { try SecretBox.load(keyFile: file) }
    }

    @Test func redactionHidesEveryValueLongestFirst() {
        let secrets = DeploymentSecrets(values: ["short": "abc", "long": "abcdef"])
        #expect(secrets.redact("x abcdef y abc z") == "x [secret:long] y [secret:short] z")
    }
}

/// The controller's path: a deployment naming a secret its project lacks is not made.
struct DeployerSecretTests {
    @Test func aDeploymentNamingAMissingSecretIsRefused() async throws {
        let store = MemoryFleetStore()
        let deployer = Deployer(store: store, board: AssignmentBoard())
        let record = DeploymentRecord(id: "dep-1", project: "acme", app: "a", version: "1", flow: "f", digest: "d", parameters: [:],
                                      steps: [], rollback: [], artifactAllowlist: [], createdAt: Date(), createdBy: "controller",
                                      secrets: ["password": "db-password"])
        await #expect(throws: Deployer.MissingSecret.self) { try await deployer.create(record, devices: ["d1"], at: Date()) }
        #expect(try await store.deployment(id: "dep-1") == nil)
        _ = try await store.putSecret(SecretRecord(project: "acme", name: "db-password", sealed: [1], updatedAt: Date(), updatedBy: "t"))
        try await deployer.create(record, devices: ["d1"], at: Date())
        #expect(try await store.deployment(id: "dep-1") != nil)
    }
}
