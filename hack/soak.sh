#!/usr/bin/env bash
# Fleet-scale soak: simulated devices against three replicas on one PostgreSQL, with a rollout in
# the middle; reports each replica's memory over time, heartbeats acknowledged against stored,
# heartbeat latency as devices saw it, and the rollout's time (see hack/soak.py).
#   ./hack/soak.sh                       50,000 devices, 10 minutes
#   SOAK_DEVICES=10000 SOAK_MINUTES=4 ./hack/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

swift build -c release --product flotilla --scratch-path .build-release 2>&1 | tail -n 1
flotilla=$(swift build -c release --scratch-path .build-release --show-bin-path)/flotilla
# Every device holds a connection to its replica, and each simulator one per device.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
python3 hack/soak.py --flotilla "$flotilla" --devices "${SOAK_DEVICES:-50000}" --minutes "${SOAK_MINUTES:-10}" \
  --heartbeat "${SOAK_HEARTBEAT:-30}" "$@"
