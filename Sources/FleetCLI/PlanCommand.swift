import ArgumentParser
import FleetCore
import Foundation

/// `flotilla plan [DIR] --devices FILE`: which devices would change, from what to what.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show which devices the repository would change, from what to what, in which waves.",
        discussion: "Exit status: 0 when nothing would change, 1 when something would, 2 on error."
    )

    @OptionGroup var source: FleetSource

    @Option(help: "The device inventory: a JSON file of devices with their tags and app versions.")
    var devices: String?

    @Option(help: ArgumentHelp("Take the live device inventory from this server instead of a file.",
                               discussion: "The operator token is read from FLOTILLA_TOKEN."))
    var server: String?

    @Option(help: "text, markdown (for a pull-request comment) or json.")
    var format: OutputFormat = .text

    @Option(help: "Devices listed per target before '… and N more'.")
    var limit: Int = 20

    @Option(help: "With --head: show only what changing the repository from this revision does (a pull request's base).")
    var base: String?

    @Option(help: "With --base: the revision to plan (a pull request's head).")
    var head: String?

    @Flag(help: ArgumentHelp("With --server: add when each target can start, how long it should take on this fleet, and the devices at risk.",
                             discussion: "Reads the controller's status and the fleet's recent executions."))
    var forecast = false

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 or more") }
        guard (base == nil) == (head == nil) else { throw ValidationError("--base and --head go together") }
        guard !forecast || server != nil else { throw ValidationError("--forecast needs --server: it reads the live fleet") }
        guard (devices == nil) != (server == nil) else { throw ValidationError("give the devices with --devices FILE or --server URL (one of them)") }
    }

    func run() async throws {
        let fleet = try source.load(at: head, format: format)
        let inventory: DeviceInventory
        if let server {
            let client = try ServerClient(server: server)
            inventory = try InventoryFile.parse(try await client.get("/api/v1/devices"), path: client.base + "/api/v1/devices")
        } else {
            inventory = try InventoryFile.read(devices!)
        }
        var plan = try makePlan(fleet, inventory)
        if let base {
            let baseFleet = try source.load(at: base, format: format)
            plan = plan.changes(since: try makePlan(baseFleet, inventory))
        }
        let forecast = self.forecast ? RolloutForecast(plan, facts: try await Self.facts(try ServerClient(server: server!))) : nil
        switch format {
        case .text:
            print(PlanRenderer.text(plan, limit: limit))
            if let forecast { print(forecast.rendered(markdown: false, limit: limit), terminator: "") }
        case .markdown:
            print(PlanRenderer.markdown(plan, limit: limit), terminator: "")
            if let forecast { print("\n" + forecast.rendered(markdown: true, limit: limit), terminator: "") }
        case .json:
            var document = PlanRenderer.json(plan)
            if let forecast, case .object(var members) = document {
                members.append(("forecast", .array(forecast.targets.map { target in
                    .object([
                        ("app", .string(target.app)), ("group", .string(target.group)), ("version", .string(target.version)),
                        ("waves", .array(target.waves.map { .array($0.map(JSONValue.string)) })),
                        ("startsWhen", .array(target.startsWhen.map(JSONValue.string))),
                        ("expectedSeconds", target.expectedSeconds.map { .int(Int($0.rounded(.up))) } ?? .null),
                        ("atRisk", .array(target.atRisk.map { .object([("device", .string($0.device)), ("reason", .string($0.reason))]) })),
                    ])
                })))
                document = .object(members)
            }
            print(document.serialized(pretty: true))
        }
        if plan.hasChanges { throw ExitCode(1) }
    }

    /// What the forecast needs beyond the inventory: locked devices from the controller's
    /// status; execution times and last outcomes from the newest deployments.
    static func facts(_ client: ServerClient, deployments limit: Int = 20) async throws -> RolloutForecast.Facts {
        var facts = RolloutForecast.Facts(now: Date())
        // No controller (or one that has not reconciled yet): no locks known.
        if let body = try? await client.get("/api/v1/status"), let status = try? ServerClient.decode(FleetStatusReport.self, from: body) {
            for device in status.locked { facts.locked[device.device] = device.reason }
        }
        func object(_ data: Data) -> [String: Any] { ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:] }
        func date(_ value: Any?) -> Date? {
            guard let text = value as? String else { return nil }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
        }
        var durations: [Double] = []
        var newest: [String: (at: Date, failed: Bool)] = [:]
        let list = object(try await client.get("/api/v1/deployments"))["deployments"] as? [[String: Any]] ?? []
        for deployment in list.prefix(limit) {
            guard let id = deployment["id"] as? String else { continue }
            for execution in object(try await client.get("/api/v1/deployments/\(id)"))["executions"] as? [[String: Any]] ?? [] {
                guard let device = execution["deviceID"] as? String, let state = execution["state"] as? String,
                      let updated = date(execution["updatedAt"]) else { continue }
                if state == "succeeded", let taken = date(execution["takenAt"]) { durations.append(updated.timeIntervalSince(taken)) }
                guard state != "cancelled", ["succeeded", "failed", "timedOut"].contains(state) else { continue }
                if newest[device].map({ updated > $0.at }) ?? true { newest[device] = (updated, state != "succeeded") }
            }
        }
        facts.lastFailed = Set(newest.filter(\.value.failed).keys)
        durations.sort()
        if !durations.isEmpty { facts.executionSeconds = durations[durations.count / 2] }
        return facts
    }

    private func makePlan(_ fleet: CompiledFleet, _ inventory: DeviceInventory) throws -> FleetPlan {
        do {
            return try Planner.plan(fleet, inventory: inventory)
        } catch {
            throw CLIError("\(devices ?? server ?? ""): \(error)")
        }
    }
}
