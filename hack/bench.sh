#!/usr/bin/env bash
# Benchmarks, each printed as a ratio to a baseline measured in the same run.
#   ./hack/bench.sh            all benchmarks
#   ./hack/bench.sh plan [N]   planning N devices (default 1,000,000) × 3 apps, on one core
#   ./hack/bench.sh git [N]    polling an unchanged remote, N rounds (default 200), against git ls-remote
#   ./hack/bench.sh heartbeat  heartbeat ingest with wrk at 64 connections, against nginx answering 204;
#                              then resident memory with 100,000 registered devices
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

case "$which" in
  plan) bench_plan "${2:-}" ;;
  git) bench_git "${2:-}" ;;
  heartbeat) bench_heartbeat ;;
  all) bench_plan; bench_git; bench_heartbeat ;;
  *) echo "usage: hack/bench.sh [plan [DEVICES]|git [ROUNDS]|heartbeat|all]" >&2; exit 2 ;;
esac
