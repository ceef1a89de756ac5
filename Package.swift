// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flotilla", targets: ["flotilla"]),
        .executable(name: "flotilla-agent", targets: ["flotilla-agent"]),
        .library(name: "FleetCore", targets: ["FleetCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.60.0"),
        // NIOHTTPTypes: the request parts Hummingbird's HTTP/1 pipeline carries, for the request deadline.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        // Already in the build through jwt-kit; named here for the webhook HMAC.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        // The shared store for more than one server: PostgreSQL's own client for Swift on NIO.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.21.0"),
        // Already in the build through postgres-nio and AsyncHTTPClient; named for the database's TLS.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.25.0"),
    ],
    targets: [
        // The fleet model, loading, validation and planning. No I/O.
        .target(
            name: "FleetCore",
            dependencies: ["FleetProtocol", .product(name: "Yams", package: "Yams")]
        ),
        // libgit2, through pkg-config.
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        // Git in safe Swift: fetch, trees without checkout, notes, status branch, signatures.
        .target(name: "FleetGit", dependencies: ["CLibGit2", "FleetCore"]),
        // Wire types shared by server, agent and CLI; FoundationEssentials only.
        .target(name: "FleetProtocol"),
        // libcurl and libyaml for the agent, through pkg-config.
        .systemLibrary(name: "CLibCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // The device agent: configuration, metrics, the execution state machine, its journal,
        // step runners, the outbox. The standard library, Glibc, libcurl and libyaml only.
        .target(name: "FleetAgent", dependencies: ["FleetProtocol", "CLibCurl", "CLibYAML"]),
        .executableTarget(name: "flotilla-agent", dependencies: ["FleetAgent"]),
        // The store protocol, records and an in-memory store; and the deployment seam the server and
    // the controller share (Deployer, AssignmentBoard, ControllerHandle), so neither imports the other.
        .target(name: "FleetStore", dependencies: ["FleetProtocol"]),
        // The embedded store: SQLite through GRDB.
        .target(
            name: "FleetStoreSQLite",
            dependencies: ["FleetStore", "FleetProtocol", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The shared store: PostgreSQL through postgres-nio, for several servers on one database.
        .target(
            name: "FleetStorePostgres",
            dependencies: [
                "FleetStore", "FleetProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The server: agent API, operator API, heartbeat ingest.
        .target(
            name: "FleetServer",
            dependencies: [
                "FleetCore", "FleetProtocol", "FleetStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["EmbedOpenAPI"]
        ),
        // docs/openapi.json compiled into FleetServer: the document is written once, in docs.
        .plugin(name: "EmbedOpenAPI", capability: .buildTool(), dependencies: ["embed-text"]),
        .executableTarget(name: "embed-text"),
        // Reports where people look: the note, STATUS.md and status.json, and forge commit statuses.
        .target(
            name: "FleetStatus",
            dependencies: [
                "FleetCore", "FleetProtocol", "FleetStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The controller: watches the fleet repository and rolls its desired state out.
        .target(
            name: "FleetController",
            dependencies: [
                "FleetCore", "FleetGit", "FleetProtocol", "FleetStatus", "FleetStore",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The `flotilla` commands: argument parsing, file reading, output.
        .target(
            name: "FleetCLI",
            dependencies: [
                "FleetCore",
                "FleetGit",
                "FleetServer",
                "FleetStore",
                "FleetStoreSQLite",
                "FleetStorePostgres",
                "FleetProtocol",
                "FleetController",
                "FleetStatus",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                // YAML for `-o yaml` and the client configuration file.
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(name: "flotilla", dependencies: ["FleetCLI"]),
        .executableTarget(
            name: "flotilla-bench",
            dependencies: ["FleetCore"],
            path: "Benchmarks/PlanBenchmark"
        ),
        .executableTarget(
            name: "flotilla-decision-bench",
            dependencies: ["FleetCore", "FleetProtocol", "FleetSimulation"],
            path: "Benchmarks/DecisionBenchmark"
        ),
        // The bare HTTP app the heartbeat is measured against: reads the body, answers 204.
        .executableTarget(
            name: "flotilla-heartbeat-ceiling",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Benchmarks/HeartbeatCeiling"
        ),
        .executableTarget(
            name: "flotilla-metrics-bench",
            dependencies: ["FleetStore", "FleetStoreSQLite", "FleetProtocol", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/MetricsBenchmark"
        ),
        // What a controller pass reads of a long history from the SQLite store.
        .executableTarget(
            name: "flotilla-history-bench",
            dependencies: ["FleetStore", "FleetStoreSQLite", "FleetProtocol", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/HistoryBenchmark"
        ),
        .executableTarget(
            name: "flotilla-console-bench",
            dependencies: ["FleetCore", "FleetProtocol", "FleetServer", "FleetStore", "FleetStoreSQLite",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Benchmarks/ConsoleBenchmark"
        ),
        .executableTarget(
            name: "flotilla-git-bench",
            dependencies: ["FleetGit", "FleetTesting"],
            path: "Benchmarks/GitBenchmark"
        ),
        .testTarget(name: "FleetCoreTests", dependencies: ["FleetCore", "FleetProtocol", "FleetSimulation"]),
        // A deterministic fleet: virtual clock, the real decision, simulated devices. No I/O.
        .target(name: "FleetSimulation", dependencies: ["FleetCore", "FleetStore", "FleetProtocol"]),
        // Runs thousands of seeded scenarios, or replays one with its trace.
        .executableTarget(name: "fleet-simulator", dependencies: ["FleetSimulation"]),
        .testTarget(name: "FleetSimulationTests", dependencies: ["FleetSimulation", "FleetCore", "FleetStore", "FleetProtocol"], path: "Tests/FleetSimulationTests"),
        // Test support: a real git daemon on loopback, fleets to work with.
        .target(name: "FleetTesting", dependencies: ["FleetCore", "FleetGit"]),
        .testTarget(
            name: "FleetServerTests",
            dependencies: [
                "FleetServer", "FleetStore", "FleetProtocol", "FleetTesting", "FleetCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "FleetProtocolTests", dependencies: ["FleetProtocol"]),
        .testTarget(name: "FleetStatusTests", dependencies: ["FleetStatus", "FleetCore", "FleetProtocol", "FleetStore", "FleetTesting",
                                                      .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(
            name: "FleetControllerTests",
            dependencies: ["FleetController", "FleetCore", "FleetStore", "FleetGit", "FleetProtocol", "FleetStatus", "FleetTesting",
                           .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "FleetAgentTests", dependencies: ["FleetAgent", "FleetProtocol", "FleetGit", "FleetTesting"]),
        .testTarget(name: "FleetStoreTests", dependencies: ["FleetStore", "FleetStoreSQLite", "FleetStorePostgres", "FleetProtocol", "FleetTesting",
                                                            .product(name: "GRDB", package: "GRDB.swift"),
                                                            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "FleetGitTests", dependencies: ["FleetGit", "FleetCore", "FleetTesting"]),
        .testTarget(
            name: "FleetCLITests",
            dependencies: ["FleetCLI", "FleetCore", "FleetGit", "FleetTesting", "flotilla"],
            exclude: ["Fixtures"]
        ),
    ]
)

// libFuzzer targets, built only by hack/fuzz.sh (FLOTILLA_FUZZ=1 and -sanitize=fuzzer): each main
// hands its test function to libFuzzer's driver.
if Context.environment["FLOTILLA_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("fuzz-fleet-yaml", ["FleetCore"]),
        ("fuzz-wire-json", ["FleetProtocol"]),
        ("fuzz-selector", ["FleetCore"]),
        ("fuzz-agent-config", ["FleetAgent"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"))
    for target in fuzzTargets {
        package.targets.append(.executableTarget(name: target.name, dependencies: target.dependencies + ["FuzzSupport"],
                                                 path: "Fuzz/\(target.name)"))
    }
}

// Every target compiles with the same language rules.
for target in package.targets where [.executable, .test, .regular].contains(target.type) {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
