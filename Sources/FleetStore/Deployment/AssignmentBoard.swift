import Synchronization

/// Wakes devices that are long-polling for assignments when their work changes.
///
/// Nearly every device of a fleet waits here at any moment, so a wait costs one entry, not a
/// task: one sweeper ends the waits whose time is up, sleeping until the soonest of them.
public actor AssignmentBoard {
    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Void, Never>
    }

    private var waiters: [String: [Waiter]] = [:]
    /// Waits now, every device's together.
    private var held = 0
    private var deadlines = DeadlineHeap()
    private var nextWaiter = 0
    /// The one task that ends waits at their deadline, and when it wakes.
    private var sweeper: Task<Void, Never>?
    private var sweeperWakesAt: ContinuousClock.Instant?
    /// Set once the server begins to shut down: no wait starts any more.
    private nonisolated let closed = Atomic<Bool>(false)

    public init() {}

    /// Whether `close()` was called.
    public nonisolated var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// Ends every wait now and lets none start after: a server shutting down answers its
    /// long-polls at once instead of holding the shutdown for their whole length. Safe to call
    /// from anywhere, any number of times.
    public nonisolated func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task { await self.endEveryWait() }
    }

    private func endEveryWait() {
        let ended = waiters
        waiters = [:]
        held = 0
        deadlines = DeadlineHeap()
        sweeper?.cancel()
        sweeper = nil
        sweeperWakesAt = nil
        for waiter in ended.values.joined() { waiter.continuation.resume() }
    }

    /// Waits now, counting every device's waits together (for tests and metrics).
    public var waiting: Int { held }

    /// Counts every wake; `woken` remembers, per device, the count at its last wake, and
    /// `wokenBefore` the generation before it (swapped by the first wake a minute after the last
    /// swap, so a wake is remembered one to two minutes).
    private var wakes: UInt64 = 0
    private var woken: [String: UInt64] = [:]
    private var wokenBefore: [String: UInt64] = [:]
    private var generationStarted = ContinuousClock.now

    /// Where the board's wakes stand now: take it before reading what a long-poll compares, and
    /// give it to `wait(device:since:timeout:)`, so a wake that comes between the read and the
    /// wait is not missed.
    public func mark() -> UInt64 { wakes }

    /// How a wait ended, or why it did not start.
    public enum WaitOutcome: Sendable, Equatable {
        /// Woken, timed out, or the board closed: the device's work is read again.
        case ended
        /// Not started: the board holds `limit` waits already.
        case declined
        /// Not started: this device holds `perDevice` waits already.
        case deviceBusy
    }

    /// Returns when `device`'s assignments may have changed, or after `timeout`. With `since`
    /// (a `mark()`), it returns at once when the device was woken after that mark.
    ///
    /// With `limit`, a wait that would make more than `limit` at once does not start, and the
    /// caller tells the device to ask again later; with `perDevice`, neither does one that would
    /// give one device more than that many — so no device can fill the board for the others. A
    /// wake since `since` ends the wait first: a device whose work just changed is never turned away.
    @discardableResult
    public func wait(device: String, since: UInt64? = nil, timeout: Duration, limit: Int = .max, perDevice: Int = .max) async -> WaitOutcome {
        if let since, let at = woken[device] ?? wokenBefore[device], at > since { return .ended }
        guard (waiters[device]?.count ?? 0) < perDevice else { return .deviceBusy }
        guard held < limit else {
            declined += 1
            return .declined
        }
        let id = nextWaiter
        nextWaiter += 1
        let deadline = ContinuousClock.now + timeout
        await withCheckedContinuation { continuation in
            // Checked here, on the actor: a close whose sweep already ran is seen.
            guard !isClosed else { return continuation.resume() }
            held += 1
            waiters[device, default: []].append(Waiter(id: id, continuation: continuation))
            deadlines.insert(deadline, waiter: id, device: device)
            sweep(at: deadline)
        }
        return .ended
    }

    /// Waits turned away since the board began, because `limit` were held already.
    public private(set) var declined = 0

    private var relay: (@Sendable ([String]) async -> Void)?

    /// Passes every `notify` on to `publish` as well: the other replicas on the same database,
    /// where the device may be long-polling (they call `wakeHere`).
    public func relay(through publish: @escaping @Sendable ([String]) async -> Void) {
        relay = publish
    }

    /// Wakes every device in `devices` that is waiting, here and (with a relay) on every replica.
    public func notify(_ devices: some Sequence<String> & Sendable) {
        let devices = Array(devices)
        wakeHere(devices)
        if let relay, !devices.isEmpty { Task { await relay(devices) } }
    }

    /// Wakes the devices waiting on this server only: what another replica relayed. (Their
    /// deadlines stay in the heap and are passed over when they come.)
    public func wakeHere(_ devices: some Sequence<String> & Sendable) {
        wakes += 1
        rememberWakes()
        for device in devices {
            woken[device] = wakes
            guard let list = waiters.removeValue(forKey: device) else { continue }
            held -= list.count
            for waiter in list { waiter.continuation.resume() }
        }
    }

    /// Starts a new generation of remembered wakes once the current one is a minute old: a wake
    /// is remembered one to two minutes, far longer than a long-poll takes between its read and
    /// its wait.
    private func rememberWakes(now: ContinuousClock.Instant = .now) {
        guard now - generationStarted >= .seconds(60) else { return }
        wokenBefore = woken
        woken = [:]
        generationStarted = now
    }

    /// Makes sure the sweeper wakes by `deadline`: a sooner deadline replaces a later sleep.
    private func sweep(at deadline: ContinuousClock.Instant) {
        if let wakesAt = sweeperWakesAt, wakesAt <= deadline { return }
        sweeper?.cancel()
        sweeperWakesAt = deadline
        sweeper = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }  // a sooner sweep took its place
            self.endDueWaits()
        }
    }

    /// Ends every wait whose time is up, then sleeps until the next.
    private func endDueWaits() {
        sweeper = nil
        sweeperWakesAt = nil
        let now = ContinuousClock.now
        while let soonest = deadlines.first, soonest.deadline <= now {
            deadlines.removeFirst()
            guard var list = waiters[soonest.device], let index = list.firstIndex(where: { $0.id == soonest.waiter }) else { continue }
            let waiter = list.remove(at: index)
            waiters[soonest.device] = list.isEmpty ? nil : list
            held -= 1
            waiter.continuation.resume()
        }
        if let next = deadlines.first { sweep(at: next.deadline) }
    }
}

