import FleetProtocol

/// A JSON Schema (draft 2020-12) of the fleet repository's YAML files, for editors that check
/// files as people type (yaml-language-server). The property lists are the loader's own.
public enum FleetSchema {
    public static let id = "https://flotilla.dev/schema/v1/fleet.json"

    public static func document() -> JSONValue {
        let kinds = DocumentKind.allCases.map(\.rawValue)
        return .object([
            ("$schema", .string("https://json-schema.org/draft/2020-12/schema")),
            ("$id", .string(id)),
            ("title", .string("Flotilla fleet repository file")),
            ("description", .string("fleet.yaml, groups/, devices/, flows/, apps/ and alerts/ of a Flotilla fleet repository.")),
            ("type", .string("object")),
            ("required", .array([.string("kind")])),
            ("properties", .object([("kind", .object([("enum", .array(kinds.map(JSONValue.string)))]))])),
            ("allOf", .array(kinds.map { kind in
                .object([
                    ("if", .object([("properties", .object([("kind", .object([("const", .string(kind))]))]))])),
                    ("then", ref(kind)),
                ])
            })),
            ("$defs", .object(definitions)),
        ])
    }

    private static var definitions: [(String, JSONValue)] {
        [
            ("Fleet", kind("Fleet", required: ["project"], [
                ("project", text("The project on the fleet server these devices belong to.", pattern: namePattern)),
                ("description", text("What this fleet is.")),
                ("defaults", strictObject([("rollout", ref("Rollout")), ("windows", ref("Windows"))], description: "Settings for apps that do not set their own.")),
                ("artifacts", strictObject([("allow", .object([
                    ("type", .string("array")), ("items", text("A URL prefix download steps may fetch from.", pattern: urlPattern, format: "uri")),
                ]))], description: "Where download steps may fetch from.")),
                ("status", strictObject([
                    ("forge", enumeration(StatusSettings.Forge.allCases.map(\.rawValue), "The forge whose commit-status API to post to.")),
                    ("repository", text("owner/name on GitHub or Gitea; project id or path on GitLab.", pattern: StatusSettings.repositoryPattern)),
                    ("apiURL", text("API base URL of a self-hosted forge.", pattern: urlPattern, format: "uri")),
                    ("contextPrefix", text("First part of each status context, <prefix>/<app>; one word, no spaces.", pattern: "^[^ ]+$")),
                    ("notes", .object([("type", .string("boolean")), ("description", .string("Write a git note on each reconciled commit."))])),
                    ("branch", text("The branch that holds STATUS.md and status.json.")),
                ], description: "How the controller reports status.", requiredWhen: (
                    "forge", StatusSettings.Forge.allCases.filter { $0 != .none }.map(\.rawValue), "repository"))),
                ("remote", strictObject([
                    ("exec", .object([("type", .string("boolean")), ("description", .string("Let operators run commands on the devices (flotilla exec)."))])),
                    ("fetchPaths", .object([
                        ("type", .string("array")), ("uniqueItems", .bool(true)),
                        ("items", text("An absolute path files may be fetched from (flotilla fetch); no . or .. parts.", pattern: fetchPathPattern)),
                    ])),
                ], description: "What operators may do on the devices over the agent's link; off by default, every use audited.")),
                ("alerts", strictObject([
                    ("webhook", strictObject([
                        ("url", text("Where alerts are posted as JSON.", pattern: urlPattern, format: "uri")),
                        ("secret", text("The project secret the body is signed with (HMAC-SHA256, X-Flotilla-Signature).", pattern: namePattern)),
                    ], required: ["url"], description: "A generic JSON webhook.")),
                    ("slack", strictObject([
                        ("urlSecret", text("The project secret holding the incoming webhook's URL.", pattern: namePattern)),
                    ], required: ["urlSecret"], description: "A Slack-compatible incoming webhook.")),
                    ("alertmanager", strictObject([
                        ("url", text("Alertmanager's base URL; alerts go to its API v2.", pattern: urlPattern, format: "uri")),
                    ], required: ["url"], description: "Prometheus Alertmanager.")),
                ], description: "Where alerts of alerts/ are sent.")),
            ])),
            ("AlertRule", kind("AlertRule", required: ["name", "condition"], [
                ("name", text("The rule's name.", pattern: namePattern)),
                ("description", text("What the rule is for.")),
                ("group", text("The group it watches; with neither group nor selector, every device.", pattern: namePattern)),
                ("selector", text("Label selector over device tags; not with group.", pattern: "\\S")),
                ("condition", text("cpu > 90%, memory >= 95%, disk > 80, process.NAME == down, custom.NAME >= 5, or offline.", pattern: conditionPattern)),
                ("for", duration("How long the condition must hold before it fires (offline: how long the device is silent, at least 1m).")),
                ("severity", enumeration(AlertSeverity.allCases.map(\.rawValue), "How bad it is; warning unless set.")),
                ("summary", text("What the alert means, in words, sent with it.")),
            ])),
            ("Group", kind("Group", required: ["name"], [
                ("name", text("The group's name.", pattern: namePattern)),
                ("description", text("What the group is for.")),
                ("selector", text("Label selector over device tags, e.g. \"site in (berlin,paris),ring!=canary\"; not empty.", pattern: "\\S")),
                ("devices", .object([("type", .string("array")), ("items", text("A device id.", pattern: deviceIDPattern))])),
            ], anyOfKeys: ["selector", "devices"])),
            ("Devices", kind("Devices", required: ["devices"], [
                ("devices", .object([
                    ("type", .string("object")),
                    ("description", .string("Tags declared per device id.")),
                    ("propertyNames", .object([("pattern", .string(deviceIDPattern))])),
                    ("additionalProperties", strictObject([
                        ("tags", .object([
                            ("type", .string("object")),
                            ("propertyNames", .object([("pattern", .string(tagKeyPattern))])),
                            ("additionalProperties", .object([("oneOf", .array([
                                .object([("type", .string("string")), ("pattern", .string(tagValuePattern))]),
                                .object([("type", .string("number")), ("minimum", .int(0))]),
                                .object([("type", .string("boolean"))]),
                            ]))])),
                        ])),
                        ("description", text("What the device is.")),
                    ], nullable: true)),
                ])),
            ])),
            ("UpdateFlow", kind("UpdateFlow", required: ["name", "steps"], [
                ("name", text("The flow's name.", pattern: namePattern)),
                ("description", text("What the flow installs.")),
                ("parameters", .object([("type", .string("object")), ("additionalProperties", ref("Parameter"))])),
                ("steps", .object([("type", .string("array")), ("minItems", .int(1)), ("items", ref("Step"))])),
                ("rollback", .object([("type", .string("array")), ("items", ref("Step"))])),
                ("probe", strictObject([
                    ("run", text("A command whose output's first line is the version that really runs; nothing printed: the app does not run.",
                                 pattern: "\\S")),
                    ("timeout", duration("How long the probe may run (1s to 1h; default 30s).", positive: true)),
                    ("interval", duration("How often each device runs it (10s to 1d; default 5m).", positive: true)),
                ], required: ["run"])),
            ])),
            ("App", kind("App", required: ["name", "flow", "targets"], [
                ("name", text("The app's name.", pattern: namePattern)),
                ("description", text("What the app is.")),
                ("flow", text("The UpdateFlow that installs it.")),
                ("parameters", ref("ParameterValues")),
                ("targets", .object([
                    ("type", .string("array")), ("minItems", .int(1)),
                    ("description", .string("Ordered: the first target whose group holds a device wins.")),
                    ("items", strictObject([
                        ("group", text("A Group name.")),
                        ("version", .object([("oneOf", .array([
                            .object([("type", .string("string")), ("pattern", .string("^[A-Za-z0-9.+_~-]{1,128}$"))]),
                            .object([("type", .string("number"))]),
                        ]))])),
                        ("parameters", ref("ParameterValues")),
                        ("notBefore", text("This target starts no earlier than this instant (RFC 3339 with a zone).", format: "date-time")),
                        ("after", text("The group of a target listed before this one that must have converged first.", pattern: namePattern)),
                        ("bake", duration("How long the 'after' target must have stayed converged (needs 'after').")),
                        ("approval", enumeration(["required", "none"], "Whether an operator must approve each release of this target before it starts.")),
                        ("windows", ref("Windows")),
                    ], required: ["group", "version"])),
                ])),
                ("rollout", ref("Rollout")),
                ("selfHeal", .object([("type", .string("boolean")), ("description", .string("Put back devices that drift."))])),
                ("notBefore", text("No target of the app starts before this instant (RFC 3339 with a zone).", format: "date-time")),
                ("windows", ref("Windows")),
                ("health", strictObject([
                    ("observe", duration("How long after its update a device must keep passing; none: its first heartbeat decides.")),
                    ("custom", .object([("type", .string("object")), ("description", .string("Custom values the app publishes in heartbeats, by name.")),
                                        ("additionalProperties", enumeration(["number", "text"], "The value's kind."))])),
                    ("checks", .object([("type", .string("array")), ("minItems", .int(1)), ("items", text(
                        "SUBJECT OP VALUE: cpu|memory|disk|process.NAME|custom.NAME, <|<=|>|>=|==|!=, a number, baseline [+|- N[%]], or text "
                        + "(up, down, ${version}). Such as 'cpu <= baseline + 20%' or 'process.app == up'.",
                        pattern: "^\\s*(cpu|memory|disk|process\\.[^\\s<>=!]+|custom\\.[^\\s<>=!]+)\\s*(<=|>=|==|!=|<|>)\\s*\\S.*$"))])),
                ], required: ["checks"], description: "What the app's devices must keep showing in their heartbeats after an update; a device that fails counts as failed.")),
            ])),
            ("Windows", strictObject([
                ("timezone", text("IANA zone of devices without a zone tag, such as Europe/Berlin. Default UTC.")),
                ("zoneTag", text("The tag holding a device's own IANA zone, '.' for '/' (Europe.Berlin). Default timezone.")),
                ("allow", weeklyRanges("Weekly ranges in which devices may start an update; none: any time not denied.")),
                ("deny", weeklyRanges("Weekly ranges in which no device starts an update; deny wins over allow.")),
            ], description: "Maintenance windows: when devices may start an update, in each device's own zone. A running update is never cut off.")),
            ("Rollout", strictObject([
                ("batchSize", quantity("Devices per wave.", zeroAllowed: false)),
                ("maxUnavailable", quantity("Devices updating at once, at most.", zeroAllowed: false)),
                ("maxFailures", quantity("Failures tolerated before the rollout aborts.", zeroAllowed: true)),
                ("onAbort", enumeration(RolloutPolicy.OnAbort.allCases.map(\.rawValue), "What happens to changed devices on abort.")),
                ("executionTimeout", duration("An execution with no progress for this long is timed out.", positive: true)),
            ])),
            ("Parameter", parameter),
            ("ParameterValues", .object([
                ("type", .string("object")),
                ("additionalProperties", .object([("type", .array([.string("string"), .string("number"), .string("boolean")]))])),
            ])),
            ("Step", strictObject([
                ("name", text("The step's name, unique in the flow.", pattern: "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]+$")),
                ("run", text("A command run through /bin/sh -c.")),
                ("script", text("An inline script.")),
                ("download", strictObject([
                    ("url", text("http(s) URL under an allowed artifact source.")),
                    ("sha256", text("Expected SHA-256 of the file.")),
                    ("destination", text("Where the file goes: an absolute path (or one starting with a ${parameter}), no '..'.",
                                         pattern: "^(?!(.*/)?\\.\\.(/.*)?$)(/|\\$\\{)")),
                ], required: ["url", "sha256", "destination"])),
                ("compose", strictObject([
                    ("project", text("The compose project name.")),
                    ("file", text("The compose file.")),
                    ("action", enumeration(Step.ComposeAction.allCases.map(\.rawValue), "up or down.")),
                ], required: ["project", "file"])),
                ("install", text("Path of a .deb to install with dpkg -i.")),
                ("agentUpdate", strictObject([
                    ("url", text("http(s) URL of the new flotilla-agent binary, under an allowed artifact source.")),
                    ("sha256", text("Expected SHA-256 of the binary.")),
                ], required: ["url", "sha256"])),
                ("timeout", duration("How long the step may run.", positive: true)),
                ("retries", .object([("type", .string("integer")), ("minimum", .int(0)), ("maximum", .int(100))])),
                ("onFailure", enumeration(Step.OnFailure.allCases.map(\.rawValue), "What to do when the step fails.")),
                ("idempotent", .object([("type", .string("boolean")), ("description", .string("Safe to run again after an interruption."))])),
            ], oneOfKeys: Step.Action.keys)),
        ]
    }

