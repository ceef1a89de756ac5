#!/usr/bin/env bash
# Benchmarks, each printed as a ratio to a baseline measured in the same run.
#   ./hack/bench.sh            all benchmarks
#   ./hack/bench.sh plan [N]   planning N devices (default 1,000,000) × 3 apps, on one core
#   ./hack/bench.sh decide [N] one rollout decision for N devices (default 100,000) × 3 apps, against one
#                              pass over the same snapshot; and the simulator's scenarios per second
#   ./hack/bench.sh git [N]    polling an unchanged remote, N rounds (default 200), against git ls-remote
#   ./hack/bench.sh heartbeat  heartbeat ingest with wrk at 64 connections, against nginx answering 204;
#                              then resident memory with 100,000 registered devices
#   ./hack/bench.sh agent      the agent's stripped static binary and idle resident memory, against an
#                              empty static Swift program built the same way
#   ./hack/bench.sh controller commit → first execution, by push webhook and by poll (15 s), against one
#                              git fetch of the same repository
#   ./hack/bench.sh converge [N]
#                              N simulated devices (default 10,000) on the template fleet converging on a
#                              version bump of every thermostat target through the controller, against one
#                              deployment of a flow as long to all of them at once
#   ./hack/bench.sh sim [N]    N simulated devices (default 10,000) in one process: enrollment, steady
#                              heartbeats, and a deployment to all of them until it converges
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

which=${1:-all}

bench_plan() {
  echo "==> plan: release build"
  swift build -c release --product flotilla-bench 2>&1 | tail -n 1
  echo "==> plan: ${1:-1000000} devices × 3 apps, pinned to one core"
  taskset -c 0 "$(swift build -c release --show-bin-path)/flotilla-bench" "${1:-1000000}"
}

bench_decide() {
  echo "==> the rollout decision: ${1:-100000} devices × 3 apps, one core; then the simulator's speed"
  swift build -c release --product flotilla-decision-bench --scratch-path .build-release 2>&1 | tail -n 1
  taskset -c 0 .build-release/release/flotilla-decision-bench "${1:-100000}"
}

bench_git() {
  echo "==> git: release build"
  swift build -c release --product flotilla-git-bench 2>&1 | tail -n 1
  echo "==> git: polling an unchanged remote on a local git daemon, ${1:-200} rounds"
  "$(swift build -c release --show-bin-path)/flotilla-git-bench" "${1:-200}"
}

