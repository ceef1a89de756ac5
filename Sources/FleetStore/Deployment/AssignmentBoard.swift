import Synchronization

/// Wakes devices that are long-polling for assignments when their work changes.
public actor AssignmentBoard {
    private var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiter = 0

    public init() {}

    /// Returns when `device`'s assignments may have changed, or after `timeout`.
    public func wait(device: String, timeout: Duration) async {
        let id = nextWaiter
        nextWaiter += 1
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.wake(device: device, waiter: id)
        }
        await withCheckedContinuation { continuation in
            waiters[device, default: [:]][id] = continuation
        }
        timer.cancel()
    }

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

    /// Wakes the devices waiting on this server only: what another replica relayed.
    public func wakeHere(_ devices: some Sequence<String> & Sendable) {
        for device in devices {
            for continuation in (waiters.removeValue(forKey: device) ?? [:]).values { continuation.resume() }
        }
    }

    private func wake(device: String, waiter: Int) {
        waiters[device]?.removeValue(forKey: waiter)?.resume()
        if waiters[device]?.isEmpty == true { waiters[device] = nil }
    }
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
