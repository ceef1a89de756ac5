@testable import FleetStore
import Foundation
import Testing

/// Long-polls end when their device's work changes or when their time is up, each at its own
/// deadline, with one sweeper for all of them.
///
/// The suite shares two cores with every other suite, and a task may wait seconds for a thread;
/// so an upper bound here is far above any scheduling delay yet far below what the bug it guards
/// against would take (a wait that never ends, or one held until a 10-minute deadline).
@Suite(.timeLimit(.minutes(1)))
struct AssignmentBoardTests {
    @Test
    func aWaitEndsAtItsDeadline() async {
        let board = AssignmentBoard()
        let started = ContinuousClock.now
        await board.wait(device: "d-1", timeout: .milliseconds(80))
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(80))
        #expect(waited < .seconds(120))
        #expect(await board.waiting == 0)
    }

    /// A short wait that starts after a long one must not wait for the long one's deadline.
    @Test
    func aSoonerDeadlineIsNotHeldUpByALaterOne() async {
        let board = AssignmentBoard()
        let long = Task { await board.wait(device: "d-long", timeout: .seconds(600)) }
        while await board.waiting < 1 { await Task.yield() }
        let started = ContinuousClock.now
        await board.wait(device: "d-short", timeout: .milliseconds(50))
        #expect(ContinuousClock.now - started < .seconds(120))
        #expect(await board.waiting == 1)
        await board.notify(["d-long"])
        await long.value
        #expect(await board.waiting == 0)
    }

    @Test
    func notifyWakesEveryWaitOfTheDeviceAndNoOther() async {
        let board = AssignmentBoard()
        let first = Task { await board.wait(device: "d-1", timeout: .seconds(60)) }
        let second = Task { await board.wait(device: "d-1", timeout: .seconds(60)) }
        let other = Task { await board.wait(device: "d-2", timeout: .seconds(60)) }
        while await board.waiting < 3 { await Task.yield() }
        await board.notify(["d-1"])
        await first.value
        await second.value
        #expect(await board.waiting == 1)
        await board.notify(["d-2"])
        await other.value
    }

    /// With a limit, a wait that would make one too many does not start and says so; the count
    /// falls as waits end (woken or timed out), so a later one is held again. A device woken
    /// since its mark is answered, not turned away, however full the board is.
    @Test
    func aWaitPastTheLimitIsDeclinedUntilAnotherEnds() async {
        let board = AssignmentBoard()
        let first = Task { await board.wait(device: "d-1", timeout: .seconds(600), limit: 2) }
        let second = Task { await board.wait(device: "d-2", timeout: .seconds(600), limit: 2) }
        while await board.waiting < 2 { await Task.yield() }
        let mark = await board.mark()
        #expect(await board.wait(device: "d-3", since: mark, timeout: .seconds(600), limit: 2) == .declined)
        #expect(await board.declined == 1)
        // No limit: held whatever the count (an agent that cannot be told to come back later).
        let unlimited = Task { await board.wait(device: "d-4", timeout: .seconds(600)) }
        while await board.waiting < 3 { await Task.yield() }

        // Woken, the count falls; a wait that times out gives its place back too.
        await board.notify(["d-2", "d-4"])
        #expect(await second.value == .ended)
        #expect(await unlimited.value == .ended)
        #expect(await board.waiting == 1)
        #expect(await board.wait(device: "d-5", timeout: .milliseconds(20), limit: 2) == .ended)
        #expect(await board.waiting == 1)
        let third = Task { await board.wait(device: "d-3", timeout: .seconds(600), limit: 2) }
        while await board.waiting < 2 { await Task.yield() }
        #expect(await board.declined == 1)

        // Full again; d-6's work changed since its mark: answered at once, not declined.
        let before = await board.mark()
        await board.notify(["d-6"])
        #expect(await board.wait(device: "d-6", since: before, timeout: .seconds(600), limit: 2) == .ended)
        #expect(await board.declined == 1)
        await board.notify(["d-1", "d-3"])
        #expect(await first.value == .ended)
        #expect(await third.value == .ended)
        #expect(await board.waiting == 0)
    }

    /// One device cannot hold more than `perDevice` waits, however much room the board has:
    /// its token alone cannot fill the board for every other device. Other devices still wait.
    @Test
    func oneDeviceHoldsAtMostItsShareOfWaits() async {
        let board = AssignmentBoard()
        let held = (0..<2).map { _ in Task { await board.wait(device: "d-1", timeout: .seconds(600), perDevice: 2) } }
        while await board.waiting < 2 { await Task.yield() }
        #expect(await board.wait(device: "d-1", timeout: .seconds(600), perDevice: 2) == .deviceBusy)
        #expect(await board.declined == 0)
        let other = Task { await board.wait(device: "d-2", timeout: .seconds(600), perDevice: 2) }
        while await board.waiting < 3 { await Task.yield() }
        await board.notify(["d-1", "d-2"])
        for wait in held { #expect(await wait.value == .ended) }
        #expect(await other.value == .ended)
        #expect(await board.waiting == 0)
    }

    /// Closing the board resets the count with the waits it ends.
    @Test
    func closingEndsTheCountWithTheWaits() async {
        let board = AssignmentBoard()
        let waits = (0..<2).map { index in Task { await board.wait(device: "d-\(index)", timeout: .seconds(600), limit: 2) } }
        while await board.waiting < 2 { await Task.yield() }
        board.close()
        for wait in waits { #expect(await wait.value == .ended) }
        #expect(await board.waiting == 0)
    }

    /// Work queued between a long-poll's read and its wait still wakes it: a wait given the
    /// mark taken before the read returns at once when the device was woken after it, and waits
    /// when the wake came before the mark or was for another device.
    @Test
    func aWakeBetweenTheReadAndTheWaitIsNotMissed() async {
        let board = AssignmentBoard()
        let mark = await board.mark()
        await board.notify(["d-1"])
        let started = ContinuousClock.now
        await board.wait(device: "d-1", since: mark, timeout: .seconds(60))
        #expect(ContinuousClock.now - started < .seconds(30), "the wake came after the mark")

        let later = await board.mark()
        let stale = Task { await board.wait(device: "d-1", since: later, timeout: .seconds(600)) }
        let other = Task { await board.wait(device: "d-2", since: mark, timeout: .seconds(600)) }
        while await board.waiting < 2 { await Task.yield() }
        await board.notify(["d-1", "d-2"])
        await stale.value
        await other.value
        #expect(await board.waiting == 0)
    }

    /// A server shutting down ends every wait at once, and any wait that starts after returns
    /// at once: none holds the shutdown until its 10-minute deadline.
    @Test
    func closingEndsEveryWaitAndLetsNoneStart() async {
        let board = AssignmentBoard()
        let waits = (0..<3).map { index in Task { await board.wait(device: "d-\(index % 2)", timeout: .seconds(600)) } }
        while await board.waiting < 3 { await Task.yield() }
        #expect(!board.isClosed)
        board.close()
        board.close()  // again, as every waiting request's shutdown handler does
        for wait in waits { await wait.value }
        #expect(await board.waiting == 0)
        #expect(board.isClosed)
        let started = ContinuousClock.now
        await board.wait(device: "d-late", timeout: .seconds(600))
        #expect(ContinuousClock.now - started < .seconds(120))
        #expect(await board.waiting == 0)
    }

    /// Woken waits leave their deadline behind; when it comes it ends nothing else.
    @Test
    func aWokenWaitsDeadlineEndsNothingLater() async {
        let board = AssignmentBoard()
        let woken = Task { await board.wait(device: "d-1", timeout: .milliseconds(50)) }
        while await board.waiting < 1 { await Task.yield() }
        await board.notify(["d-1"])
        await woken.value
        let later = Task { () -> Duration in
            let started = ContinuousClock.now
            await board.wait(device: "d-1", timeout: .milliseconds(400))
            return ContinuousClock.now - started
        }
        #expect(await later.value >= .milliseconds(400))
    }

    @Test
    func theHeapGivesDeadlinesSoonestFirst() {
        var heap = DeadlineHeap()
        let base = ContinuousClock.now
        var generator = SystemRandomNumberGenerator()
        let offsets = (0..<500).map { _ in Int.random(in: 0..<10_000, using: &generator) }
        for (index, offset) in offsets.enumerated() {
            heap.insert(base + .milliseconds(offset), waiter: index, device: "d-\(index)")
        }
        var popped: [ContinuousClock.Instant] = []
        while let first = heap.first {
            popped.append(first.deadline)
            heap.removeFirst()
        }
        #expect(popped.count == 500)
        #expect(popped == popped.sorted())
    }
}
