import FleetCore
import FuzzSupport


/// One input: the first byte picks a file of a small valid fleet, the rest replaces it.
/// Loading and compiling answer with a fleet or with diagnostics that name the file, and never trap.
/// The rest is also read as a server configuration (`serve --config`), which shares the reader.
func fuzzFleetYAML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    _ = baseFleetLoads
    guard let first = input.first else { return 0 }
    if case .failure(let error) = ServerManifest.decode(Array(input.dropFirst()), path: "server.yaml"),
       let stray = error.diagnostics.first(where: { $0.location.path != "server.yaml" }) {
        fatalError("a server configuration diagnostic names another file: \(stray.location.path)")
    }
    let paths = baseFleet.keys.sorted()
    let replaced = paths[Int(first) % paths.count]
    var tree = FleetTree()
    for (path, text) in baseFleet where path != replaced { tree.addFile(path, bytes: Array(text.utf8)) }
    tree.addFile(replaced, bytes: Array(input.dropFirst()))
    do {
        let fleet = try FleetLoader.load(tree)
        _ = fleet
    } catch {
        for diagnostic in error.diagnostics where !paths.contains(diagnostic.location.path) {
            fatalError("a diagnostic names a file that is not in the tree: \(diagnostic.location.path)")
        }
    }
    return 0
}

/// A fleet that loads: every kind of document once. Checked on the first input, so a change to
/// the format that breaks it stops the fuzzer at once instead of fuzzing only error paths.
let baseFleet: [String: String] = [
    "fleet.yaml": """
        apiVersion: flotilla.dev/v1
        kind: Fleet
        project: fuzz
        defaults:
          rollout: {batchSize: 20%, maxUnavailable: 2, maxFailures: 1, onAbort: rollback, executionTimeout: 30m}
        artifacts:
          allow: [https://artifacts.example/]
        """,
    "groups/canary.yaml": """
        kind: Group
        name: canary
        selector: ring in (canary), site!=lab
        devices: [d-1]
        """,
    "devices/lab.yaml": """
        kind: Devices
        devices:
          d-1:
            tags: {ring: canary, site: berlin}
        """,
    "flows/script.yaml": """
        kind: UpdateFlow
        name: script
        parameters:
          tarballUrl: {type: url, required: true}
          tarballSha256: {type: sha256, required: true}
          port: {type: int, default: 8080}
        steps:
          - name: fetch
            download:
              url: ${tarballUrl}
              sha256: ${tarballSha256}
              destination: /var/lib/flotilla/downloads/${app}-${version}.tar.gz
            retries: 2
            onFailure: abort
          - name: install
            script: |
              tar -xzf /var/lib/flotilla/downloads/${app}-${version}.tar.gz -C /opt/${app}
              echo port=${port}
            timeout: 2m
        rollback:
          - name: back
            run: echo rolled back
        """,
    "apps/app.yaml": """
        kind: App
        name: app
        flow: script
        targets:
          - group: canary
            version: 1.0.0
            parameters:
              tarballUrl: https://artifacts.example/app-1.0.0.tar.gz
              tarballSha256: 6f1c8b0e7d1a4c2f9e3b5a7d8c6e4f2a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e
              port: 9090
        """,
]

/// Traps once, on the first input, when the base fleet itself does not load.
let baseFleetLoads: Void = {
    var tree = FleetTree()
    for (path, text) in baseFleet { tree.addFile(path, bytes: Array(text.utf8)) }
    do { _ = try FleetLoader.load(tree) } catch { fatalError("the fuzzer's base fleet does not load:\n\(error)") }
}()

// Last, so the declarations above are initialised before the first input.
runFuzzer { data, size in fuzzFleetYAML(data, size) }
