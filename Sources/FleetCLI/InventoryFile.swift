public import FleetCore
public import Foundation

/// The device inventory `flotilla plan --devices` reads: `{"devices": [...]}` or a bare list.
///
/// ```json
/// {"devices": [{"id": "thermo-001", "tags": {"site": "berlin"}, "online": true,
///               "apps": {"thermostat": "2.4.1", "edge-agent": {"version": "1.2.0", "digest": "…"}}}]}
/// ```
public enum InventoryFile {
    public static func read(_ path: String) throws(CLIError) -> DeviceInventory {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("\(path): cannot read the device inventory (no such file?)")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String) throws(CLIError) -> DeviceInventory {
        do {
            let decoder = JSONDecoder()
            let devices: [DeviceEntry]
            if let wrapped = try? decoder.decode(Wrapped.self, from: data) {
                devices = wrapped.devices
            } else if let list = try? decoder.decode([DeviceEntry].self, from: data) {
                devices = list
            } else {
                // Decode again only to say precisely what is wrong.
                devices = try decoder.decode(Wrapped.self, from: data).devices
            }
            return DeviceInventory(devices.map(\.reported))
        } catch let error as DecodingError {
            throw CLIError("\(path): \(describe(error))")
        } catch {
            throw CLIError("\(path): not a device inventory: \(error)")
        }
    }

    private struct Wrapped: Decodable {
        var devices: [DeviceEntry]
    }

    private struct DeviceEntry: Decodable {
        var reported: ReportedDevice

        enum CodingKeys: String, CodingKey { case id, tags, apps, online }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let apps = try container.decodeIfPresent([String: AppEntry].self, forKey: .apps) ?? [:]
            reported = ReportedDevice(
                id: try container.decode(String.self, forKey: .id),
                tags: try container.decodeIfPresent([String: String].self, forKey: .tags) ?? [:],
                apps: apps.mapValues(\.reported),
                online: try container.decodeIfPresent(Bool.self, forKey: .online) ?? true)
        }
    }

    /// An app is a version string, or `{"version": …, "digest": …}`.
    private struct AppEntry: Decodable {
        var reported: ReportedApp

        init(from decoder: any Decoder) throws {
            if let version = try? decoder.singleValueContainer().decode(String.self) {
                reported = ReportedApp(version: version)
            } else {
                reported = try ReportedApp(from: decoder)
            }
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let text = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "top level" : text)
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type)), found null"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): missing"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)): invalid value"
        @unknown default:
            return "not a device inventory"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is [Any].Type: "a list"
        default: type == [String: String].self ? "an object of strings" : "an object"
        }
    }
}
