"""What checking an ONNX file costs: `read_onnx` maps the file (mmap) and decodes the graph's
fields only, against reading the whole file into memory first (what it did before).

    python benchmarks/runtime/onnx_read.py      # writes onnx_read.md next to this file

The file: one 190.7 MiB initializer (50M float32 ones) behind an Identity, written with
onnx.helper to a temporary directory. Each variant runs in a fresh process; resident memory
from /proc/self/statm before and after the call.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHILD = """
import sys, time
from pathlib import Path
from edgecnn.runtime.onnx_file import _parse, read_onnx
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
r0, t0 = rss(), time.perf_counter()
if sys.argv[1] == 'mmap':
    info = read_onnx(sys.argv[2])
else:
    data = Path(sys.argv[2]).read_bytes(); info = _parse(memoryview(data), None)
print(f"{rss() - r0:.1f} {(time.perf_counter() - t0) * 1e3:.1f}")
"""


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.onnx")
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], "big",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
            initializer=[numpy_helper.from_array(np.ones(50_000_000, np.float32), "w")])
        onnx.save(helper.make_model(graph, ir_version=8,
                                    opset_imports=[helper.make_opsetid("", 13)]), path)
        size = path.stat().st_size / 2**20
        for variant in ("mmap", "read_bytes"):
            out = subprocess.run([sys.executable, "-c", CHILD, variant, str(path)], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split()
            rows.append(f"| {variant} | {out[0]} | {out[1]} |")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                if line.startswith("Model name")), platform.processor())
    text = "\n".join([
        "# Checking an ONNX file: mapped vs read", "",
        f"`python benchmarks/runtime/onnx_read.py`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU {cpu}, load "
        f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}. A {size:.1f} MiB "
        "file (one initializer); one fresh process per variant.", "",
        "| variant | resident MiB added | ms |", "|---|---|---|", *rows, ""])
    (HERE / "onnx_read.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
