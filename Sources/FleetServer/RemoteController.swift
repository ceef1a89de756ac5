import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird
import Synchronization

/// `/api/v1/exec`, `/api/v1/fetch` and `/api/v1/remote`: an operator reaching devices over their
/// agents' own outbound link. Off unless the project's commit in force allows it (`remote:` in
/// fleet.yaml); every request is audited with who asked, what, and on which devices.
struct RemoteController: Sendable {
    let store: any FleetStore
    let board: AssignmentBoard
    let access: RemoteAccessCache
    let configuration: ServerConfiguration

    /// The most devices one `exec` reaches.
    static let maximumDevices = 1_000

    struct ExecRequest: Codable {
        var devices: [String]?
        var selector: String?
        var command: [String]
        var timeoutSeconds: Int?
    }

    struct FetchRequest: Codable {
        var device: String
        var path: String
        var timeoutSeconds: Int?
    }

    func addRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.post("exec") { request, context in try await exec(request, context) }
        group.post("fetch") { request, context in try await fetch(request, context) }
        group.get("remote/:id") { _, context in try await show(context, batch: try PathParameter.require(context, "id")) }
        group.get("remote/:id/devices/:device/output") { request, context in
            try await output(request, context, batch: try PathParameter.require(context, "id"),
                             device: try PathParameter.require(context, "device"))
        }
    }

    private func exec(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        let body = try await JSONBody.decode(ExecRequest.self, from: request, limit: configuration.maximumOperatorBodyBytes)
        try await OperatorAuth.confirm(token, store: store)
        guard let access = await access.access(project: token.project), access.exec else {
            throw APIError(.forbidden, "remote_exec_off",
                           "remote exec is off for project \(token.project); to allow it, set remote: {exec: true} in its fleet.yaml "
                           + "and push: it holds once the controller has that commit in force")
        }
        try Self.check(body.command)
        let timeout = try Self.timeout(body.timeoutSeconds)
        let devices = try await targets(body, project: token.project)
        let command = RemoteCommand(id: "", kind: .exec, command: body.command, timeoutSeconds: timeout)
        let detail = "ran " + Self.quoted(body.command)
        return try await queue(command, on: devices, token: token, action: "remote.exec", detail: detail)
    }

    private func fetch(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        let body = try await JSONBody.decode(FetchRequest.self, from: request, limit: configuration.maximumOperatorBodyBytes)
        try await OperatorAuth.confirm(token, store: store)
        let access = await access.access(project: token.project) ?? RemoteAccess()
        guard !access.fetchPaths.isEmpty else {
            throw APIError(.forbidden, "remote_fetch_off",
                           "fetching files is off for project \(token.project); to allow it, list directories in its fleet.yaml "
                           + "(remote: {fetchPaths: [/var/log]}) and push")
        }
        if let problem = access.fetchProblem(body.path) { throw APIError(.forbidden, "path_not_allowed", problem, field: "path") }
        let timeout = try Self.timeout(body.timeoutSeconds)
        let device = try await device(body.device, project: token.project, field: "device")
        let command = RemoteCommand(id: "", kind: .fetch, path: body.path, allowedPaths: access.fetchPaths, timeoutSeconds: timeout)
        return try await queue(command, on: [device], token: token, action: "remote.fetch", detail: "fetched \(body.path)")
    }

    /// One record per device: queued for the online ones (woken at once), ended at once for
    /// those that are offline or hold too many already, so the answer covers every device.
    private func queue(_ command: RemoteCommand, on devices: [DeviceRecord], token: AccessTokenRecord, action: String,
                       detail: String) async throws -> Response {
        let now = Date(), batch = "r-" + AccessTokens.randomHex(bytes: 8)
        var records: [RemoteCommandRecord] = []
        for device in devices {
            var command = command
            command.id = batch + "-" + device.id
            var record = RemoteCommandRecord(id: command.id, batch: batch, project: token.project, deviceID: device.id, command: command,
                                             requestedBy: "operator:\(token.id)", requestedAt: now)
            if let heard = device.lastHeartbeatAt, now.timeIntervalSince(heard) <= configuration.offlineAfterSeconds {
                if try await store.openCommands(deviceID: device.id, at: now) >= RemoteCommandRecord.openPerDevice {
                    record.state = .failed
                    record.finishedAt = now
                    record.message = "the device already has \(RemoteCommandRecord.openPerDevice) commands that have not ended"
                }
            } else {
                record.state = .expired
                record.finishedAt = now
                record.message = "the device is offline"
                    + (device.lastHeartbeatAt.map { " (last heard \(Int(now.timeIntervalSince($0))) s ago)" } ?? " (never heard from)")
            }
            records.append(record)
        }
        // Audited before anything is queued: no command runs that the log does not name.
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)", action: action,
                                                subject: batch, detail: detail + " on " + records.map(\.deviceID).joined(separator: ", ")))
        try await store.queueCommands(records)
        await board.notify(records.filter { $0.state == .queued }.map { "remote:" + $0.deviceID })
        return try JSONBody.response(RemoteBatchView(records: records.sorted { $0.deviceID < $1.deviceID }), status: .created)
    }

    private func show(_ context: FleetRequestContext, batch: String) async throws -> Response {
        let token = try context.operatorToken()
        let records = try await store.commands(batch: batch, project: token.project, at: Date())
        guard !records.isEmpty else { throw APIError.notFound("no remote request '\(batch)' in project \(token.project)") }
        return try JSONBody.response(RemoteBatchView(records: records))
    }

    private func output(_ request: Request, _ context: FleetRequestContext, batch: String, device: String) async throws -> Response {
        let token = try context.operatorToken()
        let offset = try Validate.offset(request)
        // The command by its batch and device, and its output by the command's own id: a batch and
        // device that only join into another command's id (`r-1-d` and `2` for `r-1-d-2`) name
        // no command, and read nothing.
        let record = try await store.commands(batch: batch, project: token.project, at: Date()).first { $0.deviceID == device }
        guard let record, let bytes = try await store.commandOutput(id: record.id, project: token.project, offset: offset) else {
            throw APIError.notFound("no device '\(DisplayText.safe(device, limit: 64))' in remote request '\(DisplayText.safe(batch, limit: 64))' "
                                    + "of project \(token.project)")
        }
        // A fetched file is read by whoever holds an operator token of the project: every read
        // of it is audited, as the fetch was — from whatever offset, and while the fetch still
        // runs (a read from byte 1, or before the end, shows the file all the same).
        if record.command.kind == .fetch, offset == 0 || !bytes.isEmpty {
            let part = offset == 0 ? "" : " from byte \(offset)"
            try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)", action: "remote.fetch.read",
                                                    subject: batch, detail: "read \(record.command.path ?? "")\(part) of \(device)"))
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The devices an exec names, or its selector matches: of the token's project, not deleted.
    private func targets(_ body: ExecRequest, project: String) async throws -> [DeviceRecord] {
        switch (body.devices, body.selector) {
        case (let ids?, nil):
            guard !ids.isEmpty else { throw APIError.invalid("'devices' names at least one device", field: "devices") }
            guard ids.count <= Self.maximumDevices else {
                throw APIError.invalid("at most \(Self.maximumDevices) devices at once", field: "devices")
            }
            var devices: [DeviceRecord] = []
            for (index, id) in Set(ids).sorted().enumerated() {
                devices.append(try await device(id, project: project, field: "devices[\(index)]"))
            }
            return devices
        case (nil, let text?):
            // An empty selector selects every device: never what an unset variable should mean here.
            guard !text.allSatisfy(\.isWhitespace) else {
                throw APIError.invalid("the selector is empty, which would select every device; write one, such as 'site=berlin'",
                                       field: "selector")
            }
            let selector: LabelSelector
            do {
                selector = try LabelSelector(parsing: text)
            } catch {
                throw APIError.invalid("invalid selector at column \(error.offset + 1): \(error.reason)", field: "selector")
            }
            let devices = try await store.devices(project: project).filter { !$0.deleted && selector.matches($0.reportedTags) }
            guard !devices.isEmpty else { throw APIError.invalid("the selector matches no device of project \(project)", field: "selector") }
            guard devices.count <= Self.maximumDevices else {
                throw APIError.invalid("the selector matches \(devices.count) devices; at most \(Self.maximumDevices) at once", field: "selector")
            }
            return devices
        default:
            throw APIError.invalid("give either 'devices' or 'selector'", field: "devices")
        }
    }

    private func device(_ id: String, project: String, field: String) async throws -> DeviceRecord {
        // Another project's device is answered like a device that does not exist.
        guard let device = try await store.device(id: id), device.project == project, !device.deleted else {
            throw APIError.invalid("no device '\(DisplayText.safe(id, limit: 64))' in project \(project)", field: field)
        }
        return device
    }

    static func check(_ command: [String]) throws {
        guard !command.isEmpty, !command[0].isEmpty else { throw APIError.invalid("'command' names a program to run", field: "command") }
        guard command.count <= 256 else { throw APIError.invalid("'command' has at most 256 words", field: "command") }
        guard command.reduce(0, { $0 + $1.utf8.count }) <= 16 * 1024 else {
            throw APIError.invalid("'command' is at most 16 KiB", field: "command")
        }
        // A word is handed to exec as a C string: a NUL would cut it short of what was audited.
        if let index = command.firstIndex(where: { $0.utf8.contains(0) }) {
            throw APIError.invalid("a command word cannot hold a NUL byte", field: "command[\(index)]")
        }
    }

    static func timeout(_ seconds: Int?) throws -> Int {
        let seconds = seconds ?? RemoteCommand.defaultTimeoutSeconds
        guard (1...RemoteCommand.maximumTimeoutSeconds).contains(seconds) else {
            throw APIError.invalid("'timeoutSeconds' is from 1 to \(RemoteCommand.maximumTimeoutSeconds)", field: "timeoutSeconds")
        }
        return seconds
    }

    /// The words as a shell would take them back, for the audit log.
    static func quoted(_ words: [String]) -> String {
        words.map { word in
            word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }) && !word.isEmpty
                ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

/// What each project's commit in force allows remotely, as its controller says, kept for a few
/// seconds: every heartbeat's answer carries whether the project's devices should poll for commands.
final class RemoteAccessCache: Sendable {
    private let controllers: ControllerSet
    private let entries = Mutex<[String: (access: RemoteAccess?, at: ContinuousClock.Instant)]>([:])
    static let lifetime: Duration = .seconds(5)

    init(controllers: ControllerSet) {
        self.controllers = controllers
    }

    func access(project: String) async -> RemoteAccess? {
        let now = ContinuousClock.now
        if let entry = entries.withLock({ $0[project] }), now - entry.at < Self.lifetime { return entry.access }
        let access = await controllers.entry(for: project)?.handle.remoteAccess()
        entries.withLock { $0[project] = (access, now) }
        return access
    }
}
