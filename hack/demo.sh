#!/usr/bin/env bash
# The main job, end to end on this machine: a fleet repository made from fleet-repo-template/
# served by git daemon, `flotilla serve --repo` reconciling it on SQLite, 50 devices simulated by
# `flotilla sim`, the fleet converging, then a version bump committed as a person would and
# rolled out in waves to convergence. Everything it starts is stopped when it ends.
#
#   ./hack/demo.sh          runs it and stops
#   ./hack/demo.sh --keep   leaves the server and devices running for the web console, until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
keep=""
for argument in "$@"; do
  case "$argument" in
    --keep) keep=1 ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
  esac
done
source hack/setup.sh

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
DEVICES=${DEMO_DEVICES:-50}

say "Building flotilla"
swift build --product flotilla 2>&1 | tail -n 1
flotilla=$(swift build --show-bin-path)/flotilla

work=$(mktemp -d)
pids=()
source hack/lib/fleet-demo.sh
stop_on_exit

say "Validating fleet-repo-template/ (errors would print as path:line:column)"
"$flotilla" validate fleet-repo-template

say "A fleet repository made from fleet-repo-template/, served by git daemon"
start_fleet_repository

say "Starting flotilla serve --repo $repo (SQLite in $work/data)"
enrollment=$("$flotilla" token create --project acme-climate --data "$work/data")
operator=$("$flotilla" token create --project acme-climate --operator --data "$work/data")
port=$(free_port)
"$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --repo "$repo" --heartbeat-interval 2 \
  --poll-interval 2 --reconcile-interval 1 > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "listening on 127.0.0.1:$port; operator API token in \$operator"
echo "the web console: http://127.0.0.1:$port/ — sign in with the operator token $operator"

say "Enrolling $DEVICES simulated devices (flotilla sim; 10% of them offline for the first 20 s)"
"$flotilla" sim --server "http://127.0.0.1:$port" --token "$enrollment" --devices "$DEVICES" --fail-rate 0 \
  --offline-rate 0.1 --offline-seconds 20 --step-seconds 0.3-1.5 --status-every 10 --unhealthy 2.5.1:crash > "$work/sim.log" 2>&1 &
pids+=($!)

# The controller's own report, as anyone with the repository reads it: STATUS.md on flotilla/status.
status_of() {
  git -C "$work/clone" fetch --quiet origin "+flotilla/status:refs/remotes/origin/flotilla/status" 2>/dev/null || return 1
  git -C "$work/clone" show "origin/flotilla/status:status.json" 2>/dev/null
}
# Waits until the controller has reconciled `$1` and every app succeeded; prints progress.
wait_converged() {
  local commit=$1 deadline=$((SECONDS + ${2:-240})) last=""
  while [ $SECONDS -lt $deadline ]; do
    if status_of > "$work/status.json"; then
      line=$(python3 - "$commit" "$work/status.json" "$DEVICES" <<'EOF'
import json, sys
status = json.load(open(sys.argv[2]))
parts = []
done = status["commit"] == sys.argv[1]
total = 0
for app in status["apps"]:
    for target in app["targets"]:
        parts.append(f'{app["name"]}/{target["group"]}@{target["version"]} {target["converged"]}/{target["devices"]}')
        done = done and target["state"] == "converged" and target["converged"] == target["devices"]
        total += target["devices"]
# Every device runs exactly one of the two apps (thermostats or gateways): all must be counted.
done = done and total == int(sys.argv[3])
print(("CONVERGED " if done else "") + "  ".join(parts))
EOF
)
      if [ "$line" != "$last" ]; then echo "    ${line#CONVERGED }"; last=$line; fi
      [[ $line == CONVERGED* ]] && return 0
    fi
    sleep 1
  done
  echo "not converged in time; the server's log:"; tail -n 20 "$work/serve.log"; return 1
}

