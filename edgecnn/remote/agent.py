"""The device's side of `--remote`: one small Python script, sent with each command and run
by the device's own interpreter (`python3 -c AGENT OP ARGS...`), so that nothing needs
installing by hand and no shell ever parses a path. Python 3.8+ syntax, standard library.

Operations (each atomic: a temporary name, then a rename; removed again on failure):
  probe [VENV ART...]          the interpreter, host and cache, as JSON; with names under
                               the cache, also which ARTs are there already and, when VENV
                               runs, its edgecnn and device identity (one round trip for a
                               device that is ready); always: the hash of the code of the
                               interpreter's own edgecnn, when it has one (`own`)
  put PATH                     stdin's bytes to PATH
  untar DIR                    stdin's tar to DIR (kept as it is when DIR exists: content-
                               addressed, an unchanged artifact is never sent twice)
  venv VENV WHEEL HOUSE EXTRAS SYSTEM
                               a venv with the wheel (and its extras) installed; HOUSE "-"
                               for the device's own package index; SYSTEM "system": the
                               venv sees the system's packages (a Jetson's TensorRT, which
                               JetPack installs there), else "-". A Python without
                               ensurepip (Debian without python3-venv) gets a venv without
                               pip, and pip runs from HOUSE's pip wheel
  run LOCK ARGV...             ARGV under the device's lock (one timing at a time per device,
                               whichever workstation asks), in its own process group; when
                               the connection drops (stdin closes: Ctrl-C or a timeout on the
                               workstation) the whole group is killed, so nothing runs on
  pull PATH                    PATH's bytes to stdout
  take PATH                    PATH's bytes to stdout, then PATH removed
"""

import inspect

# What a venv's edgecnn says of itself and of the device (edgecnn.host.device()).
IDENTITY = ("import json, edgecnn; from edgecnn.host import device; "
            "print(json.dumps({'edgecnn': 'edgecnn ' + edgecnn.__version__, "
            "'device': device()}))")


def code_hash(files):  # runs on the device too: Python 3.8, standard library
    """The hash of an edgecnn package's code ({name: bytes}), the same here
    (device.code_files) and on the device (own_code in AGENT, which embeds this function):
    which files count is decided by their names, so a checkout, its wheel and a device's
    install of that wheel hash alike."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(files):
        h.update((name + "\0" + hashlib.sha256(files[name]).hexdigest() + "\n").encode())
    return h.hexdigest()[:12]


AGENT = r'''
import fcntl, glob, json, os, shutil, signal, socket, subprocess, sys, tarfile, tempfile
import threading

def cache():
    root = os.environ.get("EDGECNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgecnn")
    path = os.path.join(root, "remote")
    os.makedirs(path, exist_ok=True)
    return path

def tmp_near(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))

@CODE_HASH@
def own_code():
    """The interpreter's own edgecnn (found, not imported): its code hash and whether onnx
    (the tune extra) is there; None without one."""
    import importlib.util
    spec = importlib.util.find_spec("edgecnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    files = {}
    for here, dirs, names in os.walk(root):
        rel = os.path.relpath(here, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if d != "__pycache__" and rel + d != "deploy"]
        for name in names:
            if name.endswith(".py") or (rel.startswith("recipes/") and name.endswith(".yaml")):
                with open(os.path.join(here, name), "rb") as f:
                    files["edgecnn/" + rel + name] = f.read()
    return {"hash": code_hash(files), "onnx": importlib.util.find_spec("onnx") is not None}

op, args = sys.argv[1], sys.argv[2:]
if op == "probe":
    root = cache()
    out = {"python": list(sys.version_info[:3]), "executable": sys.executable,
           "hostname": socket.gethostname(), "cache": root, "own": own_code()}
    if args:
        out["have"] = [a for a in args[1:] if os.path.isdir(os.path.join(root, a))]
        python = os.path.join(root, args[0], "bin", "python")
        if os.path.exists(python):
            ran = subprocess.run([python, "-c", @IDENTITY@], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            if ran.returncode == 0:
                out["venv"] = json.loads(ran.stdout)
    print(json.dumps(out))
elif op == "put":
    path = args[0]
    tmp = tmp_near(path)
    try:
        with open(os.path.join(tmp, "f"), "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
            f.flush(); os.fsync(f.fileno())
        os.replace(os.path.join(tmp, "f"), path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
elif op == "untar":
    path = args[0]
    if not os.path.isdir(path):
        tmp = tmp_near(path)
        try:
            with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
                for member in tar:
                    if member.name.startswith(("/", "..")) or "/../" in member.name \
                            or not (member.isfile() or member.isdir()):
                        raise SystemExit("refused an unsafe path in the artifact: " + member.name)
                    tar.extract(member, tmp)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    else:
        sys.stdin.buffer.read()
elif op == "venv":
    venv, wheel, house, extras, system = args
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        import importlib.util
        ensurepip = importlib.util.find_spec("ensurepip") is not None
        pips = sorted(glob.glob(os.path.join(house, "pip-*.whl"))) if house != "-" else []
        if not ensurepip and not pips:
            raise SystemExit("the device's Python cannot make a venv with pip (no ensurepip: "
                             "Debian's python3-venv), and the wheelhouse has no pip wheel")
        tmp = tmp_near(venv)
        try:
            made = subprocess.run([sys.executable, "-m", "venv", tmp]
                                  + ([] if ensurepip else ["--without-pip"])
                                  + (["--system-site-packages"] if system == "system" else []),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if made.returncode:
                raise SystemExit("the device's Python could not make a venv: "
                                 + made.stdout.decode(errors="replace").strip()[-200:])
            python = os.path.join(tmp, "bin", "python")
            # without ensurepip, pip runs from its wheel (pip supports that) into the venv
            pip = [python, "-m", "pip"] if ensurepip else [python, os.path.join(pips[-1], "pip")]
            spec = wheel + ("[" + extras + "]" if extras != "-" else "")
            cmd = pip + ["install", "--quiet", "--disable-pip-version-check", spec]
            if house != "-":
                cmd += ["--no-index", "--find-links", house]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if proc.returncode:
                lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines()
                         if ln.strip()]
                raise SystemExit("pip could not install edgecnn on the device: "
                                 + (lines[-1] if lines else "exit %d" % proc.returncode))
            os.rename(tmp, venv)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
elif op == "run":
    lock = open(args[0], "a")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time on this device
    # its own process group: what the command starts (bench's fresh app process, a
    # tegrastats sampler) is stopped with it
    child = subprocess.Popen(args[1:], start_new_session=True)
    def watch():  # the connection dropped, the workstation timed out or pressed Ctrl-C
        sys.stdin.buffer.read()
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)  # not sys.exit: the watcher still holds stdin's lock at shutdown
elif op in ("pull", "take"):
    with open(args[0], "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    if op == "take":
        os.unlink(args[0])
else:
    raise SystemExit("unknown agent operation " + op)
'''
AGENT = AGENT.replace("@IDENTITY@", repr(IDENTITY)).replace(
    "@CODE_HASH@", inspect.getsource(code_hash))
