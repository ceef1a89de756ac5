#!/usr/bin/env bash
# The web console in a real browser: Debian's Chromium driven by Selenium against a real
# `flotilla serve --repo` with simulated devices. Screenshots of each page go to $1 (default
# .build/console-screenshots). Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FLOTILLA_SKIP_SETUP:-}" ]; then
  extra_packages=(chromium chromium-driver fonts-dejavu-core)
  source hack/setup.sh
fi
shots=$(realpath -m "${1:-.build/console-screenshots}")
mkdir -p "$shots"

# Selenium from PyPI, kept under .build like the other test tools.
selenium=.build/tools/selenium
if [ ! -d "$selenium/selenium" ]; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --target "$selenium" selenium==4.51.0
fi

flotilla=$(swift build --show-bin-path)/flotilla
[ -x "$flotilla" ] || swift build --product flotilla
work=$(mktemp -d)
pids=()
source hack/lib/fleet-demo.sh
stop_on_exit

start_fleet_repository > /dev/null
enrollment=$("$flotilla" token create --project acme-climate --data "$work/data")
operator=$("$flotilla" token create --project acme-climate --operator --data "$work/data")
other=$("$flotilla" token create --project other --operator --data "$work/data")
port=$(free_port)
"$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --repo "$repo" --heartbeat-interval 2 \
  --poll-interval 1 --reconcile-interval 1 > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$flotilla" sim --server "http://127.0.0.1:$port" --token "$enrollment" --devices 12 --fail-rate 0 --offline-rate 0 \
  --step-seconds 0.2-0.8 --status-every 30 > "$work/sim.log" 2>&1 &
pids+=($!)

status=0
PYTHONPATH="$selenium" CONSOLE_URL="http://127.0.0.1:$port" CONSOLE_TOKEN="$operator" CONSOLE_OTHER_TOKEN="$other" \
  CONSOLE_CLONE="$work/clone" CONSOLE_SHOTS="$shots" CONSOLE_DEVICES=12 \
  timeout 600 python3 hack/console-test.py || status=$?
if [ "$status" -ne 0 ]; then
  echo "console test failed; the server's log:" >&2
  tail -n 30 "$work/serve.log" >&2
fi
exit "$status"
