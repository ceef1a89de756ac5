import FleetProtocol
/// One problem found in the fleet repository, with where it is and why it is wrong.
///
/// Printed like a compiler's message, so editors and CI logs link straight to it:
/// `apps/thermostat.yaml:12:14: error: unknown group 'canry'; did you mean 'canary'?`
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    /// Where the problem is.
    public var location: SourceLocation
    /// What is wrong, in a sentence that does not repeat the location.
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// Names in a repository are anyone's to choose: control characters are escaped and a
    /// hostile length is cut, so a message never rewrites the terminal or floods a CI log.
    public var description: String { "\(location): error: \(DisplayText.safe(message, limit: 600))" }
}

/// The fleet repository did not load or validate; every problem found is listed, in file order.
public struct FleetValidationError: Error, Sendable, CustomStringConvertible {
    /// All problems, sorted by file, line and column.
    public var diagnostics: [Diagnostic]

    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics.sorted { $0.location < $1.location }
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// Collects problems while a repository is loaded, so one pass reports all of them.
///
/// Bounded, as what it reads is anyone's to write: at most `maximumKept` problems are kept, and
/// one more, where the first left out was found, says there were more; each message is cut to
/// `maximumMessageLength`. A
/// message is made only when it is kept (`@autoclosure`): a file that makes the same error
/// quoting a long value a hundred thousand times costs a thousand messages, not the rest.
final class DiagnosticSink {
    static let maximumKept = 1_000
    static let maximumMessageLength = 2_000

    private(set) var diagnostics: [Diagnostic] = []
    /// Problems found past `maximumKept`, not kept.
    private(set) var dropped = 0

    var isEmpty: Bool { diagnostics.isEmpty }

    func error(_ location: SourceLocation, _ message: @autoclosure () -> String) {
        guard diagnostics.count < Self.maximumKept else {
            if dropped == 0 {
                diagnostics.append(Diagnostic(location, "more problems were found than the \(Self.maximumKept) listed; fix these and validate again"))
            }
            dropped += 1
            return
        }
        diagnostics.append(Diagnostic(location, Self.cut(message())))
    }

    static func cut(_ message: String) -> String {
        guard message.utf8.count > maximumMessageLength else { return message }
        return String(message.unicodeScalars.prefix(maximumMessageLength)) + "…"
    }
}
