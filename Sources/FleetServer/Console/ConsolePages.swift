import FleetCore
import FleetProtocol
import FleetStore
import Foundation

/// The console's pages, rendered from values: no I/O here, so each page is a function a test
/// calls with a table of inputs.
enum ConsolePages {
    enum Section: String { case overview, devices, commits, audit }

    /// The page around `main`: a header with the sections and the session, the stylesheet and the
    /// script. `live` pages get their main part replaced as the project's status changes.
    static func layout(title: String, session: ConsoleSession?, section: Section?, live: Bool = false, main: HTML) -> HTML {
        let nav: HTML
        if let session {
            let links: [HTML] = [(Section.overview, "/", "Overview"), (.devices, "/devices", "Devices"), (.commits, "/commits", "Commits"),
                                 (.audit, "/audit", "Audit log")]
                .map { item, href, label in
                    "<li><a href=\"\(href)\"\(item == section ? HTML(" aria-current=\"page\"") : "")>\(label)</a></li>"
                }
            nav = """
            <nav aria-label="Sections"><ul>\(links)</ul></nav>
            <div class="who"><span>project <strong>\(session.project)</strong></span>\
            \(live ? HTML("<span class=\"live\" id=\"live-status\" aria-live=\"polite\"></span>") : "")
            <form class="inline" method="post" action="/sign-out">\(csrfField(session))<button type="submit">Sign out</button></form></div>
            """
        } else {
            nav = ""
        }
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · Flotilla</title>
        <link rel="stylesheet" href="/console/console.css">
        <script src="/console/console.js" defer></script>
        </head>
        <body>
        <header><a class="brand" href="/">Flotilla</a>\(nav)</header>
        <main id="main"\(live ? HTML(" data-live") : "")>
        \(main)
        </main>
        </body>
        </html>
        """
    }

    static func csrfField(_ session: ConsoleSession) -> HTML {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(session.csrfToken)\">"
    }

    /// A button that posts to `action` with the session's CSRF token; none where the session's
    /// access does not reach (the form would be refused).
    static func action(_ session: ConsoleSession, _ action: String, _ label: String, danger: Bool = false,
                       fields: [(String, String)] = []) -> HTML {
        guard OperatorAccessRules.required(method: "POST", path: action) <= session.record.grants else { return "" }
        let hidden = fields.map { name, value -> HTML in "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">" }
        return """
        <form class="inline" method="post" action="\(action)">\(csrfField(session))\(hidden)\
        <button type="submit"\(danger ? HTML(" class=\"danger\"") : "")>\(label)</button></form>
        """
    }

    // MARK: Sign-in and errors

    static func signIn(error: String?, next: String) -> HTML {
        let problem: HTML = error.map { "<div class=\"error\" role=\"alert\">\($0)</div>" } ?? ""
        return layout(title: "Sign in", session: nil, section: nil, main: """
        <section class="signin">
        <h1>Sign in</h1>
        <p class="muted">With an operator token of your project (<code>flotilla token create --operator</code>).
        The console shows that project only.</p>
        \(problem)
        <form method="post" action="/sign-in">
        <input type="hidden" name="next" value="\(next)">
        <label for="token">Operator token</label>
        <input type="password" id="token" name="token" autocomplete="off" required autofocus>
        <button type="submit">Sign in</button>
        </form>
        </section>
        """)
    }

    static func error(status: Int, message: String, session: ConsoleSession?) -> HTML {
        layout(title: "Error \(status)", session: session, section: nil, main: """
        <h1>\(status == 404 ? "Not found" : status == 403 ? "Refused" : "Error \(status)")</h1>
        <div class="error" role="alert">\(message)</div>
        <p><a href="/">Back to the overview</a></p>
        """)
    }

    // MARK: Overview

    /// What the overview knows of the project's controller.
    enum ControllerState {
        /// No controller reconciles the project on this server.
        case none
        /// It runs, but has not reconciled a commit yet.
        case starting
        case reconciled(FleetStatusReport, leader: String?)
    }

    static func overviewMain(session: ConsoleSession, state: ControllerState, suspended: Set<String>, devices: Int, online: Int,
                             notice: String? = nil, asOf: Date? = nil) -> HTML {
        let noticeHTML: HTML = notice.map { "<div class=\"panel\" role=\"status\">\($0)</div>" } ?? ""
        let fleet: HTML = """
        <p>\(devices) devices, \(online) online (<a href="/devices?online=false">\(devices - online) offline</a>)\(asOf.map(listedAt))</p>
        """
        switch state {
        case .none:
            return """
            <h1>Overview of \(session.project)</h1>\(noticeHTML)\(fleet)
            <div class="panel">No repository is reconciled for project \(session.project) on this server: start it with
            <code>flotilla serve --repo</code>, or name the project in <code>serve --config</code>.</div>
            """
        case .starting:
            return """
            <h1>Overview of \(session.project)</h1>\(noticeHTML)\(fleet)
            <div class="panel">The controller has not reconciled a commit yet.</div>
            """
        case .reconciled(let report, let leader):
            let head: HTML = report.head == report.commit || report.head.isEmpty ? "" : """
            <div class="error" role="alert"><strong>The head \(String(report.head.prefix(12))) is not in force:</strong>
            <pre>\(report.headErrors.joined(separator: "\n"))</pre></div>
            """
            let apps = report.apps.map { app(session: session, $0, suspended: suspended.contains($0.name)) }
            let locked: HTML = report.locked.isEmpty ? "" : """
            <h2>Devices refusing updates now</h2>
            <ul>\(report.locked.prefix(50).map { "<li><a href=\"/devices/\(URLText.component($0.device))\">\($0.device)</a>: \($0.reason)</li>" as HTML })</ul>
            """
            let alerts: HTML = (report.alerts ?? []).isEmpty ? "" : """
            <h2>Alerts firing</h2>
            <ul>\((report.alerts ?? []).prefix(50).map { alert in
                "<li><strong>[\(alert.severity)] \(alert.rule)</strong> on <a href=\"/devices/\(URLText.component(alert.device))\">\(alert.device)</a> since \(alert.firingAt): \(alert.observed)</li>" as HTML
            })</ul>
            """
            return """
            <h1>Overview of \(session.project)</h1>\(noticeHTML)
            <div class="panel"><p>Commit in force: \(commitLink(report))\
            \(report.commitSubject.map { " <strong>\($0)</strong>" as HTML })\(report.commitAuthor.map { " by \($0)" as HTML })\
            \(leader.map { " · controller on \($0)" as HTML })</p>\(fleet)
            \(action(session, "/reconcile", "Reconcile now"))</div>
            \(head)\(alerts)\(apps)\(locked)
            """
        }
    }

    static func app(session: ConsoleSession, _ app: FleetStatusReport.App, suspended: Bool) -> HTML {
        let word = FleetStatusReport.state(of: app)
        let rows = app.targets.map { target -> HTML in
            let rollout = "/rollouts/\(URLText.component(app.name))/\(URLText.component(target.group))"
            return """
            <tr><td><a href="\(rollout)">\(target.group)</a></td><td class="mono">\(target.version)</td>
            <td>\(badge(target.state))\(target.reason.map { " <span class=\"muted\">\($0)</span>" as HTML })</td>
            <td>\(convergence(target))</td></tr>
            """
        }
        let drift: HTML = app.drifted.isEmpty ? "" : """
        <details><summary>\(app.drifted.count) drifted</summary><ul>\
        \((app.drift.isEmpty ? app.drifted.map { FleetStatusReport.DeviceReason(device: $0, reason: "drifted") } : app.drift).prefix(50)
            .map { "<li><a href=\"/devices/\(URLText.component($0.device))\">\($0.device)</a>: \($0.reason)</li>" as HTML })</ul></details>
        """
        let error: HTML = app.error.map { "<div class=\"error\" role=\"alert\">Not reconciled: \($0)</div>" } ?? ""
        let toggle = suspended
            ? action(session, "/apps/\(URLText.component(app.name))/resume", "Resume")
            : action(session, "/apps/\(URLText.component(app.name))/suspend", "Suspend", danger: true)
        return """
        <section aria-labelledby="app-\(app.name)">
        <h2 id="app-\(app.name)">\(app.name) \(badge(word))\(suspended ? HTML(" \(badge("suspended"))") : "") \(toggle)</h2>
        <p class="muted">\(app.summary)</p>\(error)
        <div class="table-wrap"><table>
        <thead><tr><th scope="col">Target</th><th scope="col">Version</th><th scope="col">State</th><th scope="col">Devices</th></tr></thead>
        <tbody>\(rows)</tbody></table></div>\(drift)
        </section>
        """
    }

    /// The parts of a target's devices, each with its count in words beside the bar, so the
    /// colours are never the only way to read it.
    static func convergence(_ target: FleetStatusReport.Target) -> HTML {
        let waiting = max(0, target.devices - target.converged - target.updating - target.failed - target.offline)
        let parts: [(String, Int, String)] = [("converged", target.converged, "var(--ok)"), ("updating", target.updating, "var(--busy)"),
                                              ("failed", target.failed, "var(--bad)"), ("offline", target.offline, "var(--idle)"),
                                              ("waiting", waiting, "var(--wait)")]
        let total = max(1, target.devices)
        let segments = parts.filter { $0.1 > 0 }.map { name, count, colour -> HTML in
            let width = String(format: "%.2f", Double(count) * 100 / Double(total))
            return "<span style=\"width:\(width)%;background:\(colour)\" title=\"\(count) \(name)\"></span>"
        }
        let legend = parts.filter { $0.1 > 0 || $0.0 == "converged" }.map { name, count, colour -> HTML in
            "<span data-count=\"\(name)\"><i style=\"background:\(colour)\"></i>\(count) \(name)</span> "
        }
        return """
        <div class="bar" role="img" aria-label="\(target.converged) of \(target.devices) converged">\(segments)</div>
        <div class="legend">\(legend)<span class="muted">of \(target.devices)</span></div>
        """
    }

    /// A state word with a colour, the word itself always shown.
    static func badge(_ state: String) -> HTML {
        let tone: String
        switch state {
        case "converged", "success", "succeeded", "online", "running": tone = "s-ok"
        case "updating", "pending", "assigned", "queued", "observing": tone = "s-busy"
        case "failed", "failure", "aborted", "timedOut", "drifted", "down": tone = "s-bad"
        case "waiting", "suspended", "locked": tone = "s-wait"
        default: tone = "s-idle"
        }
        return "<span class=\"badge \(tone)\">\(state)</span>"
    }

    // MARK: Rollout

    /// A wave: one of the controller's deployments of the target, with its executions.
    struct Wave {
        var deployment: DeploymentRecord
        var executions: [ExecutionRecord]
    }

    /// What is left of a target's rollout, at the pace its waves so far went: how many devices,
    /// about how many waves, about how long. Nil when nothing is left or nothing is known yet.
    static func forecast(target: FleetStatusReport.Target, waves: [Wave], now: Date) -> String? {
        // Started: what the status counts updating, or the waves' unfinished executions when they
        // are ahead of it (the status is from the controller's last pass); and those observed.
        let unfinished = waves.filter { $0.deployment.purpose == .rollout }.reduce(0) { $0 + $1.executions.count { !$0.state.isFinal } }
        let left = target.devices - target.converged - target.failed - target.observing - max(target.updating, unfinished)
        guard left > 0 else { return nil }
        let offline = min(target.offline, left)
        let online = left - offline
        var text = "\(left) device\(left == 1 ? "" : "s") left to start"
        if offline > 0 { text += " (\(offline) offline: each is updated when it is heard from again)" }
        if let reason = target.reason, ["waiting", "suspended", "aborted"].contains(target.state) {
            return text + "; nothing starts now: \(reason)."
        }
        let rollout = waves.filter { $0.deployment.purpose == .rollout && !$0.executions.isEmpty }
        guard online > 0, let first = rollout.first else { return text + "." }
        let size = max(1, rollout.map(\.executions.count).reduce(0, +) / rollout.count)
        let wavesLeft = (online + size - 1) / size
        // The pace: the time between waves so far, or how long the only wave has taken.
        let interval: TimeInterval
        if rollout.count >= 2, let last = rollout.last {
            interval = last.deployment.createdAt.timeIntervalSince(first.deployment.createdAt) / Double(rollout.count - 1)
        } else {
            let ended = first.executions.filter(\.state.isFinal).map(\.updatedAt).max()
            interval = (ended ?? now).timeIntervalSince(first.deployment.createdAt)
        }
        let seconds = Int((interval * Double(wavesLeft)).rounded())
        let duration = seconds < 90 ? "\(max(1, seconds)) s" : seconds < 5_400 ? "\((seconds + 30) / 60) min" : "\((seconds + 1_800) / 3_600) h"
        return text + ": about \(wavesLeft) more wave\(wavesLeft == 1 ? "" : "s") of \(size), about \(duration) at this rollout's pace so far."
    }

    static func rolloutMain(session: ConsoleSession, app: String, group: String, target: FleetStatusReport.Target?,
                            waves: [Wave], now: Date = Date()) -> HTML {
        let forecast = target.flatMap { Self.forecast(target: $0, waves: waves, now: now) }
        let title: HTML = "<h1>Rollout of \(app) to \(group)</h1>"
        let summary: HTML = target.map { target in
            """
            <div class="panel"><p>Desired <code>\(target.version)</code> · \(badge(target.state))\
            \(target.reason.map { " <span class=\"muted\">\($0)</span>" as HTML })</p>\(convergence(target))</div>
            """
        } ?? "<div class=\"panel\">The commit in force has no target \(group) of app \(app).</div>"
        let running = waves.filter { !$0.deployment.aborted && $0.deployment.purpose == .rollout
            && $0.executions.contains { !$0.state.isFinal } }
        let abort: HTML = running.isEmpty ? "" : action(session, "/rollouts/\(URLText.component(app))/\(URLText.component(group))/abort",
                                                        "Abort this rollout", danger: true)
        let approval: HTML = target.map { target in
            target.state == "waiting" && (target.reason ?? "").contains("approval")
                ? action(session, "/rollouts/\(URLText.component(app))/\(URLText.component(group))/approve", "Approve \(target.version)")
                : ""
        } ?? ""
        let forecastHTML: HTML = forecast.map { "<h2>What is left</h2><p id=\"forecast\">\($0)</p>" } ?? ""
        var number = 0
        let waveSections = waves.map { wave -> HTML in
            let deployment = wave.deployment
            let kind: String
            switch deployment.purpose {
            case .rollout:
                number += 1
                kind = "Wave \(number)"
            case .heal: kind = "Heal"
            case .rollback: kind = "Rollback"
            case .manual: kind = "Manual deployment"
            }
            let counts = Dictionary(grouping: wave.executions, by: \.state).mapValues(\.count)
            let countText = ExecutionState.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
            let rows = wave.executions.sorted { $0.deviceID < $1.deviceID }.prefix(200).map { execution -> HTML in
                let failing = execution.results.last { $0.status == .failed }
                let failure: HTML = failing.map { step in
                    """
                    <div>step <strong>\(step.name)</strong>\(step.exitCode.map { " exited \($0)" } ?? "")\
                    \(step.outputTail.map { "<pre>\($0)</pre>" as HTML })</div>
                    """
                } ?? ""
                return """
                <tr><td><a href="/devices/\(URLText.component(execution.deviceID))">\(execution.deviceID)</a></td>
                <td>\(badge(execution.state.rawValue))</td><td>\(execution.message ?? "")\(failure)</td></tr>
                """
            }
            let more: HTML = wave.executions.count > 200 ? "<p class=\"muted\">… and \(wave.executions.count - 200) more devices</p>" : ""
            return """
            <section><h2>\(kind): \(deployment.version) \(deployment.aborted ? badge("aborted") : "")</h2>
            <p class="muted">\(deployment.createdAt.ISO8601Format()) · \(wave.executions.count) devices: \(countText)</p>
            <div class="table-wrap"><table><thead><tr><th scope="col">Device</th><th scope="col">State</th><th scope="col">What happened</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>\(more)</section>
            """
        }
        let none: HTML = waves.isEmpty ? "<p class=\"muted\">No deployment of this target yet.</p>" : ""
        return "\(title)\(summary)<p>\(abort) \(approval)</p>\(forecastHTML)\(waveSections)\(none)"
    }

    // MARK: Devices

    struct DeviceQuery: Equatable {
        var selector = ""
        var group = ""
        var app = ""
        var version = ""
        /// "", "true" or "false".
        var online = ""
        var page = 1

        func link(page: Int) -> String {
            "/devices" + URLText.query([("selector", selector.isEmpty ? nil : selector), ("group", group.isEmpty ? nil : group),
                                        ("app", app.isEmpty ? nil : app),
                                        ("version", version.isEmpty ? nil : version), ("online", online.isEmpty ? nil : online),
                                        ("page", page == 1 ? nil : String(page))])
        }
    }

    /// A selector that does not parse: where, and why.
    struct SelectorProblem: Equatable {
        var column: Int
        var reason: String
    }

    static let pageSize = 50

    /// When the device list a page counts was read (it is shared for a few seconds).
    static func listedAt(_ date: Date) -> HTML {
        " <span class=\"muted\">as of \(date.formatted(.iso8601.time(includingFractionalSeconds: false)))</span>"
    }

    static func devicesMain(query: DeviceQuery, problem: SelectorProblem?, devices: ArraySlice<OperatorDeviceView>, total: Int,
                            apps: [String], groups: [String] = [], groupProblem: String? = nil, asOf: Date? = nil) -> HTML {
        let groupError: HTML = groupProblem.map { "<div class=\"error\" role=\"alert\" id=\"group-error\">\($0)</div>" } ?? ""
        let groupOptions = ([""] + groups).map { group -> HTML in
            "<option value=\"\(group)\"\(group == query.group ? HTML(" selected") : "")>\(group.isEmpty ? "any group" : group)</option>"
        }
        let error: HTML = problem.map { problem in
            let marker = String(repeating: " ", count: max(0, problem.column - 1)) + "^"
            return """
            <div class="error" role="alert" id="selector-error">Invalid selector at column \(problem.column): \(problem.reason)
            <pre>\(query.selector)\n\(marker)</pre></div>
            """
        } ?? ""
        let appOptions = ([""] + apps).map { app -> HTML in
            "<option value=\"\(app)\"\(app == query.app ? HTML(" selected") : "")>\(app.isEmpty ? "any app" : app)</option>"
        }
        let onlineOptions = [("", "online or not"), ("true", "online"), ("false", "offline")].map { value, label -> HTML in
            "<option value=\"\(value)\"\(value == query.online ? HTML(" selected") : "")>\(label)</option>"
        }
        let rows = devices.map { device -> HTML in
            let tags = device.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let apps = device.apps.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.version)" }.joined(separator: ", ")
            return """
            <tr><td><a href="/devices/\(URLText.component(device.id))">\(device.id)</a>\
            \(device.name != device.id && !device.name.isEmpty ? HTML("<div class=\"muted\">\(device.name)</div>") : "")</td>
            <td>\(badge(device.online ? "online" : "offline"))</td><td class="mono">\(tags)</td><td>\(apps)</td>
            <td>\(device.lastHeartbeatAt.map { $0.ISO8601Format() } ?? "never")</td></tr>
            """
        }
        let pages = max(1, (total + pageSize - 1) / pageSize)
        let pager: HTML = """
        <nav class="pager" aria-label="Pages">\
        \(query.page > 1 ? HTML("<a href=\"\(query.link(page: query.page - 1))\" rel=\"prev\">Previous</a>") : "")
        <span>page \(query.page) of \(pages) · \(total) devices\(asOf.map(listedAt))</span>\
        \(query.page < pages ? HTML("<a href=\"\(query.link(page: query.page + 1))\" rel=\"next\">Next</a>") : "")</nav>
        """
        return """
        <h1>Devices</h1>
        <form class="search" method="get" action="/devices" role="search">
        <label for="selector">Selector <input type="text" id="selector" name="selector" value="\(query.selector)"
          placeholder="site=berlin,tier in (canary)" aria-describedby="selector-help"\(problem != nil ? HTML(" aria-invalid=\"true\"") : "")></label>
        <label for="group">Group <select id="group" name="group">\(groupOptions)</select></label>
        <label for="app">App <select id="app" name="app">\(appOptions)</select></label>
        <label for="version">Version <input type="text" id="version" name="version" value="\(query.version)" size="10"></label>
        <label for="online">Online <select id="online" name="online">\(onlineOptions)</select></label>
        <button type="submit">Search</button>
        </form>
        <p class="muted" id="selector-help">Label selectors as in groups: <code>key=value</code>, <code>key!=value</code>,
        <code>key in (a,b)</code>, <code>key notin (a)</code>, <code>key</code>, <code>!key</code>, joined by commas; over each
        device's tags as groups see them (what git declares wins over what the device reports).</p>
        \(error)\(groupError)
        \(pager)
        <div class="table-wrap"><table>
        <thead><tr><th scope="col">Device</th><th scope="col">Online</th><th scope="col">Tags (as groups see them)</th><th scope="col">Apps</th><th scope="col">Last heartbeat</th></tr></thead>
        <tbody>\(rows)</tbody></table></div>
        """
    }

    // MARK: Device

    struct DeviceExecution {
        var deployment: DeploymentRecord
        var execution: ExecutionRecord
    }

    /// How far back a device's charts reach.
    enum ChartRange: String, CaseIterable {
        case hour = "1h", day = "24h", week = "7d"

        var seconds: TimeInterval { self == .hour ? 3_600 : self == .day ? 86_400 : 7 * 86_400 }
        /// One point a minute for the hour, a quarter-hour for the day, an hour for the week.
        var points: Int { self == .hour ? 60 : self == .day ? 96 : 168 }
    }

    static func deviceMain(device: OperatorDeviceView, latest: Heartbeat?, executions: [DeviceExecution], metrics: DeviceMetrics,
                           range: ChartRange = .hour, declared: [String: String] = [:], groups: [String] = [],
                           chartNote: String? = nil) -> HTML {
        let ranges = ChartRange.allCases.map { option -> HTML in
            option == range ? "<strong aria-current=\"true\">\(option.rawValue)</strong>"
                : "<a href=\"/devices/\(URLText.component(device.id))?range=\(option.rawValue)\">\(option.rawValue)</a>"
        }
        let keys = Set(device.tags.keys).union(declared.keys).sorted()
        let tags = keys.map { key -> HTML in
            let reported = device.tags[key], fromGit = declared[key]
            let source: String
            switch (fromGit, reported) {
            case (.some, .none): source = "declared in git"
            case (.some(let git), .some(let own)) where git != own: source = "declared in git; wins over the reported \(own)"
            case (.some, .some): source = "declared in git and reported"
            default: source = "reported"
            }
            return "<tr><th scope=\"row\">\(key)</th><td>\(fromGit ?? reported ?? "")</td><td class=\"muted\">\(source)</td></tr>"
        }
        let memberships: HTML = groups.isEmpty ? "<p class=\"muted\">In no group of the commit in force.</p>"
            : "<p>Groups: \(groups.map { "<a href=\"/devices?group=\(URLText.component($0))\">\($0)</a> " as HTML })</p>"
        let apps = device.apps.sorted { $0.key < $1.key }.map { name, app -> HTML in
            "<tr><td>\(name)</td><td class=\"mono\">\(app.version)</td><td>\(app.probe.map { $0.summary } ?? "")</td></tr>"
        }
        let processes = (latest?.processes ?? []).map { process -> HTML in
            "<tr><td>\(process.name)</td><td>\(badge(process.running ? "running" : "down"))</td></tr>"
        }
        let custom = (latest?.custom ?? [:]).sorted { $0.key < $1.key }.map { key, value -> HTML in
            "<tr><th scope=\"row\">\(key)</th><td>\(value)</td></tr>"
        }
        let runs = executions.map { item -> HTML in
            let steps = item.execution.results.map { step -> HTML in
                // Counted from one; a number no report may carry now (one stored before reports
                // were checked) is shown as it is rather than counted on.
                let number = (0..<StepResult.maximumCount).contains(step.index) ? String(step.index + 1) : "#\(step.index)"
                return """
                <li>\(step.rollback ? "rollback " : "")step \(number) <strong>\(step.name)</strong>: \(badge(step.status.rawValue))\
                \(step.exitCode.map { " exit \($0)" } ?? "")\(step.attempts > 1 ? " after \(step.attempts) attempts" : "")\
                \(step.outputTail.map { "<pre>\($0)</pre>" as HTML })</li>
                """
            }
            return """
            <details\(item.execution.state.isFinal ? "" : HTML(" open"))><summary>\(item.deployment.app) \(item.deployment.version) \
            (\(item.deployment.purpose.description)) \(badge(item.execution.state.rawValue)) \
            <span class="muted">\(item.execution.updatedAt.ISO8601Format())</span></summary>
            \(item.execution.message.map { "<p>\($0)</p>" as HTML })<ol>\(steps)</ol></details>
            """
        }
        func table(_ rows: [HTML], empty: String, head: HTML = "") -> HTML {
            rows.isEmpty ? "<p class=\"muted\">\(empty)</p>" : "<div class=\"table-wrap\"><table>\(head)<tbody>\(rows)</tbody></table></div>"
        }
        return """
        <h1>Device \(device.id)</h1>
        <div class="panel"><p>\(badge(device.online ? "online" : "offline")) · last heartbeat \
        \(device.lastHeartbeatAt.map { $0.ISO8601Format() } ?? "never") · enrolled \(device.enrolledAt.ISO8601Format()) · \
        hardware <code>\(device.hardwareID)</code>\(latest?.agentVersion.map { " · agent \($0)" as HTML })</p></div>
        <h2>Resource use</h2>
        <p>Last: \(ranges.map { "\($0) " as HTML })</p>
        \(chartNote.map { "<p class=\"note\">Not charted: \($0)</p>" as HTML })
        <div class="charts">
        \(SVGChart.render(title: "CPU", unit: "%", points: metrics.points.map { ($0.at, $0.cpu?.mean) }, since: metrics.since, until: metrics.until))
        \(SVGChart.render(title: "Memory", unit: "%", points: metrics.points.map { ($0.at, $0.memory?.mean) }, since: metrics.since, until: metrics.until))
        \(SVGChart.render(title: "Fullest disk", unit: "%", points: metrics.points.map { ($0.at, $0.disk?.mean) }, since: metrics.since, until: metrics.until))
        </div>
        <h2>Tags</h2>
        \(memberships)
        \(table(tags, empty: "No tags.", head: "<thead><tr><th scope=\"col\">Tag</th><th scope=\"col\">Value</th><th scope=\"col\">From</th></tr></thead>"))
        <h2>Apps</h2>
        \(table(apps, empty: "No app installed by Flotilla.", head: "<thead><tr><th scope=\"col\">App</th><th scope=\"col\">Version</th><th scope=\"col\">Probe</th></tr></thead>"))
        <h2>Monitored processes</h2>
        \(table(processes, empty: "None reported."))
        <h2>Custom data</h2>
        \(table(custom, empty: "None reported."))
        <h2>Recent executions</h2>
        \(runs.isEmpty ? HTML("<p class=\"muted\">None.</p>") : runs.joined())
        """
    }

    // MARK: Commits

    /// The commit's id, linked to its page on the forge when the fleet names one (http or https only).
    static func commitLink(_ report: FleetStatusReport, short: Bool = true) -> HTML {
        let id: HTML = "<code>\(short ? String(report.commit.prefix(12)) : report.commit)</code>"
        guard let url = report.commitURL, url.hasPrefix("https://") || url.hasPrefix("http://") else { return id }
        return "<a href=\"\(url)\" rel=\"noopener noreferrer\">\(id)</a>"
    }

    /// The commit in force and what the devices run: per app, each version with how many devices
    /// run it, and which targets of the commit in force want it.
    static func commitsMain(report: FleetStatusReport?, running: [String: [String: Int]], devices: Int) -> HTML {
        guard let report else {
            return "<h1>Commits</h1><div class=\"panel\">No commit is in force yet for this project on this server.</div>"
        }
        let head: HTML = report.head == report.commit || report.head.isEmpty ? "" : """
        <h2>The head, refused</h2>
        <div class="error" role="alert"><p><code>\(report.head)</code> is not in force:</p><pre>\(report.headErrors.joined(separator: "\n"))</pre></div>
        """
        let apps = report.apps.map { app -> HTML in
            var wanted: [String: [String]] = [:]
            for target in app.targets { wanted[target.version, default: []].append(target.group) }
            let versions = Set(running[app.name]?.keys.map { $0 } ?? []).union(wanted.keys)
                .sorted { (running[app.name]?[$0] ?? 0, $0) > (running[app.name]?[$1] ?? 0, $1) }
            let rows = versions.map { version -> HTML in
                let count = running[app.name]?[version] ?? 0
                let groups = wanted[version]
                return """
                <tr><td class="mono">\(version)</td><td>\(count)</td>\
                <td>\(groups.map { "desired for " + $0.joined(separator: ", ") } ?? "not desired by the commit in force")</td></tr>
                """
            }
            let none = devices - (running[app.name]?.values.reduce(0, +) ?? 0)
            return """
            <h2>\(app.name)</h2>
            <div class="table-wrap"><table><thead><tr><th scope="col">Version</th><th scope="col">Devices running it</th>\
            <th scope="col">In the commit in force</th></tr></thead><tbody>\(rows)</tbody></table></div>
            <p class="muted">\(none) of \(devices) devices do not run \(app.name).</p>
            """
        }
        return """
        <h1>Commits</h1>
        <div class="panel"><p>In force: \(commitLink(report, short: false))</p>
        \(report.commitSubject.map { "<p><strong>\($0)</strong>\(report.commitAuthor.map { " by \($0)" } ?? "")</p>" as HTML })
        <p class="muted">The controller's note on it (<code>git log --notes=flotilla</code>) and STATUS.md on the
        <code>flotilla/status</code> branch say what this console shows.</p></div>
        \(head)\(apps)
        """
    }

    // MARK: Audit

    /// Whose entries the audit log shows.
    enum AuditFilter: String, CaseIterable {
        case all = "", operators, devices

        var label: String { self == .all ? "everyone" : rawValue }

        func admits(_ entry: AuditRecord) -> Bool {
            switch self {
            case .all: true
            case .operators: entry.actor.hasPrefix("operator:")
            case .devices: !entry.actor.hasPrefix("operator:")
            }
        }
    }

    static let auditPageSize = 100

    static func auditMain(entries: [AuditRecord], filter: AuditFilter = .all, page: Int = 1, total: Int? = nil) -> HTML {
        let total = total ?? entries.count
        let pages = max(1, (total + auditPageSize - 1) / auditPageSize)
        func link(_ filter: AuditFilter, page: Int) -> String {
            "/audit" + URLText.query([("who", filter == .all ? nil : filter.rawValue), ("page", page == 1 ? nil : String(page))])
        }
        let filters = AuditFilter.allCases.map { option -> HTML in
            option == filter ? "<strong aria-current=\"true\">\(option.label)</strong> "
                : "<a href=\"\(link(option, page: 1))\">\(option.label)</a> "
        }
        let pager: HTML = """
        <nav class="pager" aria-label="Pages">\
        \(page > 1 ? HTML("<a href=\"\(link(filter, page: page - 1))\" rel=\"prev\">Newer</a>") : "")
        <span>page \(page) of \(pages) · \(total) entries</span>\
        \(page < pages ? HTML("<a href=\"\(link(filter, page: page + 1))\" rel=\"next\">Older</a>") : "")</nav>
        """
        let rows = entries.map { entry -> HTML in
            """
            <tr><td>\(entry.at.ISO8601Format())</td><td class="mono">\(entry.actor)</td><td>\(entry.action)</td>
            <td class="mono">\(entry.subject)</td><td>\(entry.detail)</td></tr>
            """
        }
        return """
        <h1>Audit log</h1>
        <p>Who: \(filters)</p>
        \(pager)
        <div class="table-wrap"><table>
        <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Subject</th><th scope="col">Detail</th></tr></thead>
        <tbody>\(rows)</tbody></table></div>
        """
    }
}
