#!/usr/bin/env bash
# Fuzzes the parsers that read what others wrote, with libFuzzer (swiftc -sanitize=fuzzer,address).
#   ./hack/fuzz.sh                 every target, 60 s each
#   ./hack/fuzz.sh TARGET [SECONDS]
#   ./hack/fuzz.sh all SECONDS
# Targets: fuzz-fleet-yaml, fuzz-wire-json, fuzz-selector, fuzz-agent-config (sources in Fuzz/).
# Seeds are in Fuzz/corpus/TARGET; what a run learns is kept in .build-fuzz/corpus/TARGET, and a
# crashing input is written to .build-fuzz/artifacts/ and named in the output. Exits non-zero on a find.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(fuzz-fleet-yaml fuzz-wire-json fuzz-selector fuzz-agent-config)
which=${1:-all}
seconds=${2:-60}
if [ "$which" != all ]; then
    printf '%s\n' "${targets[@]}" | grep -qx "$which" || { echo "unknown fuzz target '$which'; one of: ${targets[*]}" >&2; exit 2; }
    targets=("$which")
fi
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "seconds must be a whole number, not '$seconds'" >&2; exit 2; }
[ -n "${FLOTILLA_SKIP_SETUP:-}" ] || source hack/setup.sh

# ld.bfd: gold stops with an internal error on the sanitizer runtime.
for target in "${targets[@]}"; do
    echo "==> build $target"
    FLOTILLA_FUZZ=1 swift build -c release --scratch-path .build-fuzz --product "$target" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=bfd 2> >(grep -v "Cannot export local symbol" >&2)
done
mkdir -p .build-fuzz/artifacts
# One target per core at a time; each says what it found when it ends.
fuzz() {
    local target=$1 work=.build-fuzz/corpus/$1 log=.build-fuzz/$1.log
    mkdir -p "$work"
    if ! .build-fuzz/release/"$target" "$work" "Fuzz/corpus/$target" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2048 -max_len=65536 -artifact_prefix=".build-fuzz/artifacts/$target-" -print_final_stats=1 > "$log" 2>&1; then
        { echo "!! $target found a failing input:"; grep -E "Fatal error|ERROR: |SUMMARY|Test unit written" "$log" | head -20; } >&2
        return 1
    fi
    echo "==> $target ran ${seconds}s (seeds Fuzz/corpus/$target)"
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$log" | sed "s/^/   /"
}
cores=$(nproc)
found=0
running=()
for target in "${targets[@]}"; do
    fuzz "$target" &
    running+=($!)
    if [ "${#running[@]}" -ge "$cores" ]; then
        wait "${running[0]}" || found=1
        running=("${running[@]:1}")
    fi
done
for pid in ${running[@]+"${running[@]}"}; do wait "$pid" || found=1; done
exit "$found"
