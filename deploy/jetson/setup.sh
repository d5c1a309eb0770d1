#!/usr/bin/env bash
# Set up edgecnn's torch-free runtime on a Jetson with JetPack 6 (see README.md beside this).
# Idempotent: running it again re-checks and repairs the venv.
set -euo pipefail

VENV=${VENV:-$HOME/edgecnn-venv}
JETSON_PIP_INDEX=${JETSON_PIP_INDEX:-https://pypi.jetson-ai-lab.io/jp6/cu126}
REPO=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "setup.sh: $*" >&2; exit 1; }

# 1. A Jetson, and which JetPack: L4T R36 is JetPack 6 (TensorRT 10), R35 is JetPack 5.
[ -f /etc/nv_tegra_release ] || die "not a Jetson (no /etc/nv_tegra_release)"
release=$(sed -n 's/^# R\([0-9]*\) .*/\1/p' /etc/nv_tegra_release)
echo "L4T: $(head -n 1 /etc/nv_tegra_release)"
[ "${release:-0}" -ge 36 ] || die "L4T R${release:-?} is JetPack 5 or older (TensorRT 8): the \
tensorrt runner needs TensorRT 10; use --runtime onnxruntime there"

# 2. TensorRT's Python bindings are JetPack's apt packages, not a pip wheel.
if ! /usr/bin/python3 -c "import tensorrt" 2>/dev/null; then
    echo "installing JetPack's TensorRT Python bindings (python3-libnvinfer)"
    sudo apt-get update
    sudo apt-get install -y python3-libnvinfer python3-venv
fi

# 3. A venv that also sees the system site-packages (where tensorrt lives).
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip

# 4. edgecnn without its torch extra, and without PyPI's CPU-only onnxruntime (aarch64 wheels
#    there have no CUDA provider): onnxruntime-gpu from NVIDIA's Jetson index instead.
python -m pip install --quiet --no-deps -e "$REPO"
python -m pip install --quiet "numpy<2" "pillow>=10"
python -m pip uninstall --quiet -y onnxruntime 2>/dev/null || true
python -m pip install --quiet onnxruntime-gpu --index-url "$JETSON_PIP_INDEX" \
    || die "could not install onnxruntime-gpu from $JETSON_PIP_INDEX (set JETSON_PIP_INDEX to \
the Jetson AI Lab index of your JetPack/CUDA, e.g. .../jp6/cu122)"

# 5. cuda-python for the board's CUDA (major.minor from the toolkit's version.json).
cuda=$(python - <<'PY'
import json
print(".".join(json.load(open("/usr/local/cuda/version.json"))["cuda"]["version"].split(".")[:2]))
PY
) || die "no CUDA toolkit at /usr/local/cuda (install JetPack's nvidia-jetpack)"
python -m pip install --quiet "cuda-python==${cuda}.*" || python -m pip install --quiet \
    "cuda-python>=${cuda%%.*},<$(( ${cuda%%.*} + 1 ))"

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
