#!/usr/bin/env bash
# Build an arm64 (aarch64) Debian userland that runs under qemu-user on an x86-64 Linux
# machine, from the package registries only, and install edgecnn's wheel in it (the base
# install: numpy, ONNX Runtime, Pillow; no torch). See README.md beside this.
#   bash deploy/arm64/setup_userland.sh                  # build or refresh, then a check
#   deploy/arm64/python.sh deploy/app.py exports/x --images photos/
#
# Cached: the Debian part is built once per suite (about 1.5 min, mostly downloads) under
# ~/.cache/edgecnn/arm64-<suite>; a later run only re-installs the wheel (seconds) from
# wheels cached beside it. Built in a temporary directory and renamed into place: an
# interrupted build leaves nothing half-made behind. Variables: EDGECNN_ARM64_ROOT, SUITE,
# DEBIAN_MIRROR, PYTHON (the host Python whose pip builds and fetches wheels), WHEEL (an
# edgecnn wheel to install instead of building one from this checkout).
set -euo pipefail

SUITE=${SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=${EDGECNN_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecnn/arm64-$SUITE}
PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WHEELS="$ROOT.wheels"   # aarch64 wheels, kept between runs

die() { echo "setup_userland.sh: $*" >&2; exit 1; }

# 1. Tools: qemu-user-static runs arm64 binaries, debootstrap fetches Debian's arm64
#    packages; installed with apt when missing and allowed (root), else one line.
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v flock >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} with apt-get" >&2
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            "${missing[@]}"; } >/dev/null 2>&1 || die "apt-get could not install ${missing[*]}"
    else
        die "missing ${missing[*]}: sudo apt-get install ${missing[*]}"
    fi
fi
[ "$(uname -m)" = x86_64 ] || [ "$(uname -m)" = aarch64 ] \
    || die "runs on x86-64 (or aarch64) Linux, not $(uname -m)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (set PYTHON)"

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9   # one build at a time (two test workers, two CI jobs)

# Run the userland's python3 (what python.sh does).
emulate() {
    QEMU_CPU=cortex-a76 PYTHONPATH="$1/opt/site" PYTHONNOUSERSITE=1 \
        qemu-aarch64-static -L "$1" "$1/usr/bin/python3" "${@:2}"
}

