import FleetProtocol
public import FleetCore
import Foundation

// What the controller writes where people look, rendered from the report the decision made: the
// note on each reconciled commit, STATUS.md and status.json on the status branch.

extension FleetStatusReport {
    /// The note's text, each app under its commit-status context.
    public func note(prefix: String) -> String {
        var text = ""
        for app in apps {
            text += "\(prefix)/\(app.name): \(Self.state(of: app))\n"
            if let error = app.error { text += "  not reconciled: \(DisplayText.safe(error, limit: 400))\n" }
            for target in app.targets {
                text += "  \(target.group) → \(target.version): \(target.converged)/\(target.devices) converged"
                    + ", \(target.updating) updating, \(target.failed) failed, \(target.offline) offline (\(target.label))\n"
                for device in target.unhealthy { text += "    unhealthy \(device.device): \(DisplayText.safe(device.reason, limit: 400))\n" }
            }
            text += app.driftLines(indent: "  ")
        }
        if !locked.isEmpty {
            text += "locked (refusing updates): " + locked.map { "\($0.device) (\(DisplayText.safe($0.reason)))" }.joined(separator: ", ") + "\n"
        }
        return text
    }

    /// STATUS.md.
    public var markdown: String {
        var text = "# Fleet status\n\nReconciled commit `\(commit)`"
        text += head == commit ? ".\n" : "; the branch head `\(head)` does not validate:\n\n" + headErrors.map { "- " + Self.code($0) }.joined(separator: "\n") + "\n"
        for app in apps {
            text += "\n## \(app.name): \(Self.state(of: app))\n\n"
            if let error = app.error { text += "Not reconciled: \(Self.code(error))\n\n" }
            text += "| group | version | converged | updating | failed | offline | state |\n|---|---|---|---|---|---|---|\n"
            for target in app.targets {
                text += "| \(target.group) | \(target.version) | \(target.converged)/\(target.devices) | \(target.updating) | \(target.failed) | \(target.offline) | \(target.label) |\n"
            }
            let unhealthy = app.targets.flatMap { target in target.unhealthy.map { (target.group, $0) } }
            if !unhealthy.isEmpty {
                text += "\nFailed their health checks after the update (counted as failed):\n\n"
                    + unhealthy.map { "- `\($0.1.device)` (\($0.0)): \(Self.code($0.1.reason))" }.joined(separator: "\n") + "\n"
            }
            if !app.drift.isEmpty {
                text += "\nDrifted (running another version than it was given, with nothing in flight):\n\n"
                    + app.drift.map { "- `\($0.device)`: \(Self.code($0.reason))" }.joined(separator: "\n") + "\n"
            } else if !app.drifted.isEmpty {
                text += "\nDrifted (reporting another version with nothing in flight): " + app.drifted.map { "`\($0)`" }.joined(separator: ", ") + "\n"
            }
            if app.probeFailed > 0 {
                text += "\nProbes that could not tell what runs (taken at the version the agent installed, never as drift):\n\n"
                    + app.probeFailures.map { "- `\($0.device)`: \(Self.code($0.reason))" }.joined(separator: "\n") + "\n"
                if app.probeFailed > app.probeFailures.count { text += "- … and \(app.probeFailed - app.probeFailures.count) more\n" }
            }
        }
        if let alerts, !alerts.isEmpty {
            text += "\n## Alerts firing\n\n| rule | device | severity | since | observed |\n|---|---|---|---|---|\n"
                + alerts.map { "| \(Self.cell($0.rule)) | `\($0.device)` | \($0.severity) | \($0.firingAt) | \(Self.code($0.observed)) |" }
                    .joined(separator: "\n") + "\n"
            if let total = alertsFiring, total > alerts.count { text += "\n… and \(total - alerts.count) more firing (`flotilla status`, `GET /api/v1/alerts`).\n" }
        }
        if !locked.isEmpty {
            text += "\n## Locked devices\n\nThey refuse updates now and are skipped, never failed:\n\n"
                + locked.map { "- `\($0.device)`: \(Self.code($0.reason))" }.joined(separator: "\n") + "\n"
        }
        return text
    }
}

extension FleetStatusReport {
    /// Text a device wrote, as a Markdown code span: its `<!--`, links and emphasis show as they
    /// are instead of hiding or rewriting the rest of STATUS.md on the forge, and its control
    /// characters are written out (`DisplayText.safe`) for whoever reads the file in a terminal.
    static func code(_ text: String) -> String { DisplayText.codeSpan(text) }

    /// A name in a table cell: a '|' would end the cell.
    static func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
}

extension FleetStatusReport {
    /// The note on a head that is not rolled out: why, what stays in force, and its first errors.
    public static func invalidNote(commit: String, errors: [String], total: Int, lastGood: String?, why: String = "does not validate") -> String {
        var text = "flotilla: failure — this commit \(why); nothing was deployed.\n"
        text += lastGood.map { "The desired state stays at \($0).\n" } ?? "No earlier commit validated.\n"
        text += "\n" + errors.joined(separator: "\n") + "\n"
        if total > errors.count { text += "… and \(total - errors.count) more\n" }
        return text
    }
}

extension FleetStatusReport {
    /// status.json: the report with sorted keys.
    public var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}
