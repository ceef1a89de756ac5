import FleetCLI

FlotillaCommand.runMain()
