#!/usr/bin/env bash
# Benchmarks, each printed as a ratio to a baseline measured in the same run.
#   ./hack/bench.sh            all benchmarks
#   ./hack/bench.sh plan [N]   planning N devices (default 1,000,000) × 3 apps, on one core
#   ./hack/bench.sh git [N]    polling an unchanged remote, N rounds (default 200), against git ls-remote
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

case "$which" in
  plan) bench_plan "${2:-}" ;;
  git) bench_git "${2:-}" ;;
  all) bench_plan; bench_git ;;
  *) echo "usage: hack/bench.sh [plan [DEVICES]|git [ROUNDS]|all]" >&2; exit 2 ;;
esac
