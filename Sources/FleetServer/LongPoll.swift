import FleetStore
import ServiceLifecycle

extension AssignmentBoard {
    /// A long-poll's wait, which the server's graceful shutdown ends at once: a device waiting
    /// up to the long-poll limit would otherwise hold the shutdown (a restart, a rolling
    /// upgrade) that long. The device gets its "nothing new" answer and asks again, of this
    /// server once it is back or of another replica.
    ///
    /// The shutdown is heard through the handler ServiceLifecycle gives the task serving the
    /// connection: no task of its own per wait.
    func longPoll(device: String, timeout: Duration) async {
        await withGracefulShutdownHandler {
            await wait(device: device, timeout: timeout)
        } onGracefulShutdown: {
            self.close()
        }
    }
}
