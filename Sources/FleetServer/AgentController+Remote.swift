import FleetProtocol
import FleetStore
import Foundation
import Hummingbird

/// `/agent/v1/commands`: the device's side of remote commands. It long-polls for them (only
/// while its heartbeats' answers say its project allows any), sends each one's output as raw
/// bytes from an offset, then its result.
extension AgentController {
    func addRemoteRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.get("commands") { request, _ in try await commands(request) }
        // In tasks of their own, for the connection's sake (see `addRoutes`).
        group.post("commands/:id/output") { request, context in
            let id = try PathParameter.require(context, "id")
            return try await Task { try await commandOutput(request, id: id) }.value
        }
        group.post("commands/:id/result") { request, context in
            let id = try PathParameter.require(context, "id")
            return try await Task { try await commandResult(request, id: id) }.value
        }
    }

    /// The device's queued commands, taken; none yet, it waits for one up to the long-poll limit.
    /// As `assignments` does, the work before and after the wait runs in tasks of their own, so
    /// the connection's task, which lives as long as the device stays connected, stays shallow.
    @inline(__always)
    private func commands(_ request: Request) async throws -> Response {
        let authorization = request.headers[.authorization]
        let start = try await Task { () async throws -> LongPollStart in
            let subject = try await self.subject(authorization: authorization)
            try self.limiter.take(subject, .polls)
            let device = try await self.admit(subject)
            let mark = await self.board.mark()
            let taken = try await self.takeCommands(device: device, project: subject.project)
            return taken.isEmpty ? .wait(subject, since: mark) : .answer(try Self.commandList(taken))
        }.value
        let (subject, mark): (DeviceTokens.Subject, UInt64)
        switch start {
        case .answer(let response): return response
        case .wait(let waiting, let since): (subject, mark) = (waiting, since)
        }
        let declined: Bool
        switch await board.longPoll(device: "remote:" + subject.device, since: mark,
                                    timeout: .milliseconds(Int(configuration.longPollSeconds * 1_000)), limit: longPollLimit(request)) {
        case .ended: declined = false
        case .declined: declined = true
        case .deviceBusy: throw busy()
        }
        // Also when the wait was declined: a command queued after the first look, whose wake
        // has not come yet, is handed out rather than left for the device's next poll.
        let taken = try await Task {
            // Admitted again: the device may have been deleted, or its identity reset, while it waited.
            let device = try await self.admit(subject)
            return try await self.takeCommands(device: device, project: subject.project)
        }.value
        return declined && taken.isEmpty ? deferred(try Self.commandList([])) : try Self.commandList(taken)
    }

    /// The device's queued commands, taken. Only kinds the commit in force still allows are
    /// handed out: one queued before a commit turned it off stays queued and expires.
    private func takeCommands(device: String, project: String) async throws -> [RemoteCommandRecord] {
        let access = await remoteAccess?.access(project: project) ?? RemoteAccess()
        let kinds: Set<RemoteCommand.Kind> = Set((access.exec ? [.exec] : []) + (access.fetchPaths.isEmpty ? [] : [.fetch]))
        return kinds.isEmpty ? [] : try await store.takeCommands(deviceID: device, kinds: kinds, at: Date())
    }

    private static func commandList(_ taken: [RemoteCommandRecord]) throws -> Response {
        var response = try JSONBody.response(RemoteCommandList(commands: taken.map(\.command)))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    private func commandOutput(_ request: Request, id: String) async throws -> Response {
        let subject = try await subject(request)
        try limiter.take(subject, .remote)
        let device = try await admit(subject)
        let offset = try Validate.offset(request)
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: RemoteCommand.pieceBytes)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "send output in pieces of at most \(RemoteCommand.pieceBytes) bytes")
        }
        _ = try await admit(subject)
        let bytes = Array(buffer.readableBytesView), now = Date()
        let update = try await store.updateCommand(id: id, deviceID: device) { $0.appending(bytes, at: offset, date: now) }
        return try acknowledge(update, id: id)
    }

    private func commandResult(_ request: Request, id: String) async throws -> Response {
        let subject = try await subject(request)
        try limiter.take(subject, .remote)
        let device = try await admit(subject)
        let result = try await JSONBody.decode(RemoteCommandResult.self, from: request, limit: configuration.maximumBodyBytes)
        _ = try await admit(subject)
        if let message = result.message {
            guard message.utf8.count <= 1_024, !message.unicodeScalars.contains(where: StepRules.isControl) else {
                throw APIError.invalid("'message' must be at most 1024 bytes without control characters", field: "message")
            }
        }
        guard result.droppedBytes >= 0 else { throw APIError.invalid("'droppedBytes' must not be negative", field: "droppedBytes") }
        guard result.outputBytes >= 0 else { throw APIError.invalid("'outputBytes' must not be negative", field: "outputBytes") }
        let now = Date()
        let update = try await store.updateCommand(id: id, deviceID: device) { $0.finishing(with: result, date: now) }
        return try acknowledge(update, id: id)
    }

    /// How much output the server holds, and whether the command has ended: the device resends
    /// from there when it is behind, and stops sending once it has ended.
    private func acknowledge(_ update: RemoteCommandUpdate, id: String) throws -> Response {
        switch update {
        case .accepted(let record, _):
            return try JSONBody.response(RemoteCommandAcknowledgement(outputBytes: record.outputBytes, ended: record.state.isFinal))
        case .gap(let expected):
            return try JSONBody.response(RemoteCommandAcknowledgement(outputBytes: expected, ended: false))
        case .finished(let record):
            return try JSONBody.response(RemoteCommandAcknowledgement(outputBytes: record.outputBytes, ended: true))
        case .tooLarge(let limit):
            throw APIError(.contentTooLarge, "output_too_large", "the command's output is limited to \(limit) bytes; send no more")
        case .notFound:
            throw APIError.notFound("no command '\(id)' for this device")
        }
    }
}
