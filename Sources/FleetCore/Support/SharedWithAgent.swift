// SHA-256 and WebURL live in FleetProtocol so the agent, which links no FleetCore, checks
// digests and artifact URLs exactly as the compiler does; FleetCore's users reach them from here.
@_exported public import enum FleetProtocol.SHA256
@_exported public import struct FleetProtocol.WebURL
