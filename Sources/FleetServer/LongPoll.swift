import FleetStore
import ServiceLifecycle

extension AssignmentBoard {
    /// Most waits one device holds under one key at once. An agent holds one; a few more are a
    /// poll asked again after its connection dropped, whose earlier wait has not ended yet.
    static let waitsPerDevice = 4

    /// A long-poll's wait, which the server's graceful shutdown ends at once: a device waiting
    /// up to the long-poll limit would otherwise hold the shutdown (a restart, a rolling
    /// upgrade) that long. The device gets its "nothing new" answer and asks again, of this
    /// server once it is back or of another replica.
    ///
    /// The shutdown is heard through the handler ServiceLifecycle gives the task serving the
    /// connection: no task of its own per wait.
    func longPoll(device: String, since mark: UInt64, timeout: Duration, limit: Int = .max) async -> WaitOutcome {
        await withGracefulShutdownHandler {
            await wait(device: device, since: mark, timeout: timeout, limit: limit, perDevice: Self.waitsPerDevice)
        } onGracefulShutdown: {
            self.close()
        }
    }
}

/// Ends every long-poll when the server's services are cancelled rather than shut down
/// gracefully (one of them failed): the connections' tasks are cancelled then, and a wait, which
/// does not watch for cancellation (that would cost every waiting connection another frame),
/// would hold the server's end until its deadline.
struct LongPollCloser: Service {
    let board: AssignmentBoard

    func run() async {
        // Returns at a graceful shutdown (the waits have ended already), or throws at once when
        // the service group is cancelled.
        try? await gracefulShutdown()
        board.close()
    }
}