# 2. The Debian part, once: debootstrap downloads the arm64 packages of a minimal system
#    with python3 (and their dependencies); they are unpacked with the host's dpkg-deb.
#    Nothing runs their maintainer scripts: that would need binfmt_misc, which containers
#    rarely have, and python3 needs none of them.
if [ ! -f "$ROOT/.debian-ok" ]; then
    echo "building the arm64 userland ($SUITE, from $MIRROR) in $ROOT" >&2
    tmp="$ROOT.tmp"
    rm -rf "$tmp"
    debootstrap --arch=arm64 --variant=minbase --download-only --include=python3 \
        "$SUITE" "$tmp" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
        || die "debootstrap could not fetch $SUITE arm64 from $MIRROR (see $ROOT.debootstrap.log)"
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$tmp" || die "cannot unpack $(basename "$deb")"
    done
    rm -f "$tmp"/var/cache/apt/archives/*.deb
    # qemu 7 passes the host's x86 /proc/cpuinfo through (qemu >= 8.2 emulates one), and
    # ONNX Runtime's CPU detection (pytorch/cpuinfo) crashes on it. With -L the guest reads
    # this file instead: the emulated CPU, a Cortex-A76 (Raspberry Pi 5) as on a real one.
    mkdir -p "$tmp/proc"
    for ((i = 0; i < $(nproc); i++)); do
        printf '%s\t: %s\n' processor "$i" BogoMIPS 108.00 \
            Features "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid \
asimdrdm lrcpc dcpop asimddp" "CPU implementer" 0x41 "CPU architecture" 8 \
            "CPU variant" 0x4 "CPU part" 0xd0b "CPU revision" 1
        echo
    done >"$tmp/proc/cpuinfo"
    machine=$(emulate "$tmp" -c "import platform; print(platform.machine())") \
        || die "the arm64 python3 does not run under qemu-aarch64-static"
    [ "$machine" = aarch64 ] || die "the userland's python3 reports $machine, not aarch64"
    echo "$SUITE" >"$tmp/.debian-ok"
    rm -rf "$ROOT"
    mv "$tmp" "$ROOT"
fi

# 3. edgecnn's wheel and its dependencies for the userland's Python and glibc, unpacked by
#    the host's pip (--target; no pip runs under emulation). Pins from constraints.txt, so
#    ONNX Runtime is the version the x86 side runs.
read -r pyver glibc < <(emulate "$ROOT" -c "import platform, sys
print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.libc_ver()[1])") \
    || die "the userland in $ROOT does not run (delete it and run this again)"
platforms=(--platform manylinux2014_aarch64)
for ((minor = ${glibc#*.}; minor >= 17; minor--)); do
    platforms+=(--platform "manylinux_2_${minor}_aarch64")
done
arm=("${platforms[@]}" --python-version "$pyver" --implementation cp --only-binary=:all:
     -c "$REPO/constraints.txt")
pip=("$PYTHON" -m pip --disable-pip-version-check -q)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
if [ -n "${WHEEL:-}" ]; then
    cp "$WHEEL" "$build/" || die "no wheel $WHEEL"
else
    # from a copy of the files a wheel is made of: an in-tree build reuses the checkout's
    # build/, whose stale modules (since deleted from edgecnn/) would ship to the device
    mkdir "$build/src"
    tar -C "$REPO" --exclude=__pycache__ -cf - pyproject.toml setup.py README.md edgecnn export \
        deploy | tar -C "$build/src" -xf - || die "cannot copy edgecnn's sources from $REPO"
    "$PYTHON" -m pip wheel --disable-pip-version-check -q --no-deps -w "$build" "$build/src" \
        >"$build/wheel.log" 2>&1 || die "cannot build edgecnn's wheel: $(tail -n 1 "$build/wheel.log")"
fi
wheel=$(ls "$build"/edgecnn-*.whl)
# Into a fresh directory that replaces the old one, unless this very wheel is installed.
install_site() {
    local site="$build/site"
    mkdir -p "$WHEELS"
    if ! "${pip[@]}" install "${arm[@]}" --no-index --find-links "$WHEELS" --target "$site" \
            "$wheel" >/dev/null 2>&1; then
        "${pip[@]}" download "${arm[@]}" --dest "$WHEELS" "$wheel" >"$build/pip.log" 2>&1 \
            || die "no aarch64 wheels for python $pyver: $(grep -m 1 ERROR "$build/pip.log")"
        rm -rf "$site"
        "${pip[@]}" install "${arm[@]}" --no-index --find-links "$WHEELS" --target "$site" \
            "$wheel" >"$build/pip.log" 2>&1 \
            || die "cannot install $(basename "$wheel"): $(grep -m 1 ERROR "$build/pip.log")"
    fi
    echo "$sha" >"$site/.edgecnn-wheel"
    rm -rf "$ROOT/opt/site.old"
    [ ! -d "$ROOT/opt/site" ] || mv "$ROOT/opt/site" "$ROOT/opt/site.old"
    mkdir -p "$ROOT/opt"
    mv "$site" "$ROOT/opt/site"
    rm -rf "$ROOT/opt/site.old"
}
# The wheel's RECORD (every file's sha256) names its contents; the zip's own bytes carry
# build times.
sha=$("$PYTHON" -c "import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(hashlib.sha256(z.read(next(n for n in z.namelist() if n.endswith('/RECORD')))).hexdigest())
" "$wheel")
if [ "$(cat "$ROOT/opt/site/.edgecnn-wheel" 2>/dev/null)" = "$sha" ]; then
    echo "$(basename "$wheel") is installed already (the same files)" >&2
else
    install_site
fi

# 4. What the userland has now, as seen from inside it.
emulate "$ROOT" -c "import platform, numpy, onnxruntime, PIL, edgecnn.runtime
print(f'arm64 userland: {platform.machine()}, Debian $SUITE, Python {platform.python_version()},',
      f'glibc {platform.libc_ver()[1]}; numpy {numpy.__version__}, onnxruntime',
      f'{onnxruntime.__version__}, Pillow {PIL.__version__}, edgecnn from $(basename "$wheel")')" \
    || die "edgecnn's runtime does not import in the userland"
echo "ready: $ROOT (run it with deploy/arm64/python.sh)"
