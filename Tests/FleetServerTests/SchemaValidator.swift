import FleetProtocol
import Foundation

/// The part of JSON Schema (2020-12, as OpenAPI 3.1 uses it) the API document is written in,
/// enough to hold a response to its schema. A keyword it does not know is an error, not a pass:
/// a schema it cannot check must not look checked.
struct SchemaValidator {
    let document: WireJSON

    static let annotations: Set<String> = ["description", "title", "examples", "example", "default", "readOnly", "writeOnly", "deprecated"]

    /// Where `value` breaks `schema`, one line per fault, each with its JSON path.
    func violations(of value: WireJSON, against schema: WireJSON, at path: String = "$") -> [String] {
        guard let members = schema.members else { return ["\(path): the schema is not an object"] }
        var faults: [String] = []
        let keywords = Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        for (keyword, argument) in keywords.sorted(by: { $0.key < $1.key }) {
            switch keyword {
            case "$ref":
                guard case .string(let reference) = argument, let target = resolve(reference) else {
                    faults.append("\(path): cannot resolve \(argument)")
                    continue
                }
                faults += violations(of: value, against: target, at: path)
            case "type":
                let allowed: [String]
                switch argument {
                case .string(let one): allowed = [one]
                case .array(let many): allowed = many.compactMap { if case .string(let name) = $0 { name } else { nil } }
                default: allowed = []
                }
                if !allowed.contains(where: { Self.has(value, type: $0) }) {
                    faults.append("\(path): \(Self.describe(value)) is not \(allowed.joined(separator: " or "))")
                }
            case "properties":
                guard let fields = value.members, let properties = argument.members else { continue }
                for property in properties {
                    if let field = fields.first(where: { $0.key == property.key }) {
                        faults += violations(of: field.value, against: property.value, at: "\(path).\(property.key)")
                    }
                }
            case "required":
                guard let fields = value.members, case .array(let names) = argument else { continue }
                for case .string(let name) in names where !fields.contains(where: { $0.key == name }) {
                    faults.append("\(path): \(name) is required")
                }
            case "additionalProperties":
                guard let fields = value.members else { continue }
                let declared = Set(keywords["properties"]?.members?.map(\.key) ?? [])
                for field in fields where !declared.contains(field.key) {
                    switch argument {
                    case .bool(false): faults.append("\(path): \(field.key) is not in the schema")
                    case .object: faults += violations(of: field.value, against: argument, at: "\(path).\(field.key)")
                    default: break
                    }
                }
            case "items":
                guard case .array(let elements) = value else { continue }
                for (index, element) in elements.enumerated() {
                    faults += violations(of: element, against: argument, at: "\(path)[\(index)]")
                }
            case "enum":
                guard case .array(let options) = argument else { continue }
                if !options.contains(value) { faults.append("\(path): \(Self.describe(value)) is not one of \(options.map(Self.describe))") }
            case "const":
                if value != argument { faults.append("\(path): \(Self.describe(value)) is not \(Self.describe(argument))") }
            case "minLength", "maxLength":
                guard case .string(let text) = value, case .number(let bound, _) = argument else { continue }
                let count = Double(text.count)
                if keyword == "minLength" ? count < bound : count > bound { faults.append("\(path): length \(text.count) breaks \(keyword) \(Int(bound))") }
            case "minimum", "maximum":
                guard case .number(let number, _) = value, case .number(let bound, _) = argument else { continue }
                if keyword == "minimum" ? number < bound : number > bound { faults.append("\(path): \(number) breaks \(keyword) \(bound)") }
            case "minItems", "maxItems":
                guard case .array(let elements) = value, case .number(let bound, _) = argument else { continue }
                let count = Double(elements.count)
                if keyword == "minItems" ? count < bound : count > bound { faults.append("\(path): \(elements.count) items break \(keyword) \(Int(bound))") }
            case "pattern":
                guard case .string(let text) = value, case .string(let pattern) = argument else { continue }
                if text.range(of: pattern, options: .regularExpression) == nil { faults.append("\(path): \(text) does not match \(pattern)") }
            case "format":
                guard case .string(let text) = value, case .string(let format) = argument else { continue }
                if format == "date-time", !Self.isDateTime(text) { faults.append("\(path): \(text) is not an RFC 3339 date-time") }
            case "oneOf", "anyOf":
                guard case .array(let options) = argument else { continue }
                let passing = options.filter { violations(of: value, against: $0, at: path).isEmpty }.count
                if keyword == "oneOf" ? passing != 1 : passing == 0 { faults.append("\(path): \(passing) of the \(keyword) schemas match") }
            case "allOf":
                guard case .array(let options) = argument else { continue }
                for option in options { faults += violations(of: value, against: option, at: path) }
            default:
                if !Self.annotations.contains(keyword) { faults.append("\(path): the validator does not know \(keyword)") }
            }
        }
        return faults
    }

    /// A local reference: `#/components/schemas/Name`.
    func resolve(_ reference: String) -> WireJSON? {
        guard reference.hasPrefix("#/") else { return nil }
        var node = document
        for name in reference.dropFirst(2).split(separator: "/") {
            guard let next = node.members?.first(where: { $0.key == String(name) })?.value else { return nil }
            node = next
        }
        return node
    }

    static func has(_ value: WireJSON, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let number, _)): number.rounded() == number
        default: false
        }
    }

    static func describe(_ value: WireJSON) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "\(flag)"
        case .number(let number, let integer): integer.map(String.init) ?? "\(number)"
        case .string(let text): "\"\(text)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    static func isDateTime(_ text: String) -> Bool {
        text.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil
    }
}
