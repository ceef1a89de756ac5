#!/usr/bin/env bash
# Benchmarks, each printed as a ratio to a baseline measured in the same run.
#   ./hack/bench.sh            all benchmarks
#   ./hack/bench.sh plan [N]   planning N devices (default 1,000,000) × 3 apps, on one core
#   ./hack/bench.sh decide [N] one rollout decision for N devices (default 100,000) × 3 apps, against one
#                              pass over the same snapshot; and the simulator's scenarios per second
#   ./hack/bench.sh git [N]    polling an unchanged remote, N rounds (default 200), against git ls-remote
#   ./hack/bench.sh heartbeat  heartbeat ingest with wrk at 64 connections, against a bare Hummingbird app
#                              that reads the body and answers 204 (and nginx); then resident memory with
#                              100,000 registered devices
#   ./hack/bench.sh connections [N]
#                              resident memory with N devices (default 10,000) each holding a long-poll and
#                              heartbeating, against the bare Hummingbird app holding as many long-polls;
#                              CONNECTIONS_HEARTBEATS=own: each device's heartbeats on a connection of its own
#   ./hack/bench.sh heartbeat-postgres
#                              heartbeat ingest on a throwaway PostgreSQL, against pgbench's simple update
#                              on the same server
#   ./hack/bench.sh agent      the agent's stripped static binary and idle resident memory, against an
#                              empty static Swift program built the same way
#   ./hack/bench.sh controller commit → first execution, by push webhook and by poll (15 s), against one
#                              git fetch of the same repository
#   ./hack/bench.sh converge [N]
#                              N simulated devices (default 10,000) on the template fleet converging on a
#                              version bump of every thermostat target through the controller, against one
#                              deployment of a flow as long to all of them at once
#   ./hack/bench.sh metrics [N]
#                              the metrics history's size: N devices (default 10,000) × a day of heartbeats at
#                              25 s through the SQLite store, raw and rolled up, against the heartbeats' own JSON
#   ./hack/bench.sh history [N]
#                              what a controller pass reads of a long history: N devices (default 10,000) × 30
#                              releases in SQLite, read as the controller does, against their key columns alone
#   ./hack/bench.sh console [N]
#                              the web console's server time with N devices (default 100,000) in SQLite: the
#                              overview, device list pages and a device's page, against GET /api/v1/devices
#   ./hack/bench.sh sim [N]    N simulated devices (default 10,000) in one process: enrollment, steady
#                              heartbeats, and a deployment to all of them until it converges
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

which=${1:-all}

# Every release build in one scratch directory (shared with hack/chaos.sh), so a product built
# for one benchmark is not built again for the next; a failed build stops the run with its errors.
release=.build-release/release
release_build() {
  local log
  log=$(mktemp)
  if ! swift build -c release --product "$1" --scratch-path .build-release > "$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
  fi
  tail -n 1 "$log"; rm -f "$log"
}

bench_console() {
  echo "==> console: release build"
  release_build flotilla-console-bench
  echo "==> console: ${1:-100000} devices in SQLite; the median of 15 requests each, in process"
  "$release/flotilla-console-bench" "${1:-100000}"
}

bench_plan() {
  echo "==> plan: release build"
  release_build flotilla-bench
  echo "==> plan: ${1:-1000000} devices × 3 apps, pinned to one core"
  taskset -c 0 "$release/flotilla-bench" "${1:-1000000}"
}

bench_decide() {
  echo "==> the rollout decision: ${1:-100000} devices × 3 apps, one core; then the simulator's speed"
  release_build flotilla-decision-bench
  taskset -c 0 "$release/flotilla-decision-bench" "${1:-100000}"
}

bench_metrics() {
  echo "==> the metrics history: ${1:-10000} devices × a day of heartbeats, release build"
  release_build flotilla-metrics-bench
  "$release/flotilla-metrics-bench" "${1:-10000}"
}

bench_history() {
  echo "==> a long history: ${1:-10000} devices × 30 releases, read as a controller pass reads it, release build"
  release_build flotilla-history-bench
  "$release/flotilla-history-bench" "${1:-10000}"
}

bench_git() {
  echo "==> git: release build"
  release_build flotilla-git-bench
  echo "==> git: polling an unchanged remote on a local git daemon, ${1:-200} rounds"
  "$release/flotilla-git-bench" "${1:-200}"
}