    /// A flow's parameter; its default checked against its type where a pattern can say it.
    private static var parameter: JSONValue {
        guard case .object(var members) = strictObject([
            ("type", enumeration(ParameterSpec.Kind.names, "The parameter's type.")),
            ("required", .object([("type", .string("boolean"))])),
            ("default", .object([("type", .array([.string("string"), .string("number"), .string("boolean")]))])),
            ("description", text("What the parameter means.")),
            ("values", .object([("type", .string("array")), ("items", .object([("type", .string("string"))]))])),
        ], required: ["type"]) else { return .null }
        func when(_ type: String, _ allowed: [JSONValue]) -> JSONValue {
            .object([
                ("if", .object([("properties", .object([("type", .object([("const", .string(type))]))]))])),
                ("then", .object([("properties", .object([("default", .object([("oneOf", .array(allowed))]))]))])),
            ])
        }
        members.append(("allOf", .array([
            when("int", [.object([("type", .string("integer"))]), .object([("type", .string("string")), ("pattern", .string("^[-+]?[0-9]+$"))])]),
            when("bool", [.object([("type", .string("boolean"))]),
                          .object([("enum", .array(["true", "True", "TRUE", "false", "False", "FALSE"].map(JSONValue.string)))])]),
            when("sha256", [.object([("type", .string("string")), ("pattern", .string("^[0-9a-fA-F]{64}$"))])]),
            when("url", [.object([("type", .string("string")), ("pattern", .string(urlPattern))])]),
            when("duration", [duration("")]),
            when("secret", [.object([("type", .string("string")), ("pattern", .string(namePattern))])]),
            // 'values' belongs to an enum, which needs at least one.
            .object([
                ("if", .object([("properties", .object([("type", .object([("const", .string("enum"))]))])), ("required", .array([.string("type")]))])),
                ("then", .object([("properties", .object([("values", .object([("type", .string("array")), ("minItems", .int(1))]))])),
                                  ("required", .array([.string("values")]))])),
                ("else", .object([("properties", .object([("values", .object([("type", .string("null"))]))]))])),
            ]),
        ])))
        return .object(members)
    }

