import Foundation

/// What a verified webhook asks of the controller. Forges send more than pushes to the same URL
/// (GitHub's ping when a hook is made, pull-request events when the hook subscribes to them),
/// and a push to any branch — including the controller's own status branch — so only a push to
/// the watched branch brings a poll.
public enum PushEvent: Equatable, Sendable {
    /// Poll now.
    case poll
    /// GitHub's greeting when a hook is created or tested: answered, nothing fetched.
    case ping
    /// Verified, but nothing for this controller; the reason goes back to the forge.
    case ignored(String)

    /// Classifies a verified delivery by its event header (`X-GitHub-Event`, `X-Gitea-Event`,
    /// `X-Forgejo-Event`, `X-Gitlab-Event`) and the `ref` of its payload. A delivery that names
    /// neither is taken as a push: a poll is cheap and never wrong.
    public static func classify(event: String?, body: [UInt8], branch: String) -> PushEvent {
        if let event {
            switch event.lowercased() {
            case "ping": return .ping
            case "push", "push hook": break
            case "tag push hook", "create", "delete":
                return .ignored("a \(event) event does not move refs/heads/\(branch)")
            default: return .ignored("a \(event) event is not a push")
            }
        }
        let watched = "refs/heads/" + branch
        guard !body.isEmpty,
              let payload = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
              let ref = payload["ref"] as? String else { return .poll }
        return ref == watched ? .poll : .ignored("a push to \(ref); this controller watches \(watched)")
    }
}