# wrk's requests per second, from its output file.
wrk_rate() { awk '/Requests\/sec/ {print $2}' "$1"; }

# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }

# Starts a release `flotilla serve` on 127.0.0.1:PORT (on $work/data, with any further serve
# flags) and the bare app on CEILING_PORT, and enrolls DEVICES devices, their tokens in
# $work/tokens. Sets server, ceiling and token; the caller's trap stops both.
serve_beside_ceiling() {  # NAME PORT CEILING_PORT DEVICES [SERVE FLAGS...]
  local name=$1 port=$2 ceiling_port=$3 devices=$4
  shift 4
  token=$("$release/flotilla" token create --project bench --data "$work/data")
  # Enrollment is not what is measured, and N devices may be more than a token's burst.
  "$release/flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --enrollment-rate 0 "$@" ${BENCH_SERVE_FLAGS:-} > "$work/serve.log" 2>&1 &
  server=$!
  "$release/flotilla-heartbeat-ceiling" "$ceiling_port" > "$work/ceiling.log" 2>&1 &
  ceiling=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "==> $name: enrolling $devices devices"
  python3 hack/bench/enroll.py 127.0.0.1 "$port" "$token" "$devices" "$work/tokens"
}

# Serves, enrolls, loads and measures on loopback; every process it starts is stopped on exit.
# The durable heartbeat against the bare Hummingbird app that only reads the same body and answers
# 204 (the ceiling any handler on this HTTP stack could reach), and nginx for scale.
bench_heartbeat() {
  for tool in wrk nginx; do
    command -v "$tool" >/dev/null 2>&1 || { echo "==> heartbeat: installing $tool"; apt-get install -y -qq "$tool" >/dev/null; }
  done
  echo "==> heartbeat: release builds"
  release_build flotilla
  release_build flotilla-heartbeat-ceiling
  local flotilla duration=${HEARTBEAT_SECONDS:-10} devices=${HEARTBEAT_DEVICES:-2000}
  flotilla="$release/flotilla"
  work=$(mktemp -d)
  cleanup() {
    for pid in ${server:-} ${ceiling:-}; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null; fi
    rm -rf "$work"
  }
  trap cleanup EXIT

  local port=18480 nginx_port=18481 ceiling_port=18488
  serve_beside_ceiling heartbeat "$port" "$ceiling_port" "$devices"

  sed -e "s|PIDFILE|$work/nginx.pid|; s|ERRORLOG|$work/nginx.err|; s|TEMPDIR|$work/nginx-body|; s|PORT|$nginx_port|" \
    hack/bench/nginx.conf > "$work/nginx.conf"
  nginx -c "$work/nginx.conf" -p "$work"
  sleep 0.3

  echo "==> heartbeat: wrk, 2 threads, 64 connections, ${duration}s each: nginx, bare app, flotilla, bare app again"
  load() { FLOTILLA_TOKENS="$work/tokens" wrk -t2 -c64 -d"${duration}s" -s hack/bench/heartbeat.lua "http://127.0.0.1:$1/agent/v1/heartbeat" > "$2"; }
  load "$nginx_port" "$work/nginx.out"
  load "$ceiling_port" "$work/ceiling1.out"
  local cpu0 cpu1
  cpu0=$(cpu_seconds "$server")
  load "$port" "$work/flotilla.out"
  cpu1=$(cpu_seconds "$server")
  load "$ceiling_port" "$work/ceiling2.out"
  # The same server answering an empty route: its HTTP server and middleware, no work.
  wrk -t2 -c64 -d"${duration}s" "http://127.0.0.1:$port/healthz" > "$work/empty.out"
  local nginx_rate flotilla_rate flotilla_requests flotilla_errors stored empty_rate ceiling_rate
  nginx_rate=$(wrk_rate "$work/nginx.out")
  flotilla_rate=$(wrk_rate "$work/flotilla.out")
  ceiling_rate=$(awk -v a="$(wrk_rate "$work/ceiling1.out")" -v b="$(wrk_rate "$work/ceiling2.out")" 'BEGIN {printf "%.2f", (a + b) / 2}')
  flotilla_requests=$(awk '/requests in/ {print $1}' "$work/flotilla.out")
  flotilla_errors=$(awk '/Non-2xx/ {print $5}' "$work/flotilla.out")
  empty_rate=$(wrk_rate "$work/empty.out")
  grep -E "Latency|Requests/sec|requests in|Non-2xx|Socket errors" "$work/flotilla.out" | sed 's/^/    flotilla /'
  grep -E "Latency|Requests/sec" "$work/ceiling1.out" "$work/ceiling2.out" | sed "s|^$work/|    |"
  kill "$server"; wait "$server" 2>/dev/null; server=""
  stored=$(sqlite3 "$work/data/flotilla.sqlite" "SELECT count(*) FROM heartbeat")
  echo "nginx (204, no work):      $nginx_rate requests/s"
  echo "bare Hummingbird app:      $ceiling_rate requests/s (reads the body, answers 204; mean of the runs before and after)"
  echo "flotilla empty route:      $empty_rate requests/s (GET /healthz: HTTP server and middleware, no work)"
  echo "flotilla heartbeats:       $flotilla_rate requests/s (${flotilla_errors:-0} not 2xx)"
  awk -v c="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')" -v n="$flotilla_requests" \
    'BEGIN { printf "server CPU per heartbeat:  %.0f µs\n", c / n * 1e6 }'
  echo "durable after shutdown:    $stored rows for $flotilla_requests completed requests"
  awk -v f="$flotilla_rate" -v c="$ceiling_rate" 'BEGIN { printf "ratio heartbeat / bare app: %.2f×  (target ≥ 0.8×)\n", f / c }'
  awk -v c="$ceiling_rate" -v n="$nginx_rate" 'BEGIN { printf "ratio bare app / nginx:     %.2f×\n", c / n }'
  awk -v f="$flotilla_rate" -v e="$empty_rate" 'BEGIN { printf "ratio heartbeat / empty:    %.2f×\n", f / e }'

  echo "==> heartbeat: resident memory with 100,000 registered devices"
  # 100,000 enrollments at once: ten times an enrollment token's burst.
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --enrollment-rate 0 > "$work/serve2.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  token=$("$flotilla" token create --project bench --data "$work/data")
  python3 hack/bench/enroll.py 127.0.0.1 "$port" "$token" 100000 "$work/tokens-all"
  echo "registered devices:        $(sqlite3 "$work/data/flotilla.sqlite" "SELECT count(*) FROM device WHERE deleted = 0")"
  FLOTILLA_TOKENS="$work/tokens-all" wrk -t2 -c64 -d5s -s hack/bench/heartbeat.lua "http://127.0.0.1:$port/agent/v1/heartbeat" > /dev/null
  echo "resident memory (VmRSS):   $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status") after every device enrolled and 5 s of heartbeats"
  echo "peak resident (VmHWM):     $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
}

