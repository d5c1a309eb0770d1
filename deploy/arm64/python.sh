#!/usr/bin/env bash
# The arm64 userland's Python 3 under qemu-user (built by setup_userland.sh):
#   deploy/arm64/python.sh deploy/app.py exports/mnv1 --images photos/
# Host paths stay visible (qemu's -L looks in the userland first, then on the host), so
# artifacts and images need no copying. Only the userland's packages are importable.
set -euo pipefail

SUITE=${SUITE:-bookworm}
ROOT=${EDGECNN_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecnn/arm64-$SUITE}
if [ ! -f "$ROOT/.debian-ok" ] || [ ! -d "$ROOT/opt/site" ]; then
    echo "python.sh: no arm64 userland at $ROOT: run deploy/arm64/setup_userland.sh" >&2
    exit 2
fi
unset PYTHONHOME
export QEMU_CPU=${QEMU_CPU:-cortex-a76} PYTHONNOUSERSITE=1
# The guest sees this script's own name as argv[0] (qemu's -0), so sys.executable is a
# program the host can start: a subprocess of sys.executable, and a venv made with
# `python.sh -m venv DIR` (its bin/python links here) run under emulation too. Run as a
# venv's python, only the venv's packages are importable, as in any venv.
if [ -f "$(dirname "$0")/../pyvenv.cfg" ]; then
    unset PYTHONPATH
else
    export PYTHONPATH="$ROOT/opt/site"
fi
exec qemu-aarch64-static -L "$ROOT" -0 "$0" "$ROOT/usr/bin/python3" "$@"
