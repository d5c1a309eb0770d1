#!/usr/bin/env bash
# Build and time a `jetson-nano` artifact's TensorRT engines with JetPack 4.6's own trtexec
# (TensorRT 8.2), on the Nano itself: edgecnn's runtime needs Python 3.10 and TensorRT 10,
# which JetPack 4.6 does not have. Writes edgecnn bench's JSON record format.
#   bash deploy/nano/trtexec_bench.sh exports/mnv1-nano            # fp16 and int8
#   bash deploy/nano/trtexec_bench.sh exports/mnv1-nano fp16
# fp16: model.onnx built with --fp16. int8: model.int8.onnx (the Q/DQ file: explicit
# quantization, no calibrator) built with --int8 --fp16. Variables: DURATION (10 s of timed
# queries), WARMUP_MS (500), BATCH (1; the artifact's own batch when static), OUT_DIR
# (benchmarks/nano), TRTEXEC (/usr/src/tensorrt/bin/trtexec), JETSON_RELEASE.
set -euo pipefail

die() { echo "trtexec_bench.sh: $1" >&2; exit "${2:-1}"; }

[ $# -ge 1 ] || die "usage: $0 ARTIFACT_DIR [fp16] [int8]" 2
artifact=${1%/}
shift
precisions=("$@")
[ ${#precisions[@]} -gt 0 ] || precisions=(fp16 int8)
HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=${DURATION:-10}
WARMUP_MS=${WARMUP_MS:-500}
BATCH=${BATCH:-1}
OUT_DIR=${OUT_DIR:-benchmarks/nano}
RELEASE=${JETSON_RELEASE:-/etc/nv_tegra_release}
TRTEXEC=${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}
NEED_TRT=8.2   # the jetson-nano recipe: opset 13, IR 7, what TensorRT 8.2's parser reads

# 1. The artifact: made for this target, holding the files asked for (checked first: no
#    board is needed to be told an artifact is wrong).
[ -f "$artifact/export.json" ] || die "$artifact: not an artifact directory (no export.json)" 2
read -r target opset ir < <(python3 - "$artifact/export.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(d.get("target", {}).get("name", "?"), d.get("opset", "?"), d.get("ir_version", "?"))
PY
) || die "$artifact/export.json is not readable JSON" 2
[ "$target" = jetson-nano ] || die "$artifact was exported for $target (opset $opset, IR \
$ir): TensorRT 8.2 on JetPack 4.6 reads opset <= 13 and IR <= 7; export it with \
--target jetson-nano" 2
for p in "${precisions[@]}"; do
    case $p in
        fp16) file=model.onnx ;;
        int8) file=model.int8.onnx ;;
        *) die "precision $p: trtexec_bench.sh times fp16 and int8" 2 ;;
    esac
    [ -f "$artifact/$file" ] || die "$artifact has no $p file ($file): export it with \
${p/fp16/--fp16}${p/int8/ --int8 --calib-data DATA}" 2
done

# 2. The board: a Jetson with trtexec of TensorRT >= 8.2.
[ -f "$RELEASE" ] || die "not a Jetson (no $RELEASE): this runs on the Nano itself" 2
[ -x "$TRTEXEC" ] || die "no trtexec at $TRTEXEC on this Jetson (JetPack's tensorrt \
package; set TRTEXEC)"
command -v tegrastats >/dev/null || die "tegrastats not found on this Jetson"
mkdir -p "$OUT_DIR"
work=$(mktemp -d)
sampler=
cleanup() { [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$TRTEXEC" --help >"$work/help.log" 2>&1 || true
version=$(python3 "$HERE/trtexec_report.py" version "$work/help.log" --need "$NEED_TRT") \
    || exit 1
board=$(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo jetson)
nvp=$(nvpmodel -q 2>&1 | head -n 1) || die "nvpmodel -q failed on this Jetson: $nvp"
clocks=$(sudo -n jetson_clocks --show 2>&1 | grep -E '^(GPU|EMC)' | tr '\n' ';') \
    || die "jetson_clocks --show failed on this Jetson (it needs sudo)"
stem="$OUT_DIR/$(basename "$artifact")-$(date +%Y%m%d-%H%M%S)"

# 3. Per precision: build once (not timed), then time the saved engine while tegrastats
#    samples every 100 ms; the lines before the timing (load + warm-up) are skipped.
for p in "${precisions[@]}"; do
    if [ "$p" = fp16 ]; then file=model.onnx flags=(--fp16); else
        file=model.int8.onnx flags=(--int8 --fp16); fi
    engine="$work/$p.engine"
    echo "building $artifact/$file ($p) with trtexec $version" >&2
    "$TRTEXEC" --onnx="$artifact/$file" "${flags[@]}" --workspace=1024 \
        --saveEngine="$engine" --buildOnly >"$work/$p.build.log" 2>&1 \
        || die "trtexec could not build $file: $(grep -m 1 -E 'ERROR|Error' \
"$work/$p.build.log" || tail -n 1 "$work/$p.build.log")"
    tegrastats --interval 100 >"$work/$p.tegrastats" &
    sampler=$!
    sleep 1
    skip=$(( $(wc -l <"$work/$p.tegrastats") + WARMUP_MS / 100 + 10 ))
    "$TRTEXEC" --loadEngine="$engine" --warmUp="$WARMUP_MS" --duration="$DURATION" \
        --iterations=1 --exportTimes="$work/$p.times.json" >"$work/$p.log" 2>&1 \
        || die "trtexec could not run the $p engine: $(tail -n 1 "$work/$p.log")"
    kill "$sampler"
    sampler=
    python3 "$HERE/trtexec_report.py" record "$work/$p.log" --times "$work/$p.times.json" \
        --model "$(basename "$artifact")" --precision "$p" --batch "$BATCH" \
        --tegrastats "$work/$p.tegrastats" --skip "$skip" --out "$stem-$p.json" \
        --set "board=$board" "l4t=$(head -n 1 "$RELEASE")" "nvpmodel=$nvp" \
        "jetson_clocks=$clocks" "trtexec=$TRTEXEC" "duration_s=$DURATION" \
        "warmup_ms=$WARMUP_MS" || exit 1
    echo "wrote $stem-$p.json"
done