# What a server holds per connected device: N long-polls parked (one connection each, as agents
# keep them) and heartbeats from every device, against the bare Hummingbird app holding the same
# long-polls with nothing behind them. The client is hack/bench/hold.py.
bench_connections() {
  echo "==> connections: release builds"
  release_build flotilla
  release_build flotilla-heartbeat-ceiling
  local devices=${1:-10000} hold=${CONNECTIONS_HOLD_SECONDS:-40} lanes=${CONNECTIONS_HEARTBEATS:-shared}
  work=$(mktemp -d)
  cleanup() {
    for pid in ${holder:-} ${server:-} ${ceiling:-}; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
  # Holds the long-polls until they are all parked and $hold seconds have passed; prints the
  # server's resident memory then.
  measure() {  # PID PORT TOKENS HEARTBEAT_EVERY
    python3 hack/bench/hold.py 127.0.0.1 "$2" "$3" "$devices" $((hold + 30)) "$4" "$lanes" > "$work/hold.out" 2>&1 &
    holder=$!
    until grep -q "^parked" "$work/hold.out" 2>/dev/null; do
      kill -0 "$holder" 2>/dev/null || { cat "$work/hold.out" >&2; exit 1; }
      sleep 1
    done
    sed 's/^/    /' "$work/hold.out" >&2
    sleep "$hold"
    rss "$1"
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; holder=""
  }

  local port=18490 ceiling_port=18498
  serve_beside_ceiling connections "$port" "$ceiling_port" "$devices" --heartbeat-interval 25
  local ceiling_idle ceiling_held flotilla_idle flotilla_held
  ceiling_idle=$(rss "$ceiling")
  flotilla_idle=$(rss "$server")
  echo "==> connections: heartbeats over $([ "$lanes" = own ] && echo "a connection of each device's own" || echo "64 shared connections")"
  echo "==> connections: the bare app, $devices long-polls and heartbeats every 25 s, held ${hold}s"
  ceiling_held=$(measure "$ceiling" "$ceiling_port" "$work/tokens" 25)
  echo "==> connections: flotilla, $devices devices long-polling and heartbeating every 25 s, held ${hold}s"
  flotilla_held=$(measure "$server" "$port" "$work/tokens" 25)
  local stored
  stored=$(sqlite3 "$work/data/flotilla.sqlite" "SELECT count(*) FROM heartbeat")
  echo "bare app resident:         ${ceiling_idle} MB idle, ${ceiling_held} MB holding $devices long-polls"
  echo "flotilla resident:         ${flotilla_idle} MB with $devices devices enrolled, ${flotilla_held} MB with each long-polling and heartbeating ($stored heartbeats stored)"
  awk -v f="$flotilla_held" -v c="$ceiling_held" -v n="$devices" -v fi="$flotilla_idle" -v ci="$ceiling_idle" 'BEGIN {
    printf "per waiting device:        bare app %.1f kB, flotilla %.1f kB (above each one idle)\n", (c - ci) * 1024 / n, (f - fi) * 1024 / n
    printf "ratio flotilla / bare app: %.2f× resident  (target: under 200 MB at 10,000 devices)\n", f / c }'
}

