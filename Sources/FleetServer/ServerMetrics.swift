import FleetStore
import Foundation
import Hummingbird
import Prometheus
import Synchronization

/// The server's Prometheus metrics, in a registry of its own (no process-wide bootstrap), served
/// at `/metrics` in the text exposition format.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let heartbeats: Counter
    let duplicateHeartbeats: Counter
    let batches: Counter
    let batchSize: ValueHistogram
    let devicesOnline: Gauge
    private let requestDuration: DurationHistogram
    private let longPollsHeld: Gauge
    private let longPollsDeferred: Counter
    private let deferredCounted = Mutex(0)
    private let devicesLimited: Counter
    private let limitedCounted = Mutex(0)

    init() {
        heartbeats = registry.makeCounter(name: "flotilla_heartbeats_total", help: "Heartbeats stored.")
        duplicateHeartbeats = registry.makeCounter(name: "flotilla_heartbeats_duplicate_total",
                                                   help: "Heartbeats acknowledged again without storing (a retried report id).")
        batches = registry.makeCounter(name: "flotilla_heartbeat_batches_total", help: "Heartbeat group commits.")
        batchSize = registry.makeValueHistogram(name: "flotilla_heartbeat_batch_size", buckets: [1, 8, 32, 128, 512, 2_048],
                                                help: "Heartbeats per group commit.")
        devicesOnline = registry.makeGauge(name: "flotilla_devices_online", help: "Devices heard from within the offline window.")
        requestDuration = registry.makeDurationHistogram(
            name: "flotilla_http_request_duration_seconds",
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(35)],
            help: "HTTP request latency, long-polls included.")
        longPollsHeld = registry.makeGauge(name: "flotilla_long_polls_held",
                                           help: "Devices' long-polls (assignments and commands) waiting on this server now.")
        longPollsDeferred = registry.makeCounter(name: "flotilla_long_polls_deferred_total",
                                                 help: "Long-polls answered at once with Retry-After: the server held its --max-long-polls.")
        devicesLimited = registry.makeCounter(name: "flotilla_device_requests_limited_total",
                                              help: "Requests answered 429 past an allowance: a device's (--device-request-rate), an enrollment token's (--enrollment-rate), an operator token's console sign-ins.")
        requestCounters = (1...5).map { [registry] statusClass in
            registry.makeCounter(name: "flotilla_http_requests_total", labels: [("status", "\(statusClass)xx")], help: "HTTP requests answered.")
        }
    }

    /// The board's count of waits now, and of waits it turned away since it began.
    func recordLongPolls(held: Int, deferred: Int) {
        longPollsHeld.set(Double(held))
        let added = deferredCounted.withLock { counted in
            defer { counted = max(counted, deferred) }
            return max(0, deferred - counted)
        }
        if added > 0 { longPollsDeferred.increment(by: Int64(added)) }
    }

    /// The limiter's count of refusals since it began.
    func recordLimited(_ refused: Int) {
        let added = limitedCounted.withLock { counted in
            defer { counted = max(counted, refused) }
            return max(0, refused - counted)
        }
        if added > 0 { devicesLimited.increment(by: Int64(added)) }
    }

    func recordRequest(status: Int, duration: Duration) {
        requestCounters[min(max(status / 100, 1), 5) - 1].increment()
        requestDuration.record(duration)
    }

    /// flotilla_http_requests_total for 1xx … 5xx, made once: looking a labelled series up in the
    /// registry on every request cost the hot path a lock, a hash and allocations.
    private let requestCounters: [Counter]

    /// What each controller has counted since the last scrape, by project: the controllers keep
    /// plain numbers, and their series live in this registry beside the server's.
    private let controllerTotals = Mutex<[String: ControllerMetrics]>([:])

    func recordControllers(_ samples: [(project: String?, metrics: ControllerMetrics)]) {
        for (project, metrics) in samples {
            let labels = project.map { [("project", $0)] } ?? []
            let previous = controllerTotals.withLock { seen in
                defer { seen[project ?? ""] = metrics }
                return seen[project ?? ""] ?? ControllerMetrics()
            }
            registry.makeCounter(name: "flotilla_controller_passes_total", labels: labels,
                                 help: "Reconcile passes of the fleet repository's desired state.")
                .increment(by: Int64(max(0, metrics.passes - previous.passes)))
            registry.makeCounter(name: "flotilla_controller_pass_seconds_total", labels: labels, help: "Time spent in reconcile passes.")
                .increment(by: max(0, metrics.passSeconds - previous.passSeconds))
            registry.makeGauge(name: "flotilla_controller_last_pass_seconds", labels: labels, help: "How long the last reconcile pass took.")
                .set(metrics.lastPassSeconds)
            registry.makeGauge(name: "flotilla_controller_executions_read", labels: labels,
                               help: "Executions the last reconcile pass read from the store (grows with the history).")
                .set(Double(metrics.lastExecutionsRead))
            registry.makeGauge(name: "flotilla_controller_executions_kept", labels: labels,
                               help: "Executions of those the last pass's decision read (about the fleet's size).")
                .set(Double(metrics.lastExecutionsKept))
        }
    }

    /// 1 on the replica that runs the controllers, 0 on the others; and how often each led.
    /// Label sets of `flotilla_alerts_firing` reported before: one that stopped firing reads 0.
    private let alertSeries = Mutex<Set<[String]>>([])

    /// Firing alerts per project, rule and severity.
    func recordAlerts(_ counts: [(project: String, rule: String, severity: String, count: Int)], dropped: Int) {
        let current = Set(counts.map { [$0.project, $0.rule, $0.severity] })
        let gone = alertSeries.withLock { series in
            defer { series = current }
            return series.subtracting(current)
        }
        for labels in gone {
            registry.makeGauge(name: "flotilla_alerts_firing", labels: [("project", labels[0]), ("rule", labels[1]), ("severity", labels[2])],
                               help: "Devices an alert rule fires on.").set(Double(0))
        }
        for count in counts {
            registry.makeGauge(name: "flotilla_alerts_firing", labels: [("project", count.project), ("rule", count.rule), ("severity", count.severity)],
                               help: "Devices an alert rule fires on.").set(Double(count.count))
        }
        registry.makeGauge(name: "flotilla_alert_heartbeats_dropped", help: "Heartbeats not evaluated for alerts: the queue was full.")
            .set(Double(dropped))
    }

    func recordLeadership(_ role: any ReplicaRole) {
        registry.makeGauge(name: "flotilla_controller_leader", labels: [("replica", role.holder)],
                           help: "1 when this replica runs the controllers (holds the lease), 0 when it stands by.")
            .set(role.isLeading ? 1.0 : 0.0)
        registry.makeGauge(name: "flotilla_controller_leader_terms", labels: [("replica", role.holder)],
                           help: "How many times this replica has taken the controller lease since it started.")
            .set(Double(role.terms))
    }

    func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
