import FleetProtocol
@testable import FleetServer
import FleetStore
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
import ServiceLifecycle
import Testing

/// One of the server's services failing cancels the rest; the long-polls end then too, rather
/// than holding the server's end until their deadline.
struct CancelledServerTests {
    /// A service that fails when told to.
    struct Failing: Service {
        struct Failure: Error {}
        let told: AsyncStream<Void>

        func run() async throws {
            for await _ in told { throw Failure() }
        }
    }

    @Test func aFailingServiceEndsTheLongPollsAtOnce() async throws {
        let store = MemoryFleetStore()
        let enrollment = AccessTokens.make(kind: .enrollment, project: "acme", now: Date())
        try await store.insertToken(enrollment.record)
        let keyFile = NSTemporaryDirectory() + "flotilla-key-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        var configuration = ServerConfiguration(port: try GitDaemon.freePort())
        configuration.longPollSeconds = 60
        let (told, tell) = AsyncStream<Void>.makeStream()
        let board = AssignmentBoard()
        let app = FleetServer.buildApplication(configuration: configuration, store: store,
                                               tokens: try await DeviceTokens.load(keyFile: keyFile), board: board,
                                               services: [Failing(told: told)])
        let group = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let base = "http://127.0.0.1:\(configuration.port)"
        let session = URLSession(configuration: .ephemeral)

        var enroll = URLRequest(url: URL(string: base + "/agent/v1/enroll")!)
        enroll.httpMethod = "POST"
        enroll.setValue("application/json", forHTTPHeaderField: "Content-Type")
        enroll.httpBody = Data(#"{"token":"\#(enrollment.text)","hardwareID":"serial-1","deviceSecret":"0123456789abcdef0123"}"#.utf8)
        var enrolled: EnrollmentResponse?
        for _ in 0..<100 where enrolled == nil {  // until the server listens
            if let (data, _) = try? await session.data(for: enroll) { enrolled = try? JSONDecoder().decode(EnrollmentResponse.self, from: data) }
            if enrolled == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let token = try #require(enrolled).deviceToken
        var first = URLRequest(url: URL(string: base + "/agent/v1/assignments")!)
        first.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (_, answer) = try await session.data(for: first)
        var poll = first
        poll.setValue(try #require((answer as? HTTPURLResponse)?.value(forHTTPHeaderField: "ETag")), forHTTPHeaderField: "If-None-Match")
        poll.timeoutInterval = 90
        let waiting = Task { _ = try? await session.data(for: poll) }
        defer { waiting.cancel() }
        // Until the poll waits on the server.
        for _ in 0..<2_000 where await board.waiting == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await board.waiting == 1)

        let failed = ContinuousClock.now
        tell.yield()
        await #expect(throws: (any Error).self) { try await running.value }
        // The server's end waits for every request it is answering: it came well before the
        // poll's limit. (What the client then sees is not asserted: its HTTP client may send
        // the request again, to whatever listens on the port by then.)
        #expect(ContinuousClock.now - failed < .seconds(20), "the long-poll's limit is 60 s")
        #expect(await board.waiting == 0)
    }
}

/// The allocator's free memory is handed back at every interval, until the server stops.
struct MemoryTrimTests {
    @Test func theAllocatorIsTrimmedAtEveryIntervalUntilShutdown() async throws {
        let trims = Mutex(0)
        let service = MemoryTrim(every: .milliseconds(10), trim: { trims.withLock { $0 += 1 } })
        let group = ServiceGroup(configuration: .init(services: [service], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        for _ in 0..<2_000 where trims.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(trims.withLock { $0 } >= 3)
        await group.triggerGracefulShutdown()
        try await running.value
        let afterShutdown = trims.withLock { $0 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(trims.withLock { $0 } == afterShutdown)
        // This system's C library is glibc: the real trim is there, and runs.
        #expect(MemoryTrim.canTrim)
        MemoryTrim.trimAllocator()
    }
}