# Heartbeat ingest on PostgreSQL: a throwaway server (hack/postgres.sh), pgbench's simple-update
# transaction (-N) at the same concurrency as the baseline, then flotilla serve on that server.
bench_heartbeat_postgres() {
  command -v wrk >/dev/null 2>&1 || { echo "==> heartbeat-postgres: installing wrk"; apt-get install -y -qq wrk >/dev/null; }
  echo "==> heartbeat-postgres: release build"
  release_build flotilla
  local flotilla duration=${HEARTBEAT_SECONDS:-10} devices=${HEARTBEAT_DEVICES:-2000} url pgbin
  flotilla="$release/flotilla"
  work=$(mktemp -d)
  pgdir=$(mktemp -d /tmp/flotilla-bench-postgres.XXXXXX)
  cleanup() {
    if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
    hack/postgres.sh stop "$pgdir"
    rm -rf "$work"
  }
  trap cleanup EXIT
  url=$(hack/postgres.sh start "$pgdir")
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  "$pgbin/psql" -q "$url" -c "CREATE DATABASE pgbench" -c "CREATE DATABASE flotilla"
  echo "==> heartbeat-postgres: pgbench -N (simple update), 64 clients, 2 threads, ${duration}s"
  "$pgbin/pgbench" -q -i -s 10 "${url%/postgres}/pgbench" > "$work/pgbench-init.log" 2>&1
  "$pgbin/pgbench" -N -c 64 -j 2 -T "$duration" "${url%/postgres}/pgbench" > "$work/pgbench.out" 2>&1
  local pgbench_tps
  pgbench_tps=$(awk '/^tps = / {print $3}' "$work/pgbench.out")

  local port=18489
  token=$("$flotilla" token create --project bench --database "${url%/postgres}/flotilla")
  "$flotilla" serve --database "${url%/postgres}/flotilla" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "==> heartbeat-postgres: enrolling $devices devices, then wrk, 64 connections, ${duration}s"
  python3 hack/bench/enroll.py 127.0.0.1 "$port" "$token" "$devices" "$work/tokens"
  local cpu0 cpu1
  cpu0=$(cpu_seconds "$server")
  FLOTILLA_TOKENS="$work/tokens" wrk -t2 -c64 -d"${duration}s" -s hack/bench/heartbeat.lua "http://127.0.0.1:$port/agent/v1/heartbeat" > "$work/flotilla.out"
  cpu1=$(cpu_seconds "$server")
  kill "$server"; wait "$server" 2>/dev/null; server=""
  local rate requests errors stored
  rate=$(wrk_rate "$work/flotilla.out")
  requests=$(awk '/requests in/ {print $1}' "$work/flotilla.out")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/flotilla.out")
  stored=$("$pgbin/psql" -tA "${url%/postgres}/flotilla" -c "SELECT count(*) FROM heartbeat")
  grep -E "Latency|Requests/sec|requests in|Non-2xx|Socket errors" "$work/flotilla.out" | sed 's/^/    flotilla /'
  grep -E "^(latency|tps)" "$work/pgbench.out" | sed 's/^/    pgbench  /'
  echo "pgbench simple update:     $pgbench_tps transactions/s (each: one update, one select, one insert, committed)"
  echo "flotilla heartbeats:       $rate requests/s (${errors:-0} not 2xx)"
  awk -v c="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')" -v n="$requests" \
    'BEGIN { printf "server CPU per heartbeat:  %.0f µs (flotilla process only)\n", c / n * 1e6 }'
  echo "durable after shutdown:    $stored rows for $requests completed requests"
  awk -v f="$rate" -v p="$pgbench_tps" 'BEGIN { printf "ratio heartbeats / pgbench: %.2f×\n", f / p }'
}

