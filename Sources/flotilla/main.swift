import FleetCLI

await FlotillaCommand.runMain()