/// Waits' deadlines, soonest first.
struct DeadlineHeap {
    struct Entry: Comparable, Sendable {
        let deadline: ContinuousClock.Instant
        let waiter: Int
        let device: String

        static func < (left: Entry, right: Entry) -> Bool { left.deadline < right.deadline }
        static func == (left: Entry, right: Entry) -> Bool { left.deadline == right.deadline && left.waiter == right.waiter }
    }

    private var heap = MinHeap<Entry>()

    var first: Entry? { heap.first }
    var count: Int { heap.count }

    mutating func insert(_ deadline: ContinuousClock.Instant, waiter: Int, device: String) {
        heap.insert(Entry(deadline: deadline, waiter: waiter, device: device))
    }

    mutating func removeFirst() { heap.removeFirst() }
}

/// Changes to devices' standing that every replica's caches must see at once: a device deleted
/// or its identity reset on one replica must not be let in by another that remembers it.
///
/// On one server, the operator routes report changes here and the device cache listens. With
/// replicas, the store announces each change when it commits and `WakeRelay` hands the others'
/// here; while the relay is not connected, caches are not trusted at all (`isConnected`), and
/// whatever they hold expires after `cacheLifetime` in any case.
public final class RegistryEvents: Sendable {
    /// How long a cached device may be trusted; nil (for ever) on a single server.
    public let cacheLifetime: Duration?
    private let listeners = Mutex<[@Sendable (_ devices: [String]?) -> Void]>([])
    private let connected = Mutex(true)

    public init(cacheLifetime: Duration? = nil) {
        self.cacheLifetime = cacheLifetime
    }

    /// `handler` hears each change; nil means anything may have changed.
    public func onChange(_ handler: @escaping @Sendable (_ devices: [String]?) -> Void) {
        listeners.withLock { $0.append(handler) }
    }

    /// `devices` changed (nil: anything may have).
    public func changed(_ devices: [String]?) {
        for listener in listeners.withLock({ $0 }) { listener(devices) }
    }

    /// Whether changes made elsewhere reach this server now. Going down or coming back, caches
    /// are dropped: what changed meanwhile was not heard.
    public var isConnected: Bool {
        get { connected.withLock { $0 } }
        set {
            connected.withLock { $0 = newValue }
            changed(nil)
        }
    }
}