    /// `WebURL`'s shape: http or https, a host, no credentials. (Its host characters, port range
    /// and '.'/'..' segments are checked by the loader alone.)
    static let urlPattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+([/?#].*)?$"
    /// An absolute path without empty, `.` or `..` parts, and not `/` itself.
    static let fetchPathPattern = "^(/(?!\\.\\.?(/|$))[^/\\u0000-\\u001f\\u007f]+)+$"
    /// `offline`, or SUBJECT OP VALUE over a subject alerts know (what can never fire is the loader's to refuse).
    static let conditionPattern = "^[ \\t]*(offline|(cpu|memory|disk|process\\.[^<>=! \\t]+|custom\\.[^<>=! \\t]+)[ \\t]*(<=|>=|==|!=|<|>)[ \\t]*[^ \\t].*)[ \\t]*$"
    static let namePattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    /// A device id, as devices/ and a group's `devices:` write it (`DocumentDecoder.deviceIDProblem`).
    static let deviceIDPattern = "^[A-Za-z0-9._:-]{1,253}$"
    /// `TagSyntax`'s rules: an optional lower-case DNS prefix and '/', then a name segment.
    static let tagKeyPattern = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    static let tagValuePattern = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"

    private static func ref(_ name: String) -> JSONValue { .object([("$ref", .string("#/$defs/\(name)"))]) }

    private static func kind(_ name: String, required: [String], _ properties: [(String, JSONValue)], anyOfKeys: [String] = []) -> JSONValue {
        let common: [(String, JSONValue)] = [
            ("apiVersion", .object([("const", .string(FleetLoader.apiVersion))])),
            ("kind", .object([("const", .string(name))])),
        ]
        return strictObject(common + properties, required: ["kind"] + required, anyOfKeys: anyOfKeys)
    }

    private static func strictObject(_ properties: [(String, JSONValue)], required: [String] = [], description: String? = nil,
                                     nullable: Bool = false, oneOfKeys: [String] = [], anyOfKeys: [String] = [],
                                     requiredWhen: (key: String, values: [String], then: String)? = nil) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", nullable ? .array([.string("object"), .string("null")]) : .string("object"))]
        if let description { members.append(("description", .string(description))) }
        // A key written with no value (or null) is as good as left out, to the loader and to YAML tools.
        members.append(("properties", .object(properties.map { name, schema in (name, required.contains(name) ? schema : orNull(schema)) })))
        members.append(("additionalProperties", .bool(false)))
        if !required.isEmpty { members.append(("required", .array(required.map(JSONValue.string)))) }
        // Written with a value, that is: a key left null counts as absent here too.
        func present(_ key: String) -> JSONValue {
            .object([("required", .array([.string(key)])), ("properties", .object([(key, .object([("not", .object([("type", .string("null"))]))]))]))])
        }
        if !oneOfKeys.isEmpty { members.append(("oneOf", .array(oneOfKeys.map(present)))) }
        if !anyOfKeys.isEmpty { members.append(("anyOf", .array(anyOfKeys.map(present)))) }
        if let (key, values, then) = requiredWhen {
            members.append(("if", .object([("properties", .object([(key, .object([("enum", .array(values.map(JSONValue.string)))]))])),
                                           ("required", .array([.string(key)]))])))
            members.append(("then", .object([("properties", .object([(then, .object([("not", .object([("type", .string("null"))]))]))])),
                                             ("required", .array([.string(then)]))])))
        }
        return .object(members)
    }

    /// `schema`, or null.
    private static func orNull(_ schema: JSONValue) -> JSONValue {
        guard case .object(var members) = schema else { return schema }
        if let index = members.firstIndex(where: { $0.0 == "type" }) {
            switch members[index].1 {
            case .string(let type): members[index].1 = .array([.string(type), .string("null")])
            case .array(let types) where !types.contains(.string("null")): members[index].1 = .array(types + [.string("null")])
            default: break
            }
            return .object(members)
        }
        if let index = members.firstIndex(where: { $0.0 == "enum" }), case .array(let values) = members[index].1 {
            members[index].1 = .array(values + [.null])
            return .object(members)
        }
        return .object([("anyOf", .array([schema, .object([("type", .string("null"))])]))])
    }

    private static func text(_ description: String, pattern: String? = nil, format: String? = nil) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", .string("string")), ("description", .string(description))]
        if let pattern { members.append(("pattern", .string(pattern))) }
        if let format { members.append(("format", .string(format))) }
        return .object(members)
    }

