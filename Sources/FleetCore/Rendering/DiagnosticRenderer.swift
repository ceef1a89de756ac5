/// Validation results for tools.
public enum DiagnosticRenderer {
    /// `{"valid": …, "errors": [{"path", "line", "column", "message"}]}`.
    public static func json(_ diagnostics: [Diagnostic]) -> JSONValue {
        .object([
            ("valid", .bool(diagnostics.isEmpty)),
            ("errors", .array(diagnostics.map { diagnostic in
                .object([
                    ("path", .string(diagnostic.location.path)),
                    ("line", .int(diagnostic.location.line)),
                    ("column", .int(diagnostic.location.column)),
                    ("message", .string(diagnostic.message)),
                ])
            })),
        ])
    }
}