# The agent as shipped: release, static Swift standard library, stripped; idle after enrolling.
bench_agent() {
  echo "==> agent: release builds (static standard library)"
  swift build -c release --product flotilla-agent --static-swift-stdlib --scratch-path .build-agent 2>&1 | tail -n 1
  release_build flotilla
  local flotilla
  flotilla="$release/flotilla"
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
  release_build flotilla
  local flotilla
  flotilla="$release/flotilla"
  work=$(mktemp -d)
  cleanup() {
    for pid in ${sim:-} ${server:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  local port=18483 token operator
  token=$("$flotilla" token create --project bench --data "$work/data")
  operator=$("$flotilla" token create --project bench --operator --data "$work/data")
  "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --heartbeat-interval 10 --enrollment-rate 0 > "$work/serve.log" 2>&1 &
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
  release_build flotilla
  flotilla="$release/flotilla"
  work=$(mktemp -d)
  cleanup() {
    for pid in ${sim:-} ${server:-} ${daemon:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    # Under BENCH_SERVER_PREFIX the pid is the profiler's: the server is found by its address.
    pkill -f -- "serve --data $work/data" 2>/dev/null || true
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
  # BENCH_SERVER_PREFIX runs the server under a profiler, e.g. "heaptrack -o /tmp/converge";
  # BENCH_SERVE_FLAGS adds flags to its command line, e.g. "--idle-timeout 5".
  ${BENCH_SERVER_PREFIX:-} "$flotilla" serve --data "$work/data" --listen "127.0.0.1:$port" --repo "git://127.0.0.1:$git_port/fleet.git" \
    --webhook-secret-file "$work/secret" --heartbeat-interval "$heartbeat" --enrollment-rate 0 ${BENCH_SERVE_FLAGS:-} > "$work/serve.log" 2>&1 &
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
  python3 hack/bench/converge.py "$work/clone" 127.0.0.1 "$port" "$operator" webhook-secret "$devices" 1800 "$server"
  echo "server resident (VmRSS):   $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status"); peak $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
}

case "$which" in
  plan) bench_plan "${2:-}" ;;
  git) bench_git "${2:-}" ;;
  decide) bench_decide "${2:-}" ;;
  heartbeat) bench_heartbeat ;;
  heartbeat-postgres) bench_heartbeat_postgres ;;
  connections) bench_connections "${2:-}" ;;
  agent) bench_agent ;;
  sim) bench_sim "${2:-}" ;;
  controller) bench_controller ;;
  converge) bench_converge "${2:-}" ;;
  metrics) bench_metrics "${2:-}" ;;
  history) bench_history "${2:-}" ;;
  console) bench_console "${2:-}" ;;
  all) bench_plan; bench_decide; bench_git; bench_heartbeat; bench_heartbeat_postgres; bench_connections; bench_agent; bench_controller; bench_sim; bench_converge; bench_metrics; bench_history; bench_console ;;
  *) echo "usage: hack/bench.sh [plan [DEVICES]|decide [DEVICES]|git [ROUNDS]|heartbeat|heartbeat-postgres|connections [DEVICES]|agent|controller|sim [DEVICES]|converge [DEVICES]|metrics [DEVICES]|history [DEVICES]|console [DEVICES]|all]" >&2; exit 2 ;;
esac
