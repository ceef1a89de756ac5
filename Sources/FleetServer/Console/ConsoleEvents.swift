import FleetStore
import Foundation

/// Tells open consoles when their project's status changed, for the live pages.
///
/// One watcher for the whole server, running only while a console listens: once a second it
/// reads the status of each project someone listens to and counts a new version when it differs.
/// A console waits on a continuation, so an open console costs nothing while nothing changes but
/// its keep-alive; a hundred consoles of one project cost one status read a second, not a hundred.
actor ConsoleEvents {
    /// What a project's status is read through: the controller's status JSON.
    typealias StatusReader = @Sendable (String) async -> [UInt8]?

    private struct Waiter {
        var id: Int
        var stream: Int?
        var project: String
        var after: Int
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Int, Never>
    }

    private let read: StatusReader
    private let tick: Duration
    private var versions: [String: (version: Int, fingerprint: Int)] = [:]
    private var waiters: [Int: Waiter] = [:]
    private var nextID = 0
    private var watcher: Task<Void, Never>?
    /// Status reads so far, for the test that an idle console costs none.
    private(set) var reads = 0

    /// Open event streams of each session, oldest first: each holds a connection, so they are
    /// counted and capped.
    private var streams: [String: [Int]] = [:]
    private var streamCount = 0
    private var nextStream = 0
    /// Streams ended to make room for a newer one of their session.
    private var evicted: Set<Int> = []
    /// What `next` answers a stream that was ended to make room.
    static let ended = -1
    private let maximumStreams: Int
    /// The most event streams one session may hold open (a few tabs).
    static let streamsPerSession = 4

    init(tick: Duration = .seconds(1), maximumStreams: Int = 1_000, read: @escaping StatusReader) {
        self.tick = tick
        self.maximumStreams = maximumStreams
        self.read = read
    }

    init(controllers: ControllerSet, maximumStreams: Int) {
        self.init(maximumStreams: maximumStreams) { project in await controllers.entry(for: project)?.handle.statusJSON() }
    }

    /// The server is stopping: every stream ends now (or it would hold the shutdown until its
    /// lifetime ends), and none starts.
    func close() {
        closed = true
        for waiter in waiters.values { waiter.continuation.resume(returning: Self.ended) }
        waiters.removeAll()
        watcher?.cancel()
        watcher = nil
    }

    private var closed = false

    /// A new event stream of `session`: its id, or nil when the server holds its most. A session
    /// at its most gets the stream, and its oldest one ends (a page left behind: the browser
    /// closed it, and the server hears so only at its next write).
    func admit(session: String) -> Int? {
        guard !closed else { return nil }
        var open = streams[session, default: []]
        if open.count >= Self.streamsPerSession {
            let oldest = open.removeFirst()
            evicted.insert(oldest)
            streamCount -= 1
            for waiter in waiters.values where waiter.stream == oldest {
                waiters[waiter.id] = nil
                waiter.continuation.resume(returning: Self.ended)
            }
        }
        guard streamCount < maximumStreams else {
            streams[session] = open.isEmpty ? nil : open
            return nil
        }
        let id = nextStream
        nextStream += 1
        open.append(id)
        streams[session] = open
        streamCount += 1
        return id
    }

    func leave(session: String, stream: Int) {
        if evicted.remove(stream) != nil { return }
        guard var open = streams[session], let index = open.firstIndex(of: stream) else { return }
        open.remove(at: index)
        streams[session] = open.isEmpty ? nil : open
        streamCount -= 1
    }

    /// The project's status version now (reading it the first time it is asked).
    func current(project: String) async -> Int {
        if let known = versions[project] { return known.version }
        await refresh(project)
        return versions[project]?.version ?? 0
    }

    /// Waits until the project's version passes `after`, or `timeout` passes (then the version is
    /// still `after`), or the task is cancelled; `ended` when `stream` was ended to make room.
    func next(project: String, after: Int, timeout: Duration, stream: Int? = nil) async -> Int {
        if closed { return Self.ended }
        if let stream, evicted.contains(stream) { return Self.ended }
        if let known = versions[project], known.version > after { return known.version }
        let id = nextID
        nextID += 1
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled || closed {
                    continuation.resume(returning: closed ? Self.ended : after)
                    return
                }
                waiters[id] = Waiter(id: id, stream: stream, project: project, after: after, deadline: .now + timeout,
                                     continuation: continuation)
                startWatching()
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    var listening: Int { waiters.count }
    /// Whether the watcher runs (only while someone listens).
    var isWatching: Bool { watcher != nil }

    private func cancel(_ id: Int) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(returning: waiter.after)
    }

    private func startWatching() {
        guard watcher == nil else { return }
        watcher = Task { [tick] in
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                guard await self.pass() else { return }
            }
        }
    }

    /// One look at every project someone waits on; false when nobody waits any more.
    private func pass() async -> Bool {
        for project in Set(waiters.values.map(\.project)) { await refresh(project) }
        let now = ContinuousClock.now
        for waiter in waiters.values {
            let version = versions[waiter.project]?.version ?? 0
            if version > waiter.after || waiter.deadline <= now {
                waiters[waiter.id] = nil
                waiter.continuation.resume(returning: version)
            }
        }
        if waiters.isEmpty {
            watcher = nil
            return false
        }
        return true
    }

    private func refresh(_ project: String) async {
        reads += 1
        var hasher = Hasher()
        hasher.combine(await read(project) ?? [])
        let fingerprint = hasher.finalize()
        let known = versions[project]
        if known == nil || known!.fingerprint != fingerprint {
            versions[project] = ((known?.version ?? 0) + 1, fingerprint)
        }
    }
}
