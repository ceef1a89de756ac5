/// Flows every fleet repository has without writing them. A flow of the same name in `flows/`
/// takes the built-in one's place.
enum BuiltInFlows {
    /// `flow: flotilla-agent`: the agent replaces itself, and the step succeeds only once the new
    /// agent reported in (see `Step.Action.agentUpdate`). Its app rolls out in waves like any.
    static let agentName = "flotilla-agent"
    static let agentPath = "(built-in)/flows/flotilla-agent.yaml"
    static let agent = """
        kind: UpdateFlow
        name: flotilla-agent
        description: Replace flotilla-agent itself; the new agent must report in, or the previous one is put back.
        parameters:
          url:
            type: url
            required: true
            description: Where the new flotilla-agent binary is, under an allowed artifact source.
          sha256:
            type: sha256
            required: true
        steps:
          - name: replace the agent
            agentUpdate:
              url: ${url}
              sha256: ${sha256}
            timeout: 5m
        """

    /// Adds the built-in flows the apps name and the repository does not define.
    static func add(to loaded: inout LoadedDocuments, decoder: DocumentDecoder) {
        guard loaded.apps.contains(where: { $0.flow.value == agentName }), !loaded.flows.contains(where: { $0.name == agentName }),
              case .success(let documents) = YAMLReader.documents(in: Array(agent.utf8), path: agentPath) else { return }
        for document in documents where !document.isNull { decoder.decode(document, expected: .updateFlow, into: &loaded) }
    }
}
