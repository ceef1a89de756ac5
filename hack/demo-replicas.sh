#!/usr/bin/env bash
# Flotilla beyond one machine: a throwaway PostgreSQL server, three `flotilla serve` replicas on
# it behind HAProxy (hack/replicas/haproxy.cfg), 60 devices simulated by `flotilla sim` talking
# to the load balancer only, and a version bump rolled out while the replica leading the
# controllers is killed with SIGKILL. Another takes over and the fleet converges anyway, with no
# device sent the same release twice. Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
extra_packages=(haproxy)
source hack/setup.sh

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
DEVICES=${DEMO_DEVICES:-60}

say "Building flotilla"
swift build --product flotilla 2>&1 | tail -n 1
flotilla=$(swift build --show-bin-path)/flotilla

work=$(mktemp -d)
# Beside $work, not in it: the server runs as the postgres user, who cannot enter $work (0700).
postgres_dir=$(mktemp -d /tmp/flotilla-demo-postgres.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ./hack/postgres.sh stop "$postgres_dir" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source hack/lib/fleet-demo.sh

say "A throwaway PostgreSQL server (hack/postgres.sh)"
admin=$(./hack/postgres.sh start "$postgres_dir")
psql --quiet "$admin" -c "CREATE DATABASE flotilla" >/dev/null
database="${admin%/postgres}/flotilla?sslmode=disable"
echo "$database"

say "A fleet repository made from fleet-repo-template/, served by git daemon"
start_fleet_repository

say "Three replicas of flotilla serve on that database, sharing their keys"
enrollment=$("$flotilla" token create --project acme-climate --data "$work/r1" --database "$database")
operator=$("$flotilla" token create --project acme-climate --operator --data "$work/r1" --database "$database")
mkdir -p "$work/keys"
declare -A replica_port replica_pid
start_replica() {
  local name=$1
  "$flotilla" serve --data "$work/$name" --database "$database" --replica-name "$name" --listen "127.0.0.1:${replica_port[$name]}" \
    --signing-key-file "$work/keys/device-signing-key.pem" --secret-key-file "$work/keys/secret-key" \
    --repo "$repo" --heartbeat-interval 2 --poll-interval 2 --reconcile-interval 1 >> "$work/$name.log" 2>&1 &
  replica_pid[$name]=$!
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:${replica_port[$name]}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "replica $name on 127.0.0.1:${replica_port[$name]}"
}
for name in r1 r2 r3; do replica_port[$name]=$(free_port); start_replica "$name"; done

say "HAProxy in front of them (hack/replicas/haproxy.cfg)"
export LB_PORT R1_PORT=${replica_port[r1]} R2_PORT=${replica_port[r2]} R3_PORT=${replica_port[r3]}
LB_PORT=$(free_port)
haproxy -f hack/replicas/haproxy.cfg -db > "$work/haproxy.log" 2>&1 &
pids+=($!)
lb="http://127.0.0.1:$LB_PORT"
for _ in $(seq 100); do curl -fs "$lb/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "load balancer on $lb"

# Which replica holds the controller lease, from each one's /metrics.
leader() {
  for name in r1 r2 r3; do
    if curl -fs "http://127.0.0.1:${replica_port[$name]}/metrics" 2>/dev/null | grep -q "flotilla_controller_leader{replica=\"$name\"} 1"; then
      echo "$name"
    fi
  done
}
# Waits until every device runs what the head commit wants, from the status any replica serves.
wait_converged() {
  local commit=$1 deadline=$((SECONDS + ${2:-240})) last=""
  while [ $SECONDS -lt $deadline ]; do
    if FLOTILLA_TOKEN=$operator "$flotilla" status --server "$lb" --format json > "$work/status.json" 2>/dev/null; then
      line=$(python3 - "$commit" "$work/status.json" "$DEVICES" <<'PY'
import json, sys
status = json.load(open(sys.argv[2]))
parts, total = [], 0
done = status["commit"] == sys.argv[1]
for app in status["apps"]:
    for target in app["targets"]:
        parts.append(f'{app["name"]}/{target["group"]}@{target["version"]} {target["converged"]}/{target["devices"]}')
        done = done and target["state"] == "converged" and target["converged"] == target["devices"]
        total += target["devices"]
done = done and total == int(sys.argv[3])
print(("CONVERGED " if done else "") + "  ".join(parts))
PY
)
      if [ "$line" != "$last" ]; then echo "    ${line#CONVERGED }"; last=$line; fi
      [[ $line == CONVERGED* ]] && return 0
    fi
    sleep 1
  done
  echo "not converged in time"; for name in r1 r2 r3; do echo "--- $name"; tail -n 10 "$work/$name.log"; done; return 1
}

say "Enrolling $DEVICES simulated devices through the load balancer"
"$flotilla" sim --server "$lb" --token "$enrollment" --devices "$DEVICES" --fail-rate 0 --offline-rate 0 \
  --step-seconds 0.3-1.5 --status-every 10 > "$work/sim.log" 2>&1 &
pids+=($!)
wait_converged "$(git -C "$work/clone" rev-parse HEAD)" 300
first=$(leader)
echo "replica $first leads the controllers"

say "An operator bumps thermostat for the europe group to 2.4.2; the leader is killed as it rolls it out"
sed -i 's|^    version: 2.4.1$|    version: 2.4.2|; s|thermostat/2.4.1/compose.yaml|thermostat/2.4.2/compose.yaml|' "$work/clone/apps/thermostat.yaml"
commit_and_push "thermostat 2.4.2 for Europe"
for _ in $(seq 300); do
  FLOTILLA_TOKEN=$operator "$flotilla" status --server "$lb" --format json 2>/dev/null | grep -q '"updating" *: *[1-9]' && break
  sleep 0.2
done
kill -9 "${replica_pid[$first]}"
wait "${replica_pid[$first]}" 2>/dev/null || true
killed_at=$SECONDS
echo "kill -9 replica $first (pid ${replica_pid[$first]}) with the rollout under way"
next=""
while [ -z "$next" ] && [ $((SECONDS - killed_at)) -lt 30 ]; do next=$(leader); sleep 0.5; done
[ -n "$next" ] || { echo "no replica took over"; exit 1; }
echo "replica $next took over after about $((SECONDS - killed_at)) s"

say "The rollout goes on under the new leader, until the fleet converges"
wait_converged "$(git -C "$work/clone" rev-parse HEAD)" 240
FLOTILLA_TOKEN=$operator "$flotilla" status --server "$lb" | tail -n 1

say "No device was sent the same release twice"
FLOTILLA_TOKEN=$operator python3 - "$lb" <<'PY'
import json, os, sys, urllib.request
base, token = sys.argv[1], os.environ["FLOTILLA_TOKEN"]
def get(path):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(request))
sent = {}
for deployment in get("/api/v1/deployments")["deployments"]:
    for execution in get("/api/v1/deployments/" + deployment["id"])["executions"]:
        key = (execution["deviceID"], deployment["digest"])
        sent[key] = sent.get(key, 0) + 1
twice = {key: count for key, count in sent.items() if count > 1}
print(f"{len(sent)} device releases sent, {len(twice)} of them twice")
sys.exit(1 if twice else 0)
PY
say "Done: everything started here is stopped now"