# Serves, enrolls, loads and measures on loopback; every process it starts is stopped on exit.
bench_heartbeat() {
  for tool in wrk nginx; do
    command -v "$tool" >/dev/null 2>&1 || { echo "==> heartbeat: installing $tool"; apt-get install -y -qq "$tool" >/dev/null; }
  done
  echo "==> heartbeat: release build"
  swift build -c release --product flotilla 2>&1 | tail -n 1
  local flotilla duration=${HEARTBEAT_SECONDS:-10} devices=${HEARTBEAT_DEVICES:-2000}
  flotilla="$(swift build -c release --show-bin-path)/flotilla"
  work=$(mktemp -d)
  cleanup() {
    if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
    if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null; fi
    rm -rf "$work"
  }
  trap cleanup EXIT

  local port=18480 nginx_port=18481
  token=$("$flotilla" token create --project bench --data "$work/data")
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "==> heartbeat: enrolling $devices devices"
  python3 hack/bench/enroll.py 127.0.0.1 "$port" "$token" "$devices" "$work/tokens"

  sed -e "s|PIDFILE|$work/nginx.pid|; s|ERRORLOG|$work/nginx.err|; s|TEMPDIR|$work/nginx-body|; s|PORT|$nginx_port|" \
    hack/bench/nginx.conf > "$work/nginx.conf"
  nginx -c "$work/nginx.conf" -p "$work"
  sleep 0.3

  echo "==> heartbeat: wrk, 2 threads, 64 connections, ${duration}s each"
  FLOTILLA_TOKENS="$work/tokens" wrk -t2 -c64 -d"${duration}s" -s hack/bench/heartbeat.lua "http://127.0.0.1:$nginx_port/agent/v1/heartbeat" > "$work/nginx.out"
  FLOTILLA_TOKENS="$work/tokens" wrk -t2 -c64 -d"${duration}s" -s hack/bench/heartbeat.lua "http://127.0.0.1:$port/agent/v1/heartbeat" > "$work/flotilla.out"
  # The framework's own ceiling on this machine: the same server answering an empty route.
  wrk -t2 -c64 -d"${duration}s" "http://127.0.0.1:$port/healthz" > "$work/empty.out"
  local nginx_rate flotilla_rate flotilla_requests flotilla_errors stored empty_rate
  nginx_rate=$(awk '/Requests\/sec/ {print $2}' "$work/nginx.out")
  flotilla_rate=$(awk '/Requests\/sec/ {print $2}' "$work/flotilla.out")
  flotilla_requests=$(awk '/requests in/ {print $1}' "$work/flotilla.out")
  flotilla_errors=$(awk '/Non-2xx/ {print $5}' "$work/flotilla.out")
  empty_rate=$(awk '/Requests\/sec/ {print $2}' "$work/empty.out")
  grep -E "Latency|Requests/sec|requests in|Non-2xx|Socket errors" "$work/flotilla.out" | sed 's/^/    flotilla /'
  grep -E "Latency|Requests/sec" "$work/nginx.out" | sed 's/^/    nginx    /'
  kill "$server"; wait "$server" 2>/dev/null; server=""
  stored=$(sqlite3 "$work/data/flotilla.sqlite" "SELECT count(*) FROM heartbeat")
  echo "nginx (204, no work):      $nginx_rate requests/s"
  echo "flotilla empty route:      $empty_rate requests/s (GET /healthz: HTTP server and middleware, no work)"
  echo "flotilla heartbeats:       $flotilla_rate requests/s (${flotilla_errors:-0} not 2xx)"
  echo "durable after shutdown:    $stored rows for $flotilla_requests completed requests"
  awk -v f="$flotilla_rate" -v n="$nginx_rate" 'BEGIN { printf "ratio flotilla / nginx:     %.2f×  (target ≥ 0.5×)\n", f / n }'
  awk -v e="$empty_rate" -v n="$nginx_rate" 'BEGIN { printf "ratio empty route / nginx:  %.2f×  (the most any handler could reach here)\n", e / n }'
  awk -v f="$flotilla_rate" -v e="$empty_rate" 'BEGIN { printf "ratio heartbeat / empty:    %.2f×\n", f / e }'

  echo "==> heartbeat: resident memory with 100,000 registered devices"
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" > "$work/serve2.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  token=$("$flotilla" token create --project bench --data "$work/data")
  python3 hack/bench/enroll.py 127.0.0.1 "$port" "$token" 100000 "$work/tokens-all"
  echo "registered devices:        $(sqlite3 "$work/data/flotilla.sqlite" "SELECT count(*) FROM device WHERE deleted = 0")"
  FLOTILLA_TOKENS="$work/tokens-all" wrk -t2 -c64 -d5s -s hack/bench/heartbeat.lua "http://127.0.0.1:$port/agent/v1/heartbeat" > /dev/null
  echo "resident memory (VmRSS):   $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status") after every device enrolled and 5 s of heartbeats"
  echo "peak resident (VmHWM):     $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
}

