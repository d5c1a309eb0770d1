#!/usr/bin/env bash
# Benchmark artifacts on a Jetson with `edgecnn bench`: TensorRT and ONNX Runtime, written in
# the benchmark's own JSON/markdown format (see README.md beside this).
#   bash deploy/jetson/run_benchmark.sh exports/mobilenet-a0.5-r224 [more artifacts...]
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 ARTIFACT_DIR..." >&2; exit 2; }
BATCH=${BATCH:-1,8}
ITERS=${ITERS:-500}
WARMUP=${WARMUP:-50}
OUT_DIR=${OUT_DIR:-benchmarks/jetson}
[ -f /etc/nv_tegra_release ] || { echo "$0: not a Jetson" >&2; exit 2; }
command -v edgecnn >/dev/null || { echo "$0: edgecnn not found: run setup.sh and activate \
its venv" >&2; exit 2; }

board=$(tr -d '\0' < /proc/device-tree/model 2>/dev/null | tr -cs 'A-Za-z0-9' '-' \
        | sed 's/-$//' | tr 'A-Z' 'a-z')
stem="$OUT_DIR/${board:-jetson}-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"

# Fixed clocks make runs comparable; restore the board's own settings afterwards.
if [ "${MAX_CLOCKS:-0}" = 1 ]; then
    sudo jetson_clocks --store /tmp/edgecnn-clocks.conf
    trap 'sudo jetson_clocks --restore /tmp/edgecnn-clocks.conf' EXIT
    sudo jetson_clocks
fi
{
    echo "board: ${board}"
    head -n 1 /etc/nv_tegra_release
    (sudo -n nvpmodel -q 2>/dev/null || nvpmodel -q 2>/dev/null || echo "nvpmodel: unknown") \
        | tr '\n' ' '; echo
    echo "max clocks: ${MAX_CLOCKS:-0}"
} > "$stem.conditions.txt"

# int8 only when every artifact has its Q/DQ file.
precision=fp32,fp16
int8=1
for artifact in "$@"; do [ -f "$artifact/model.int8.onnx" ] || int8=0; done
[ "$int8" = 1 ] && precision=fp32,fp16,int8

edgecnn bench "$@" --runtime tensorrt,onnxruntime --precision "$precision" --batch "$BATCH" \
    --warmup "$WARMUP" --iters "$ITERS" --format json -o "$stem.json"
echo "wrote $stem.json and $stem.conditions.txt"
