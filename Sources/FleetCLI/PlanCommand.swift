import ArgumentParser
import FleetCore

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

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 or more") }
        guard (base == nil) == (head == nil) else { throw ValidationError("--base and --head go together") }
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
        switch format {
        case .text: print(PlanRenderer.text(plan, limit: limit))
        case .markdown: print(PlanRenderer.markdown(plan, limit: limit), terminator: "")
        case .json: print(PlanRenderer.json(plan).serialized(pretty: true))
        }
        if plan.hasChanges { throw ExitCode(1) }
    }

    private func makePlan(_ fleet: CompiledFleet, _ inventory: DeviceInventory) throws -> FleetPlan {
        do {
            return try Planner.plan(fleet, inventory: inventory)
        } catch {
            throw CLIError("\(devices ?? server ?? ""): \(error)")
        }
    }
}
