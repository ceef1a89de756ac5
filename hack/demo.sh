#!/usr/bin/env bash
# The main job, end to end on this machine: build Flotilla, check the fleet repository
# template, and show what it would do to the sample fleet in fleet-repo-template/.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Building flotilla"
swift build --product flotilla 2>&1 | tail -n 1
flotilla=$(swift build --show-bin-path)/flotilla

say "Validating fleet-repo-template/ (errors would print as path:line:column)"
"$flotilla" validate fleet-repo-template

say "Planning against the sample inventory (fleet-repo-template/inventory.example.json)"
set +e
"$flotilla" plan fleet-repo-template --devices fleet-repo-template/inventory.example.json
status=$?
set -e
echo "(plan exit status $status: 0 nothing changes, 1 devices change, 2 error)"

say "An operator bumps thermostat for the europe group to 2.5.0, in a scratch copy"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r fleet-repo-template "$work/fleet"
sed -i 's|^    version: 2.4.1$|    version: 2.5.0|; s|thermostat/2.4.1/compose.yaml|thermostat/2.5.0/compose.yaml|' "$work/fleet/apps/thermostat.yaml"
"$flotilla" validate "$work/fleet"

say "The plan a pull request would show for that change (Markdown)"
set +e
"$flotilla" plan "$work/fleet" --devices fleet-repo-template/inventory.example.json --format markdown --limit 5
set -e

say "A mistake in the same change is caught with its place"
sed -i '0,/^    version: 2.5.0$/s//    version: 2.5.0\n    paramters: {}/' "$work/fleet/apps/thermostat.yaml"
"$flotilla" validate "$work/fleet" || true

say "Done"
