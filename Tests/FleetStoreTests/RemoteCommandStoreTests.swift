import FleetProtocol
import FleetStore
import Foundation
import Testing

/// Remote commands in every store: taken once, output appended in order (a resend adds nothing,
/// a gap is refused), ended once, expired when nobody answers, scoped to the project, pruned.
struct RemoteCommandStoreTests {
    typealias Kind = StoreConformanceTests.Kind
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func record(_ device: String, batch: String = "r-1", project: String = "acme", timeout: Int = 30, limit: Int = 16,
                at offset: TimeInterval = 0) -> RemoteCommandRecord {
        RemoteCommandRecord(id: "\(batch)-\(device)", batch: batch, project: project, deviceID: device,
                            command: RemoteCommand(id: "\(batch)-\(device)", kind: .exec, command: ["uptime"], timeoutSeconds: timeout,
                                                   maximumBytes: limit),
                            requestedBy: "operator:o1", requestedAt: now.addingTimeInterval(offset))
    }

    @Test(arguments: Kind.allCases)
    func aCommandIsTakenOnceAndItsOutputKeptInOrder(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.queueCommands([record("d1"), record("d2")])
        await #expect(throws: StoreError.self) { try await store.queueCommands([record("d1")]) }
        #expect(try await store.openCommands(deviceID: "d1", at: now) == 1)

        // A kind the project no longer allows is not handed out.
        #expect(try await store.takeCommands(deviceID: "d1", kinds: [.fetch], at: now.addingTimeInterval(1)).isEmpty)
        let taken = try await store.takeCommands(deviceID: "d1", kinds: [.exec, .fetch], at: now.addingTimeInterval(1))
        #expect(taken.map(\.id) == ["r-1-d1"])
        #expect(taken.first?.state == .running)
        #expect(try await store.takeCommands(deviceID: "d1", kinds: [.exec, .fetch], at: now.addingTimeInterval(2)).isEmpty)

        let at = now.addingTimeInterval(3)
        func send(_ text: String, from offset: Int, device: String = "d1") async throws -> RemoteCommandUpdate {
            let bytes = Array(text.utf8)
            return try await store.updateCommand(id: "r-1-d1", deviceID: device) { $0.appending(bytes, at: offset, date: at) }
        }
        guard case .accepted(let first, _) = try await send("hello ", from: 0) else { Issue.record("not accepted"); return }
        #expect(first.outputBytes == 6)
        // Sent again (the answer was lost): nothing is added twice.
        guard case .accepted(let again, let appended) = try await send("hello ", from: 0) else { Issue.record("resend refused"); return }
        #expect(again.outputBytes == 6 && appended.isEmpty)
        // A piece that starts past what is held is refused, saying where to start.
        #expect(try await send("xyz", from: 9) == .gap(expected: 6))
        // Overlapping: only the new part is kept.
        guard case .accepted(let overlap, _) = try await send("o world", from: 4) else { Issue.record("overlap refused"); return }
        #expect(overlap.outputBytes == 11)
        // Another device cannot write into it.
        #expect(try await send("!", from: 11, device: "d2") == .notFound)
        // Past the command's limit (16 bytes) is refused.
        #expect(try await send("0123456789", from: 11) == .tooLarge(limit: 16))
        #expect(try await store.commandOutput(id: "r-1-d1", project: "acme", offset: 0) == Array("hello world".utf8))
        #expect(try await store.commandOutput(id: "r-1-d1", project: "acme", offset: 6) == Array("world".utf8))
        // Another project's operator reads nothing of it.
        #expect(try await store.commandOutput(id: "r-1-d1", project: "other", offset: 0) == nil)
        #expect(try await store.commands(batch: "r-1", project: "other", at: at).isEmpty)

        // A result that counts more output than is held is answered with where the output stands.
        let short = RemoteCommandResult(exitCode: 0, outputBytes: 12)
        #expect(try await store.updateCommand(id: "r-1-d1", deviceID: "d1") { $0.finishing(with: short, date: at) } == .gap(expected: 11))
        let result = RemoteCommandResult(exitCode: 3, outputBytes: 11)
        guard case .accepted(let ended, _) = try await store.updateCommand(id: "r-1-d1", deviceID: "d1", { $0.finishing(with: result, date: at) })
        else { Issue.record("result refused"); return }
        #expect(ended.state == .failed && ended.result?.exitCode == 3)
        // Nothing more once it ended.
        guard case .finished = try await send("late", from: 11) else { Issue.record("output taken after the end"); return }
        #expect(try await store.commandOutput(id: "r-1-d1", project: "acme", offset: 0) == Array("hello world".utf8))

        let listed = try await store.commands(batch: "r-1", project: "acme", at: at)
        #expect(listed.map(\.deviceID) == ["d1", "d2"])
        #expect(listed.map(\.state) == [.failed, .queued])
        #expect(try await store.openCommands(deviceID: "d1", at: at) == 0)
    }

    @Test(arguments: Kind.allCases)
    func commandsNobodyAnswersExpireAndOldOnesArePruned(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.queueCommands([record("d1", timeout: 10), record("d2", timeout: 10), record("d3", batch: "r-0", at: -2 * 86_400)])
        // d1 is taken in time and then falls silent; d2 is never taken.
        #expect(try await store.takeCommands(deviceID: "d1", kinds: [.exec, .fetch], at: now.addingTimeInterval(5)).count == 1)
        let late = now.addingTimeInterval(RemoteCommandRecord.pickupSeconds + 1)
        #expect(try await store.takeCommands(deviceID: "d2", kinds: [.exec, .fetch], at: late).isEmpty)
        let states = try await store.commands(batch: "r-1", project: "acme", at: late)
        #expect(states.map(\.state) == [.expired, .expired])
        #expect(states[0].message?.contains("no result from the device") == true)
        #expect(states[1].message?.contains("did not take it") == true)
        #expect(try await store.openCommands(deviceID: "d2", at: late) == 0)
        // A result after the deadline is not taken.
        let result = RemoteCommandResult(exitCode: 0, outputBytes: 0)
        guard case .finished = try await store.updateCommand(id: "r-1-d1", deviceID: "d1", { $0.finishing(with: result, date: late) }) else {
            Issue.record("a late result was taken"); return
        }

        try await store.pruneCommands(before: now.addingTimeInterval(-86_400))
        #expect(try await store.commands(batch: "r-0", project: "acme", at: now).isEmpty)
        #expect(try await store.commands(batch: "r-1", project: "acme", at: now).count == 2)
    }
}
