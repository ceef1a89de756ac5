import FleetProtocol
extension DocumentDecoder {
    static let groupKeys = ["name", "description", "selector", "devices"]
    static let devicesKeys = ["devices"]
    static let deviceKeys = ["tags", "description"]

    func decodeGroup(_ node: YAMLNode) -> Group? {
        guard let fields = fields(node, kind: .group, known: Self.groupKeys) else { return nil }
        let name = name(fields, kind: .group)
        var selector: LabelSelector?
        if let selectorNode = fields["selector"], let text = Scalars.string(selectorNode, "selector", sink) {
            do throws(LabelSelector.ParseError) {
                // An empty selector matches every device: that must never happen by leaving a value out.
                guard !text.value.allSatisfy(\.isWhitespace) else {
                    throw LabelSelector.ParseError(offset: 0, reason: "an empty selector would select every device; "
                                                   + "write its requirements, or list 'devices'")
                }
                selector = try LabelSelector(parsing: text.value)
            } catch {
                let location = text.location.advanced(byColumns: selectorNode.contentColumnOffset + error.offset)
                sink.error(location, "invalid selector: \(error.reason)")
            }
        }
        // Checked here as devices/ checks its ids: a long or odd id is refused at once, before
        // it is looked up among the declared devices.
        let devices = (fields.strings("devices") ?? []).filter { id in
            guard let problem = Self.deviceIDProblem(id.value) else { return true }
            sink.error(id.location, "invalid device id '\(DisplayText.safe(id.value, limit: 80))': \(problem)")
            return false
        }
        if fields["selector"] == nil, fields["devices"] == nil, !fields.hasUnknownKeys {
            sink.error(node.location, "Group '\(name?.value ?? "")' selects no devices; give it a 'selector', 'devices', or both")
        }
        guard let name else { return nil }
        return Group(name: name.value, selector: selector, deviceIDs: devices, location: node.location)
    }

    func decodeDevices(_ node: YAMLNode) -> [DeviceDeclaration] {
        guard let fields = fields(node, kind: .devices, known: Self.devicesKeys),
              let entries = fields.required("devices").flatMap({ Scalars.mapping($0, "devices", sink) })
        else { return [] }
        return entries.compactMap { id, value in
            if let problem = Self.deviceIDProblem(id.value) {
                sink.error(id.location, "invalid device id '\(DisplayText.safe(id.value, limit: 80))': \(problem)")
                return nil
            }
            var tags: [String: String] = [:]
            let device = value.isNull ? nil : Fields(value, owner: "device '\(id.value)'", known: Self.deviceKeys, sink: sink)
            _ = device?.string("description")
            if let pairs = device?.mapping("tags") {
                for (key, valueNode) in pairs {
                    if let problem = TagSyntax.keyProblem(key.value) {
                        sink.error(key.location, problem)
                        continue
                    }
                    guard let text = Scalars.scalar(valueNode, key.value, sink) else { continue }
                    if let problem = TagSyntax.valueProblem(text.value) {
                        sink.error(text.location, problem)
                        continue
                    }
                    tags[key.value] = text.value
                }
            }
            return DeviceDeclaration(id: id.value, tags: tags, location: id.location)
        }
    }

    /// Device ids are the ids agents enroll with: 1–253 letters, digits, '.', '_', ':' and '-'.
    static func deviceIDProblem(_ id: String) -> String? {
        // Bytes first: counting the scalars of a long text is work of its own.
        let scalars = id.unicodeScalars
        guard !id.isEmpty, id.utf8.count <= 253 * 4, scalars.count <= 253 else { return "use 1 to 253 characters" }
        let allowed = scalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._:-".unicodeScalars.contains($0)
        }
        return allowed ? nil : "use only letters, digits, '.', '_', ':' and '-'"
    }
}