say "Waiting for the fleet to converge on $(git -C "$work/clone" rev-parse --short HEAD) (converged/devices per app target)"
wait_converged "$(git -C "$work/clone" rev-parse HEAD)" 300

say "An operator bumps thermostat for the europe group to 2.4.2 and pushes"
sed -i 's|^    version: 2.4.1$|    version: 2.4.2|; s|thermostat/2.4.1/compose.yaml|thermostat/2.4.2/compose.yaml|' "$work/clone/apps/thermostat.yaml"
git -C "$work/clone" diff --stat
commit_and_push "thermostat 2.4.2 for Europe"
FLOTILLA_TOKEN=$operator "$flotilla" plan "$work/clone" --base HEAD~1 --head HEAD --server "http://127.0.0.1:$port" --limit 5 || true

say "The rollout, wave by wave, until the fleet converges again"
wait_converged "$(git -C "$work/clone" rev-parse HEAD)" 240

say "A bad release in one merge: thermostat 2.5.1 for the canary, and Europe after it"
echo "(the simulated devices are told that 2.5.1 installs fine and then its process crashes)"
sed -i 's|^    version: 2.5.0$|    version: 2.5.1|; s|thermostat/2.5.0/compose.yaml|thermostat/2.5.1/compose.yaml|; s|^    version: 2.4.2$|    version: 2.5.1|; s|thermostat/2.4.2/compose.yaml|thermostat/2.5.1/compose.yaml|' "$work/clone/apps/thermostat.yaml"
commit_and_push "thermostat 2.5.1 for canary, then Europe"
bad=$(git -C "$work/clone" rev-parse HEAD)
# The canary's health checks catch it; the rollout aborts and rolls back; Europe never starts.
deadline=$((SECONDS + 180)); last=""
while [ $SECONDS -lt $deadline ]; do
  if status_of > "$work/status.json"; then
    line=$(python3 - "$bad" "$work/status.json" <<'EOF'
import json, sys
status = json.load(open(sys.argv[2]))
app = next(app for app in status["apps"] if app["name"] == "thermostat")
targets = {target["group"]: target for target in app["targets"]}
canary, europe = targets["canary"], targets["europe"]
done = status["commit"] == sys.argv[1] and canary["state"] == "aborted" and europe["state"] == "waiting" and canary["updating"] == 0
print(("DONE " if done else "") + f'canary {canary["state"]} ({canary["failed"]} failed, {canary["updating"]} updating); '
      + f'europe {europe["state"]} {europe.get("reason", "")}')
EOF
)
    if [ "$line" != "$last" ]; then echo "    ${line#DONE }"; last=$line; fi
    [[ $line == DONE* ]] && break
  fi
  sleep 1
done
[[ $last == DONE* ]] || { echo "the canary did not abort in time; the server's log:"; tail -n 20 "$work/serve.log"; exit 1; }
FLOTILLA_TOKEN=$operator "$flotilla" status --server "http://127.0.0.1:$port" | sed -n '/^thermostat/,/^$/p' | head -n 12

say "What the controller wrote into the repository: git log --notes=flotilla"
git -C "$work/clone" fetch --quiet origin "+refs/notes/flotilla:refs/notes/flotilla"
git -C "$work/clone" log --notes=flotilla -3 --format='%h %s%n%N'

say "STATUS.md on the flotilla/status branch"
git -C "$work/clone" show origin/flotilla/status:STATUS.md

say "The simulator's last word"
grep "^sim:" "$work/sim.log" | tail -n 1 || true
if grep -qE "warning|error" "$work/serve.log"; then
  say "What the server warned about"
  grep -E "warning|error" "$work/serve.log" | tail -n 8
fi
if [ -n "$keep" ]; then
  say "Still running (--keep): the web console is at http://127.0.0.1:$port/"
  echo "sign in with the operator token: $operator"
  echo "the fleet repository's clone: $work/clone (commit and push there to roll out); Ctrl-C stops everything"
  wait "${pids[0]}" || true
fi
say "Done: everything started here is stopped now"
