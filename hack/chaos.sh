#!/usr/bin/env bash
# Three replicas on one PostgreSQL database, a rollout in waves, and replicas killed with SIGKILL
# at random moments (the leader among them), then checks that every device converged, none got a
# release twice, no execution is lost or stuck, and every acknowledged heartbeat is stored.
#   ./hack/chaos.sh [SEED…]          one run per seed (default: three random seeds)
#   CHAOS_DEVICES=1000 CHAOS_KILLS=10 ./hack/chaos.sh 7
set -euo pipefail
cd "$(dirname "$0")/.."
extra_packages=(haproxy)
source hack/setup.sh

swift build -c release --product flotilla --scratch-path .build-release 2>&1 | tail -n 1
flotilla=$(swift build -c release --scratch-path .build-release --show-bin-path)/flotilla

seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=($RANDOM $RANDOM $RANDOM)
failed=0
for seed in "${seeds[@]}"; do
  python3 hack/chaos.py --flotilla "$flotilla" --seed "$seed" --devices "${CHAOS_DEVICES:-1000}" --kills "${CHAOS_KILLS:-10}" || failed=1
done
exit $failed
