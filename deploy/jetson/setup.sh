#!/usr/bin/env bash
# Set up edgecnn's torch-free runtime on a Jetson with JetPack 6 (see README.md beside this).
# Idempotent: running it again re-checks and repairs the venv.
set -euo pipefail

VENV=${VENV:-$HOME/edgecnn-venv}
JETSON_PIP_INDEX=${JETSON_PIP_INDEX:-https://pypi.jetson-ai-lab.io/jp6/cu126}
REPO=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "setup.sh: $*" >&2; exit 1; }

# 1. A Jetson, and which JetPack: L4T R36 is JetPack 6 (TensorRT 10), R35 JetPack 5
#    (TensorRT 8.5), R32 JetPack 4 (the Nano: TensorRT 8.2, Python 3.6).
RELEASE=${JETSON_RELEASE:-/etc/nv_tegra_release}
[ -f "$RELEASE" ] || die "not a Jetson (no $RELEASE)"
release=$(sed -n 's/^# R\([0-9]*\) .*/\1/p' "$RELEASE")
echo "found L4T: $(head -n 1 "$RELEASE")"
[ "${release:-0}" != 32 ] || die "L4T R32 is JetPack 4 (Jetson Nano: Python 3.6, TensorRT \
8.2): edgecnn's runtime cannot run there; time jetson-nano artifacts with deploy/nano/"
[ "${release:-0}" -ge 36 ] || die "L4T R${release:-?} is JetPack 5 (TensorRT 8.5): the \
tensorrt runner needs TensorRT 10 (JetPack 6); use --runtime onnxruntime there"

# 2. What JetPack provides is used, never replaced: CUDA from /usr/local/cuda, TensorRT's
#    Python bindings from its apt package (python3-libnvinfer), never a pip wheel.
[ -f /usr/local/cuda/version.json ] || die "no CUDA toolkit at /usr/local/cuda (install \
JetPack's nvidia-jetpack: sudo apt-get install nvidia-jetpack)"
cuda=$(/usr/bin/python3 -c 'import json
print(json.load(open("/usr/local/cuda/version.json"))["cuda"]["version"])') \
    || die "cannot read /usr/local/cuda/version.json"
echo "found CUDA $cuda (JetPack's, kept)"
if ! /usr/bin/python3 -c "import tensorrt" 2>/dev/null; then
    echo "installing JetPack's TensorRT Python bindings (python3-libnvinfer)"
    sudo apt-get update -q >/dev/null
    sudo apt-get install -y -q python3-libnvinfer python3-venv >/dev/null \
        || die "apt-get could not install python3-libnvinfer (JetPack's TensorRT bindings)"
fi
trt=$(/usr/bin/python3 -c "import tensorrt; print(tensorrt.__version__)") \
    || die "JetPack's TensorRT Python bindings do not import"
echo "found TensorRT $trt (JetPack's, kept)"
[ "${trt%%.*}" -ge 10 ] || die "TensorRT $trt is older than the 10.x the tensorrt runner \
and the jetson-orin recipe (TensorRT 10.3) need: update JetPack to 6.1 or later"

# 3. A venv that also sees the system site-packages (where tensorrt lives).
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip

# 4. edgecnn without its torch extra, and without PyPI's CPU-only onnxruntime (aarch64 wheels
#    there have no CUDA provider): onnxruntime-gpu from NVIDIA's Jetson index instead.
#    From a checkout: editable; from an installed kit (`edgecnn kit`): the wheel file in $WHEEL
#    (edgecnn is not on PyPI: build it in a checkout with `pip wheel --no-deps -w dist .`).
if [ -f "$REPO/pyproject.toml" ]; then
    python -m pip install --quiet --no-deps -e "$REPO"
else
    [ -f "${WHEEL:-}" ] || die "outside a checkout, set WHEEL to edgecnn's wheel file (edgecnn is not on PyPI; build it in a checkout: pip wheel --no-deps -w dist .)"
    python -m pip install --quiet --no-deps "$WHEEL"
fi
python -m pip install --quiet "numpy<2" "pillow>=10"
python -m pip uninstall --quiet -y onnxruntime 2>/dev/null || true
python -m pip install --quiet onnxruntime-gpu --index-url "$JETSON_PIP_INDEX" \
    || die "could not install onnxruntime-gpu from $JETSON_PIP_INDEX (set JETSON_PIP_INDEX to \
the Jetson AI Lab index of your JetPack/CUDA, e.g. .../jp6/cu122)"

# 5. cuda-python for the board's CUDA (major.minor of JetPack's toolkit).
cuda=${cuda%.*}
python -m pip install --quiet "cuda-python==${cuda}.*" || python -m pip install --quiet \
    "cuda-python>=${cuda%%.*},<$(( ${cuda%%.*} + 1 ))" \
    || die "could not install cuda-python for CUDA $cuda"

# 6. What we have now.
python - <<'PY'
import onnxruntime, tensorrt
from edgecnn.runtime.trt_runner import import_cudart
cudart = import_cudart()
err, props = cudart.cudaGetDeviceProperties(0)
name = props.name.decode() if isinstance(props.name, bytes) else props.name
print(f"tensorrt {tensorrt.__version__}, onnxruntime {onnxruntime.__version__} "
      f"{onnxruntime.get_available_providers()}")
print(f"GPU: {name.rstrip(chr(0))} (compute capability {props.major}.{props.minor})")
PY
echo "ready: source $VENV/bin/activate"
