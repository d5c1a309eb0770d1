#!/usr/bin/env bash
# Benchmark artifacts on a Jetson (JetPack 6) with `edgecnn bench` on the GPU: TensorRT and
# ONNX Runtime (CUDA), the precisions each artifact holds, batches above 1 only for
# dynamic-batch artifacts; plus the conditions no tool records by itself, recorded by the
# same code as `edgecnn bench ART --remote jetson --device cuda` from a workstation: this runs
# its benches inside `python -m edgecnn.remote.jetson` (power mode, clocks pinned only with
# MAX_CLOCKS=1 and restored after, tegrastats during the run), plus a power window per case.
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
trap 'rm -rf "$work"' EXIT

# 1. Which machine. Not a Jetson: only the CPU mode. A Jetson without its tools: stop (one
#    that fails stops in edgecnn.remote.jetson --strict, before anything runs).
jetson=0
[ -f "$RELEASE" ] && jetson=1
[ "$jetson" = 1 ] || [ "$cpu" = 1 ] || die "not a Jetson (no $RELEASE); --cpu runs the CPU \
mode (ONNX Runtime on the CPU) on any machine" 2
wrap=()
if [ "${MAX_CLOCKS:-0}" = 1 ]; then wrap+=(--max-clocks); fi
if [ "$jetson" = 1 ] && [ "$cpu" = 0 ]; then
    board=$(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo jetson)
    for t in nvpmodel tegrastats jetson_clocks; do
        command -v "$t" >/dev/null || die "$t not found on this Jetson (JetPack's \
nvidia-l4t-tools)"
    done
    wrap+=(--strict)
    device=cuda runtimes=tensorrt,onnxruntime sampler=--tegrastats
else  # the CPU mode (--cpu), on a Jetson or not: no per-case tegrastats
    board=$(uname -n)
    device=cpu runtimes=onnxruntime sampler=
fi

stem="$OUT_DIR/$(tr -cs 'A-Za-z0-9' '-' <<<"$board" | sed 's/-*$//' \
    | tr '[:upper:]' '[:lower:]')-$(date +%Y%m%d-%H%M%S)"

# 2. Per artifact, what it holds (precisions, static or dynamic batch): every artifact
#    checked before anything runs.
for artifact in "$@"; do
    plan=$("$python" "$HERE/jetson.py" plan "$artifact" --precision "${PRECISION:-}" \
        --batch "$BATCH") || exit 2
    read -r precisions batches <<<"$plan"
    printf '%s\t%s\t%s\n' "$artifact" "$precisions" "$batches" >>"$work/plan.tsv"
done

# 3. The runs (bench's own interleaved harness per artifact, then one power window per
#    case), inside edgecnn.remote.jetson: what `edgecnn bench --remote` runs on a board.
# shellcheck disable=SC2086  # $sampler is one flag or nothing
"$python" -m edgecnn.remote.jetson --out "$work/jetson.json" "${wrap[@]}" -- \
    "$python" "$HERE/jetson.py" cases "$work/plan.tsv" --device "$device" \
    --runtime "$runtimes" --work "$work" --warmup "$WARMUP" --iters "$ITERS" \
    --seconds "$POWER_SECONDS" $sampler || exit $?

# 4. bench's JSON + markdown, with the conditions.
mkdir -p "$OUT_DIR"
"$python" "$HERE/jetson.py" report --bench "$work"/bench-*.json --power "$work/power.jsonl" \
    --jetson "$work/jetson.json" --out "$stem" --set "board=$board" \
    "max_clocks=${MAX_CLOCKS:-0}" "power_seconds=$POWER_SECONDS" "device=$device" || exit 1
echo "wrote $stem.json and $stem.md"
