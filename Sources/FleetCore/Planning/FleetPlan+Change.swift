extension FleetPlan {
    /// This plan cut down to what a change of the repository does: only the devices whose
    /// desired version or parameters differ from `base`'s, as a pull request would move them.
    ///
    /// Both plans must come from the same inventory. Devices already out of date at `base`,
    /// and still wanted at the same version, are left out: the change does not move them.
    public func changes(since base: FleetPlan) -> FleetPlan {
        var result = self
        result.isChangeOnly = true
        result.apps = apps.map { app in
            var baseDigest: [Int32: String] = [:]
            for target in base.apps.first(where: { $0.name == app.name })?.targets ?? [] {
                for change in target.changes { baseDigest[change.device] = target.target.digest }
                for device in target.unchanged { baseDigest[device] = target.target.digest }
            }
            var app = app
            app.targets = app.targets.map { target in
                var target = target
                target.changes = target.changes.filter { baseDigest[$0.device] != target.target.digest }
                target.offlineCount = target.changes.filter { !inventory.online[Int($0.device)] }.count
                target.waves = target.rollout.waveSizes(for: target.changes.count - target.offlineCount, total: target.changes.count)
                return target
            }
            // Devices this change stops targeting, that were targeted before.
            app.notTargeted = app.notTargeted.filter { baseDigest[$0] != nil }
            return app
        }
        return result
    }
}