    private static func enumeration(_ values: [String], _ description: String) -> JSONValue {
        .object([("enum", .array(values.map(JSONValue.string))), ("description", .string(description))])
    }

    /// A count or a percentage as `Quantity.parse` reads it (digits; a fraction only before '%'),
    /// up to 100%, and above zero unless `zeroAllowed`. A count may be written quoted, as YAML
    /// gives the validator the same text either way.
    private static func quantity(_ description: String, zeroAllowed: Bool) -> JSONValue {
        let percent = "0*(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)%"
        return .object([
            ("description", .string(description + " A count such as 5, or a percentage such as 10%.")),
            ("oneOf", .array([
                .object([("type", .string("integer")), ("minimum", .int(zeroAllowed ? 0 : 1))]),
                .object([("type", .string("string")), ("pattern", .string(zeroAllowed ? "^\\+?[0-9]+$" : "^\\+?0*[1-9][0-9]*$"))]),
                .object([("type", .string("string")), ("pattern", .string(zeroAllowed ? "^\(percent)$" : "^(?!0*(\\.0+)?%$)\(percent)$"))]),
            ])),
        ])
    }

    private static func weeklyRanges(_ description: String) -> JSONValue {
        .object([("type", .string("array")), ("description", .string(description)), ("items", .object([
            ("type", .string("string")),
            ("description", .string("DAYS [HH:MM-HH:MM]: Mon-Fri 01:00-05:00, Sat,Sun, daily 22:00-02:00.")),
            ("pattern", .string("^(daily|\\*|[A-Za-z]{3,9}([-,][A-Za-z]{3,9})*)( [0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2})?$")),
        ]))])
    }

    /// `positive`: more than zero, as the loader requires of timeouts (`0s` and `0m0s` are not).
    private static func duration(_ description: String, positive: Bool = false) -> JSONValue {
        .object([("type", .string("string")), ("description", .string(description + " Such as 30s, 5m, 2h or 1h30m.")),
                 ("pattern", .string((positive ? "^(?!(0+(ms|s|m|h|d))+$)" : "^") + "([0-9]+(ms|s|m|h|d))+$"))])
    }
}
