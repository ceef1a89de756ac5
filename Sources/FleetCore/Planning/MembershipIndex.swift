/// Groups compiled against an inventory's symbols, answering "is device d in group g" with
/// integer compares, each answer computed at most once per device.
struct MembershipIndex {
    struct Requirement {
        var key: Int32
        var op: LabelSelector.Operator
        var values: [Int32]
        /// The whole number `>` and `<` compare with.
        var bound: Int64 = 0
    }

    private struct CompiledGroup {
        var requirements: [Requirement]?
        var deviceIDs: Set<String>
    }

    private var groups: [CompiledGroup] = []
    private var positions: [String: Int] = [:]
    /// Tags declared in git, by device id; they win over reported tags.
    private var declared: [String: [(key: Int32, value: Int32)]] = [:]
    /// Each symbol read as a whole number, for `>` and `<` (empty when no group compares).
    private var numbers: [Int64?] = []

    init(fleet: CompiledFleet, symbols: inout SymbolTable) {
        for group in fleet.groups {
            positions[group.name] = groups.count
            let requirements = group.selector.map { selector in
                selector.requirements.map { requirement in
                    Requirement(key: symbols.intern(requirement.key), op: requirement.op,
                                values: requirement.values.map { symbols.intern($0) },
                                bound: requirement.op == .greaterThan || requirement.op == .lessThan
                                    ? Int64(requirement.values[0]) ?? 0 : 0)
                }
            }
            groups.append(CompiledGroup(requirements: requirements, deviceIDs: Set(group.deviceIDs.map(\.value))))
        }
        for device in fleet.devices where !device.tags.isEmpty {
            declared[device.id] = device.tags.map { (symbols.intern($0.key), symbols.intern($0.value)) }
        }
        // Every tag value is interned by now (the inventory's and git's).
        let compares = groups.contains { $0.requirements?.contains { $0.op == .greaterThan || $0.op == .lessThan } ?? false }
        if compares { numbers = symbols.strings.map { Int64($0) } }
    }

    func index(of group: String) -> Int { positions[group]! }

    /// Per-device answers, reused across the apps of one device.
    struct Cache {
        var answers: [Int8]
        var declaredTags: [(key: Int32, value: Int32)]?

        /// Forgets the previous device's answers.
        mutating func reset() {
            for index in answers.indices { answers[index] = -1 }
            declaredTags = nil
        }
    }

    func cache() -> Cache { Cache(answers: Array(repeating: -1, count: groups.count)) }

    func contains(_ device: Int, group: Int, cache: inout Cache, inventory: DeviceInventory) -> Bool {
        let known = cache.answers[group]
        if known >= 0 { return known == 1 }
        if cache.declaredTags == nil {
            cache.declaredTags = declared.isEmpty ? [] : (declared[inventory.ids[device]] ?? [])
        }
        let answer = evaluate(groups[group], device: device, declaredTags: cache.declaredTags!, inventory: inventory)
        cache.answers[group] = answer ? 1 : 0
        return answer
    }

    private func evaluate(_ group: CompiledGroup, device: Int, declaredTags: [(key: Int32, value: Int32)],
                          inventory: DeviceInventory) -> Bool {
        if !group.deviceIDs.isEmpty, group.deviceIDs.contains(inventory.ids[device]) { return true }
        guard let requirements = group.requirements else { return false }
        for requirement in requirements {
            var value = inventory.tagValue(device: device, key: requirement.key)
            for tag in declaredTags where tag.key == requirement.key { value = tag.value }
            guard holds(requirement, value) else { return false }
        }
        return true
    }

    @inline(__always)
    func holds(_ requirement: Requirement, _ value: Int32) -> Bool {
        switch requirement.op {
        case .exists: return value >= 0
        case .doesNotExist: return value < 0
        case .equals, .doubleEquals: return value == requirement.values[0]
        case .notEquals: return value != requirement.values[0]
        case .in: return value >= 0 && requirement.values.contains(value)
        case .notIn: return value < 0 || !requirement.values.contains(value)
        case .greaterThan: return value >= 0 && numbers[Int(value)].map { $0 > requirement.bound } ?? false
        case .lessThan: return value >= 0 && numbers[Int(value)].map { $0 < requirement.bound } ?? false
        }
    }
}
