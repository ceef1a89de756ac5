import Synchronization

/// Heartbeats waiting for the alert engine, at most one per device, in the order devices were
/// first heard since their last evaluation. A device heard again before its waiting heartbeat was
/// evaluated replaces it in its place: a rule judges the device's state as it is now, and a
/// device sending many a second (a compromised one, at its allowance) then holds one place in
/// the queue, not all of it — every other device's heartbeats are still evaluated. Only when
/// `capacity` devices wait at once is a heartbeat of another one dropped.
struct AlertMailbox<Value> {
    struct Key: Hashable {
        var project: String
        var device: String
    }

    enum Outcome: Equatable {
        /// The device now waits, behind those already waiting.
        case queued
        /// The device was waiting already: this replaces what it had, in its place.
        case replaced
        /// `capacity` devices wait already: not kept.
        case dropped
    }

    let capacity: Int
    private var order: [Key] = []
    private var head = 0
    private var waiting: [Key: Value] = [:]

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { waiting.count }

    mutating func push(_ value: Value, for key: Key) -> Outcome {
        if waiting[key] != nil {
            waiting[key] = value
            return .replaced
        }
        guard waiting.count < capacity else { return .dropped }
        waiting[key] = value
        order.append(key)
        return .queued
    }

    /// The device waiting longest, and its newest heartbeat.
    mutating func pop() -> (key: Key, value: Value)? {
        while head < order.count {
            let key = order[head]
            head += 1
            // What was taken goes from the front now and then, not on every pop.
            if head == order.count {
                order.removeAll(keepingCapacity: order.count <= 4 * capacity)
                head = 0
            } else if head >= 1_024, head * 2 >= order.count {
                order.removeFirst(head)
                head = 0
            }
            if let value = waiting.removeValue(forKey: key) { return (key, value) }
        }
        return nil
    }
}