# The agent as shipped: release, static Swift standard library, stripped; idle after enrolling.
bench_agent() {
  echo "==> agent: release builds (static standard library)"
  swift build -c release --product flotilla-agent --static-swift-stdlib --scratch-path .build-agent 2>&1 | tail -n 1
  swift build -c release --product flotilla 2>&1 | tail -n 1
  local flotilla
  flotilla="$(swift build -c release --show-bin-path)/flotilla"
  work=$(mktemp -d)
  cleanup() {
    # SIGKILL for the floor: it is a bare program that may have inherited a blocked SIGTERM.
    if [ -n "${floor:-}" ]; then kill -KILL "$floor" 2>/dev/null || true; wait "$floor" 2>/dev/null || true; fi
    for pid in ${agent:-} ${server:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  cp .build-agent/release/flotilla-agent "$work/flotilla-agent"
  strip "$work/flotilla-agent"
  # The floor: a Swift program that only sleeps, built and stripped the same way.
  printf 'import Glibc\nwhile true { sleep(60) }\n' > "$work/floor.swift"
  swiftc -O -static-stdlib "$work/floor.swift" -o "$work/floor" && strip "$work/floor"

  local port=18482 token
  token=$("$flotilla" token create --project bench --data "$work/data")
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  "$work/flotilla-agent" --server "http://127.0.0.1:$port" --token "$token" --data "$work/agent" --hardware-id bench-1 \
    > "$work/agent.log" 2>&1 &
  agent=$!
  "$work/floor" & floor=$!
  echo "==> agent: enrolled and idle for ${AGENT_IDLE_SECONDS:-15} s (heartbeats, one long-poll open)"
  sleep "${AGENT_IDLE_SECONDS:-15}"
  grep -q "enrolled as" "$work/agent.log" || { echo "the agent did not enroll:"; cat "$work/agent.log"; exit 1; }
  local size floor_size rss pss private floor_rss
  size=$(stat -c %s "$work/flotilla-agent"); floor_size=$(stat -c %s "$work/floor")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$agent/smaps_rollup")
  private=$(awk '/^RssAnon/ {print $2}' "/proc/$agent/status")
  floor_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$floor/status")
  awk -v s="$size" -v f="$floor_size" 'BEGIN { printf "binary, stripped:          %.1f MB (empty Swift program: %.1f MB; target < 12 MB; Connect ~4 MB)\n", s / 1e6, f / 1e6 }'
  awk -v r="$rss" -v f="$floor_rss" 'BEGIN { printf "idle resident (VmRSS):     %.1f MB (empty Swift program: %.1f MB, ratio %.1f×; target < 10 MB; Connect ~11 MB)\n", r / 1024, f / 1024, r / f }'
  awk -v p="$pss" -v q="$private" 'BEGIN { printf "proportional (Pss):        %.1f MB; anonymous (heap, stacks): %.1f MB\n", p / 1024, q / 1024 }'
  echo "largest resident mappings (kB):"
  awk '/^[0-9a-f]+-/ {name=$6} /^Rss:/ {rss[name]+=$2} END {for (n in rss) if (rss[n] >= 256) printf "    %6d  %s\n", rss[n], (n == "" ? "[anonymous]" : n)}' \
    "/proc/$agent/smaps" | sort -rn | head -8
}

# Many devices in one `flotilla sim` process against a release server.
bench_sim() {
  local devices=${1:-10000}
  echo "==> sim: release build"
  swift build -c release --product flotilla 2>&1 | tail -n 1
  local flotilla
  flotilla="$(swift build -c release --show-bin-path)/flotilla"
  work=$(mktemp -d)
  cleanup() {
    for pid in ${sim:-} ${server:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  local port=18483 token operator
  token=$("$flotilla" token create --project bench --data "$work/data")
  operator=$("$flotilla" token create --project bench --operator --data "$work/data")
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --heartbeat-interval 10 > "$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "==> sim: $devices devices, heartbeat every 10 s, steps of 0.2-1.0 s"
  "$flotilla" sim --server "http://127.0.0.1:$port" --token "$token" --devices "$devices" --fail-rate 0 --offline-rate 0 \
    --step-seconds 0.2-1.0 --status-every 10 > "$work/sim.log" 2>&1 &
  sim=$!
  python3 hack/bench/fleet.py wait-online 127.0.0.1 "$port" "$operator" "$devices" 600
  local t0 t1 c0 c1
  t0=$(date +%s.%N); c0=$(awk '{print $14 + $15}' "/proc/$sim/stat")
  sleep 20
  t1=$(date +%s.%N); c1=$(awk '{print $14 + $15}' "/proc/$sim/stat")
  awk -v c="$((c1 - c0))" -v t0="$t0" -v t1="$t1" -v n="$devices" \
    'BEGIN { printf "steady state:              sim process at %.0f%% of one core for %d devices (%.1f ms of CPU per device-minute)\n", c / (t1 - t0), n, c * 10 / n * 60 / (t1 - t0) }'
  echo "sim resident (VmRSS):      $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$sim/status") ($(awk '/VmRSS/ {printf "%.1f kB", $2 / '"$devices"'}' "/proc/$sim/status") per device)"
  echo "server resident (VmRSS):   $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
  echo "==> sim: deploying to every device"
  python3 hack/bench/fleet.py deploy-all 127.0.0.1 "$port" "$operator" 2.5.0 600 | tee "$work/deploy.out"
  awk -F= '/converged_seconds/ { printf "convergence:               %.1f s against 1.2 s of simulated work per device (ratio %.1f×)\n", $2, $2 / 1.2 }' "$work/deploy.out"
  tail -n 1 "$work/sim.log"
}

# A fleet repository made from the template (after $1, a command run in its clone), served by
# git daemon, and a release `flotilla serve --repo` with a webhook secret; sets flotilla, work,
# port, token and operator, and stops all it starts on exit.
start_controlled_fleet() {
  local prepare=$1 git_port=$2 heartbeat=$3
  port=$4
  swift build -c release --product flotilla 2>&1 | tail -n 1
  flotilla="$(swift build -c release --show-bin-path)/flotilla"
  work=$(mktemp -d)
  cleanup() {
    for pid in ${sim:-} ${server:-} ${daemon:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  git init --quiet --bare "$work/fleet.git"
  git clone --quiet "$work/fleet.git" "$work/clone" 2>/dev/null
  cp -r fleet-repo-template/. "$work/clone/"
  (cd "$work/clone" && eval "$prepare")
  git -C "$work/clone" add --all
  git -C "$work/clone" -c user.name=Bench -c user.email=bench@example.com commit --quiet -m fleet
  git -C "$work/clone" push --quiet origin HEAD:main
  git daemon --reuseaddr --base-path="$work" --export-all --enable=receive-pack --listen=127.0.0.1 --port="$git_port" "$work" \
    > "$work/daemon.log" 2>&1 &
  daemon=$!
  sleep 0.5
  echo "webhook-secret" > "$work/secret"
  token=$("$flotilla" token create --project acme-climate --data "$work/data")
  operator=$("$flotilla" token create --project acme-climate --operator --data "$work/data")
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --repo "git://127.0.0.1:$git_port/fleet.git" \
    --webhook-secret-file "$work/secret" --heartbeat-interval "$heartbeat" > "$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

# The controller's reaction time, with 50 simulated devices on a template fleet.
bench_controller() {
  echo "==> controller: release build"
  start_controlled_fleet true 18484 5 18485
  "$flotilla" sim --server "http://127.0.0.1:$port" --token "$token" --devices 50 --fail-rate 0 --offline-rate 0 \
    --step-seconds 0.1-0.3 > "$work/sim.log" 2>&1 &
  sim=$!
  python3 hack/bench/fleet.py wait-online 127.0.0.1 "$port" "$operator" 50 120
  sleep 5
  echo "==> controller: ${CONTROLLER_ROUNDS:-3} rounds of a version bump, by webhook then by poll (every 15 s)"
  python3 hack/bench/controller.py "$work/clone" 127.0.0.1 "$port" "$operator" webhook-secret "${CONTROLLER_ROUNDS:-3}"
}

# The whole loop at scale: a version bump pushed to the fleet repository until every simulated
# device reports it, driven by the controller in waves.
bench_converge() {
  local devices=${1:-10000}
  echo "==> converge: release build"
  # The template's rollout is sized for tens of devices (10 at once, one failure tolerated);
  # a fleet of thousands says it in percentages.
  start_controlled_fleet "sed -i 's/maxUnavailable: 10 .*/maxUnavailable: 20%/' fleet.yaml && sed -i 's/maxFailures: 1\$/maxFailures: 1%/' apps/thermostat.yaml" \
    18486 10 18487
  # Thermostats only: the template's gateways take telemetry one device at a time.
  echo "==> converge: $devices thermostats, heartbeat every 10 s, 4 steps of 0.2-1.0 s each"
  "$flotilla" sim --server "http://127.0.0.1:$port" --token "$token" --devices "$devices" --fail-rate 0 --offline-rate 0 \
    --tag hw=rpi4:2,rpi3:1 --step-seconds 0.2-1.0 --status-every 30 > "$work/sim.log" 2>&1 &
  sim=$!
  python3 hack/bench/fleet.py wait-online 127.0.0.1 "$port" "$operator" "$devices" 900
  python3 hack/bench/converge.py "$work/clone" 127.0.0.1 "$port" "$operator" webhook-secret "$devices" 1800
  echo "server resident (VmRSS):   $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status"); peak $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
}

case "$which" in
  plan) bench_plan "${2:-}" ;;
  git) bench_git "${2:-}" ;;
  decide) bench_decide "${2:-}" ;;
  heartbeat) bench_heartbeat ;;
  agent) bench_agent ;;
  sim) bench_sim "${2:-}" ;;
  controller) bench_controller ;;
  converge) bench_converge "${2:-}" ;;
  all) bench_plan; bench_decide; bench_git; bench_heartbeat; bench_agent; bench_controller; bench_sim; bench_converge ;;
  *) echo "usage: hack/bench.sh [plan [DEVICES]|decide [DEVICES]|git [ROUNDS]|heartbeat|agent|controller|sim [DEVICES]|converge [DEVICES]|all]" >&2; exit 2 ;;
esac
