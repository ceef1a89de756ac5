import FleetCore

/// Small fleet repositories written in the tests, loaded from memory as a git tree would be.
enum FleetFixtures {
    static func tree(_ files: [String: String]) -> FleetTree {
        var tree = FleetTree()
        for (path, text) in files { tree.addFile(path, bytes: Array(text.utf8)) }
        return tree
    }

    static func load(_ files: [String: String]) throws -> CompiledFleet {
        try FleetLoader.load(tree(files))
    }

    /// Two apps; `web` has ordered targets where a device can match several groups.
    static let shop: [String: String] = [
        "fleet.yaml": """
            kind: Fleet
            project: shop
            defaults:
              rollout: {batchSize: 2, maxFailures: 0}
            artifacts:
              allow: [https://cdn.example.com/]
            """,
        "groups/all.yaml": """
            kind: Group
            name: canary
            selector: ring=canary
            ---
            kind: Group
            name: berlin
            selector: site=berlin
            ---
            kind: Group
            name: everyone
            selector: "!retired"
            ---
            kind: Group
            name: vip
            devices: [kiosk-9]
            """,
        "devices/kiosks.yaml": """
            kind: Devices
            devices:
              kiosk-1: {tags: {ring: canary}}
              kiosk-9: {}
            """,
        "flows/simple.yaml": """
            kind: UpdateFlow
            name: simple
            parameters:
              color: {type: enum, values: [red, blue], default: red}
            steps:
              - name: install
                run: install ${app} ${version} ${color}
            """,
        "apps/web.yaml": """
            kind: App
            name: web
            flow: simple
            targets:
              - {group: vip, version: "3.0", parameters: {color: blue}}
              - {group: canary, version: "2.1"}
              - {group: berlin, version: "2.0"}
              - {group: everyone, version: "1.9"}
            rollout: {batchSize: 50%}
            """,
        "apps/printer.yaml": """
            kind: App
            name: printer
            flow: simple
            targets:
              - {group: berlin, version: "7"}
            """,
    ]
}
