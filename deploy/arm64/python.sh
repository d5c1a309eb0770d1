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
export QEMU_CPU=${QEMU_CPU:-cortex-a76} PYTHONPATH="$ROOT/opt/site" PYTHONNOUSERSITE=1
exec qemu-aarch64-static -L "$ROOT" "$ROOT/usr/bin/python3" "$@"
