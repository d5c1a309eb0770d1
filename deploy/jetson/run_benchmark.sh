#!/usr/bin/env bash
# Benchmark artifacts on a Jetson (JetPack 6) with `edgecnn bench` on the GPU: TensorRT and
# ONNX Runtime (CUDA), the precisions each artifact holds, batches above 1 only for
# dynamic-batch artifacts; plus the conditions no tool records by itself: power mode,
# jetson_clocks, GPU/EMC clocks, and power/temperature from tegrastats during timed calls.
# See README.md beside this.
#   bash deploy/jetson/run_benchmark.sh exports/mobilenet-a0.5-r224 [more artifacts...]
#   bash deploy/jetson/run_benchmark.sh --cpu exports/x     # CPU mode: any Linux machine
# Variables: PRECISION (default: what each artifact holds), BATCH (1,8), ITERS (500),
# WARMUP (50), POWER_SECONDS (10), OUT_DIR (benchmarks/jetson), MAX_CLOCKS (0; 1 locks the
# clocks with jetson_clocks for the run and restores them after), PYTHON (python3: the one
# edgecnn is installed for), JETSON_RELEASE (/etc/nv_tegra_release: what makes a Jetson).
set -euo pipefail

die() { echo "run_benchmark.sh: $1" >&2; exit "${2:-1}"; }

cpu=0
if [ "${1:-}" = --cpu ]; then cpu=1; shift; fi
[ $# -ge 1 ] || die "usage: $0 [--cpu] ARTIFACT_DIR..." 2
BATCH=${BATCH:-1,8}
ITERS=${ITERS:-500}
WARMUP=${WARMUP:-50}
POWER_SECONDS=${POWER_SECONDS:-10}
OUT_DIR=${OUT_DIR:-benchmarks/jetson}
RELEASE=${JETSON_RELEASE:-/etc/nv_tegra_release}
HERE=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
"$python" -c "import edgecnn.runtime" 2>/dev/null || die "edgecnn is not installed for \
$python: run setup.sh and activate its venv" 2
work=$(mktemp -d)
restore=0
cleanup() {
    rm -rf "$work"
    [ "$restore" = 0 ] || sudo -n jetson_clocks --restore "$work.clocks.conf" || true
    rm -f "$work.clocks.conf"
}
trap cleanup EXIT

# 1. Which machine. Not a Jetson: only the CPU mode. A Jetson whose tools fail: stop.
jetson=0
[ -f "$RELEASE" ] && jetson=1
[ "$jetson" = 1 ] || [ "$cpu" = 1 ] || die "not a Jetson (no $RELEASE); --cpu runs the CPU \
mode (ONNX Runtime on the CPU) on any machine" 2
tool() {  # run a board tool; its failure on a Jetson is one line and the end
    local out
    out=$("$@" 2>&1) || die "$1 failed on this Jetson: $(tail -n 1 <<<"${out:-no output}")"
    printf '%s' "$out"
}
if [ "$jetson" = 1 ] && [ "$cpu" = 0 ]; then
    board=$(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo jetson)
    l4t=$(head -n 1 "$RELEASE")
    command -v nvpmodel >/dev/null || die "nvpmodel not found on this Jetson (JetPack's \
nvidia-l4t-tools)"
    command -v tegrastats >/dev/null || die "tegrastats not found on this Jetson (JetPack's \
nvidia-l4t-tools)"
    command -v jetson_clocks >/dev/null || die "jetson_clocks not found on this Jetson"
    nvp=$(tool nvpmodel -q | head -n 1)
    if [ "${MAX_CLOCKS:-0}" = 1 ]; then
        tool sudo -n jetson_clocks --store "$work.clocks.conf" >/dev/null
        restore=1
        tool sudo -n jetson_clocks >/dev/null
    fi
    # "--show": clocks locked when the GPU's and EMC's min = max = current frequency.
    clocks=$(tool sudo -n jetson_clocks --show | grep -E '^(GPU|EMC)' | tr '\n' ';')
    device=cuda runtimes=tensorrt,onnxruntime sampler=--tegrastats
else  # the CPU mode (--cpu), on a Jetson or not: no board tools
    why="not a Jetson"
    [ "$jetson" = 0 ] || why="not recorded (--cpu)"
    board=$(uname -n) l4t=$why nvp=$why clocks=$why
    device=cpu runtimes=onnxruntime sampler=
fi

stem="$OUT_DIR/$(tr -cs 'A-Za-z0-9' '-' <<<"$board" | sed 's/-*$//' \
    | tr '[:upper:]' '[:lower:]')-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"

# 2. Per artifact: what it holds (precisions, static or dynamic batch), then the timed
#    runs (bench's own interleaved harness), then one power window per case.
n=0
: >"$work/power.jsonl"
for artifact in "$@"; do
    plan=$("$python" "$HERE/jetson.py" plan "$artifact" --precision "${PRECISION:-}" \
        --batch "$BATCH") || exit 2
    read -r precisions batches <<<"$plan"
    echo "$artifact: $precisions at batch $batches on $device ($runtimes)" >&2
    n=$((n + 1))
    "$python" -m edgecnn bench "$artifact" --runtime "$runtimes" --precision "$precisions" \
        --batch "$batches" --device "$device" --warmup "$WARMUP" --iters "$ITERS" \
        --no-progress --format json -o "$work/bench$n.json" >/dev/null
    for runtime in ${runtimes//,/ }; do
        for precision in ${precisions//,/ }; do
            for batch in ${batches//,/ }; do
                # shellcheck disable=SC2086  # $sampler is one flag or nothing
                "$python" "$HERE/jetson.py" power "$artifact" --runtime "$runtime" \
                    --precision "$precision" --batch "$batch" --device "$device" \
                    --seconds "$POWER_SECONDS" $sampler >>"$work/power.jsonl" || exit 1
            done
        done
    done
done

# 3. bench's JSON + markdown, with the conditions.
"$python" "$HERE/jetson.py" report --bench "$work"/bench*.json --power "$work/power.jsonl" \
    --out "$stem" --set "board=$board" "l4t=$l4t" "nvpmodel=$nvp" "jetson_clocks=$clocks" \
    "max_clocks=${MAX_CLOCKS:-0}" "power_seconds=$POWER_SECONDS" "device=$device" || exit 1
echo "wrote $stem.json and $stem.md"
