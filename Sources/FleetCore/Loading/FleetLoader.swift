import FleetProtocol
/// Loads and validates a fleet repository from its files.
///
/// ```swift
/// let fleet = try FleetLoader.load(tree)   // throws FleetValidationError with every problem
/// ```
public enum FleetLoader {
    /// The only `apiVersion` this release reads; documents may leave it out.
    public static let apiVersion = "flotilla.dev/v1"

    /// Loads every fleet file in `tree`, checks it, and compiles the desired state.
    ///
    /// - Throws: `FleetValidationError` listing all problems found, in file order.
    public static func load(_ tree: FleetTree) throws(FleetValidationError) -> CompiledFleet {
        let sink = DiagnosticSink()
        let documents = readDocuments(tree, sink: sink)
        // Over the tree's limits nothing was read: compiling nothing would only add to the one error.
        if tree.overflow != nil { throw FleetValidationError(diagnostics: sink.diagnostics) }
        let compiled = FleetCompiler(documents: documents, sink: sink).compile()
        guard sink.isEmpty, let compiled else {
            throw FleetValidationError(diagnostics: sink.diagnostics)
        }
        return compiled
    }

    /// Every document of every fleet file, decoded into the model; problems go to `sink`.
    static func readDocuments(_ tree: FleetTree, sink: DiagnosticSink) -> LoadedDocuments {
        var loaded = LoadedDocuments()
        if let overflow = tree.overflow {
            // Part of a repository would compile to another desired state than the whole: none of it is read.
            sink.error(SourceLocation(path: overflow.path), "\(overflow.reason); reading stopped here and nothing was loaded "
                       + "(at most \(FleetTree.maximumFiles) files and \(FleetTree.maximumTotalBytes >> 20) MiB under fleet.yaml, "
                       + "\(FleetTree.folders.map { $0.folder + "/" }.joined(separator: ", ")))")
            loaded.incomplete = Set(DocumentKind.allCases)
            return loaded
        }
        let decoder = DocumentDecoder(sink: sink)
        for path in tree.entries.keys.sorted() {
            guard let expected = FleetTree.expectedKind(for: path), let content = tree.entries[path] else { continue }
            let fileLocation = SourceLocation(path: path)
            let problemsBefore = sink.diagnostics.count
            defer { if sink.diagnostics.count > problemsBefore { loaded.incomplete.insert(expected) } }
            let bytes: [UInt8]
            switch content {
            case .file(let data):
                bytes = data
            case .symlink(let target):
                sink.error(fileLocation, "is a symbolic link (to '\(target)'); links are not followed, commit the file itself")
                continue
            case .tooLarge(let size):
                sink.error(fileLocation, "is \(formatSize(size)), over the \(formatSize(FleetTree.maximumFileSize)) limit for a fleet file")
                continue
            case .submodule(let commit):
                sink.error(fileLocation, "is a submodule (commit \(DisplayText.safe(commit, limit: 40))); submodules are not followed, commit the file itself")
                continue
            }
            switch YAMLReader.documents(in: bytes, path: path) {
            case .failure(let problem):
                sink.error(problem.location, problem.message)
            case .success(let documents):
                if expected == .fleet { loaded.fleetFiles.append(path) }
                for document in documents where !document.isNull {
                    decoder.decode(document, expected: expected, into: &loaded)
                }
            }
        }
        BuiltInFlows.add(to: &loaded, decoder: decoder)
        return loaded
    }

    static func formatSize(_ bytes: Int) -> String {
        if bytes >= 1 << 20 {
            let tenths = (bytes * 10 + (1 << 19)) >> 20
            return "\(tenths / 10).\(tenths % 10) MiB"
        }
        return "\(bytes) bytes"
    }
}

/// What the documents of a repository declared, before cross-checking.
struct LoadedDocuments {
    var fleetFiles: [String] = []
    var fleets: [Fleet] = []
    var groups: [Group] = []
    var devices: [DeviceDeclaration] = []
    var flows: [UpdateFlow] = []
    var apps: [App] = []
    /// Each app's rollout settings as written, in the order of `apps`, merged with fleet.yaml's later.
    var appRollouts: [RolloutOverrides] = []
    var alertRules: [DeclaredAlertRule] = []
    /// Kinds with a file or document that failed to load: references to them are not
    /// reported as dangling, since the missing name may be in what failed.
    var incomplete: Set<DocumentKind> = []
}
