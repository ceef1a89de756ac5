import Foundation

/// A line chart of a percentage over time, drawn by the server as SVG: no chart library, no
/// script, and readable as text (its title and last value are words in the figure).
enum SVGChart {
    static let width = 480.0, height = 160.0
    static let left = 34.0, right = 8.0, top = 8.0, bottom = 22.0

    /// `points` in time order; a nil value is a gap in the line. Values are 0–100.
    static func render(title: String, unit: String, points: [(Date, Double?)], since: Date, until: Date) -> HTML {
        let span = max(1, until.timeIntervalSince(since))
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ date: Date) -> Double { left + plotWidth * min(1, max(0, date.timeIntervalSince(since) / span)) }
        func y(_ value: Double) -> Double { top + plotHeight * (1 - min(100, max(0, value)) / 100) }
        var paths: [String] = [], current = ""
        for (date, value) in points {
            guard let value else {
                if !current.isEmpty { paths.append(current); current = "" }
                continue
            }
            current += (current.isEmpty ? "M" : " L") + String(format: "%.1f %.1f", x(date), y(value))
        }
        if !current.isEmpty { paths.append(current) }
        let values = points.compactMap(\.1)
        let last = values.last.map { String(format: "%.1f", $0) + unit } ?? "no data"
        let peak = values.max().map { String(format: "%.1f", $0) + unit }
        let grid = [0.0, 50, 100].map { value -> HTML in
            let line = String(format: "%.1f", y(value))
            return """
            <line x1="\(String(format: "%.1f", left))" x2="\(String(format: "%.1f", width - right))" y1="\(line)" y2="\(line)" stroke="#d6dbe0"/>\
            <text x="\(String(format: "%.1f", left - 4))" y="\(line)" font-size="10" text-anchor="end" dominant-baseline="middle" fill="#5b6570">\(Int(value))</text>
            """
        }
        let formatter = DateFormatter()
        formatter.dateFormat = span > 2 * 86_400 ? "MMM d" : "HH:mm"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let ticks = [(since, "start"), (since.addingTimeInterval(span / 2), "middle"), (until, "end")].map { date, anchor -> HTML in
            "<text x=\"\(String(format: "%.1f", x(date)))\" y=\"\(String(format: "%.1f", height - 6))\" font-size=\"10\" text-anchor=\"\(anchor)\" fill=\"#5b6570\">\(formatter.string(from: date))</text>"
        }
        // A lone point (a segment of one) is a dot: a line needs two.
        let lines = paths.map { path -> HTML in
            path.contains("L") ? "<path d=\"\(path)\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\"/>"
                : "<path d=\"\(path) h0.1\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"4\" stroke-linecap=\"round\"/>"
        }
        let description = "\(title): last \(last)" + (peak.map { ", highest \($0)" } ?? "") + ", \(values.count) point\(values.count == 1 ? "" : "s")"
        return """
        <figure class="chart"><figcaption><strong>\(title)</strong> <span class="muted">last \(last)\(peak.map { ", highest \($0)" } ?? "")</span></figcaption>
        <svg viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(description)" xmlns="http://www.w3.org/2000/svg">\
        \(grid)\(ticks)\(lines)</svg></figure>
        """
    }
}
