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

    /// Wakes every device in `devices` that is waiting.
    public func notify(_ devices: some Sequence<String> & Sendable) {
        for device in devices {
            for continuation in (waiters.removeValue(forKey: device) ?? [:]).values { continuation.resume() }
        }
    }

    private func wake(device: String, waiter: Int) {
        waiters[device]?.removeValue(forKey: waiter)?.resume()
        if waiters[device]?.isEmpty == true { waiters[device] = nil }
    }
}
