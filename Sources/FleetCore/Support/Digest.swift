// SHA-256 lives in FleetProtocol so the agent, which links no FleetCore, shares it; FleetCore's
// users keep reaching it from here.
@_exported public import enum FleetProtocol.SHA256
