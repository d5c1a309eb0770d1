"""`edgecnn info ARTIFACT`: what an artifact directory holds, from its own records.

Torch-free (export.json, tuning.json and the ONNX files' metadata, read with the runtime's
own reader), so it answers on a device with the base install too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError


def names_a_path(model: str) -> bool:
    """`edgecnn info MODEL`: MODEL is a path (an artifact directory or its ONNX file, answered
    torch-free) rather than a zoo name (profiled with torch)."""
    return Path(model).exists() or "/" in model or "\\" in model or model.endswith(".onnx")


def artifact_dir(model: str) -> Path:
    """The artifact directory that `model` names: the directory, or the one holding the ONNX
    file; a missing path or a file outside an artifact says so in one line."""
    path = Path(model)
    if not path.exists():
        raise EdgeCNNError(f"{model}: no such file or directory")
    if path.is_dir():
        return path
    if (path.parent / "export.json").is_file():
        return path.parent
    raise EdgeCNNError(f"{model}: not in an edgecnn artifact directory (no export.json beside "
                       "it); `edgecnn info` reads an artifact directory or a zoo model name "
                       "(`edgecnn bench FILE` times any ONNX file)")


def _value(text: str) -> Any:
    """A metadata value as the number or list it holds (mean, std, resolution), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def artifact_info(path: Path) -> dict[str, Any]:
    from edgecnn.runtime.onnx_file import read_onnx
    from edgecnn.runtime.tuning import for_this_machine, read_tunings

    report_path = path / "export.json"
    if not report_path.is_file():
        raise EdgeCNNError(f"{path}: no export.json (not an edgecnn artifact directory)")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EdgeCNNError(f"{report_path}: unreadable ({exc})") from None
    files = {}
    for f in sorted(path.glob("*.onnx")):
        props = read_onnx(f).metadata_props
        files[f.name] = {"bytes": f.stat().st_size,
                         "precision": props.get("edgecnn.precision", "?")}
    meta = read_onnx(path / "model.onnx").metadata_props if (path / "model.onnx").is_file() \
        else {}
    int8 = report.get("int8") or None
    _, tuning_line = for_this_machine(path)
    return {
        "path": str(path), "model": report.get("model"), "alpha": report.get("alpha"),
        "resolution": report.get("resolution"), "trained": report.get("trained"),
        "target": (report.get("target") or {}).get("name"), "files": files,
        "preprocessing": {k.removeprefix("edgecnn."): _value(v) for k, v in meta.items()
                          if k in ("edgecnn.mean", "edgecnn.std", "edgecnn.resolution",
                                   "edgecnn.layout", "edgecnn.pixel_policy")},
        "classes": json.loads(meta["edgecnn.classes"]) if "edgecnn.classes" in meta else None,
        "int8": None if int8 is None else {
            "written": int8.get("written", True), "reason": int8.get("reason"),
            "verdict": int8.get("verdict"), "layers": int8.get("layers", [])},
        "tunings": {k: {"device": r["device"], "file": r["file"], "runtime": r["runtime"],
                        "threads": r["threads"], "ms": r.get("chosen_ms"), "date": r["date"]}
                    for k, r in read_tunings(path).items()},
        "this_machine": tuning_line,
    }


def print_artifact_info(info: dict[str, Any]) -> None:
    from edgecnn.bench.report import verdict_word
    from edgecnn.tables import format_table

    print(f"{info['path']}: {info['model']} alpha={info['alpha']} resolution="
          f"{info['resolution']} target={info['target']} "
          f"{'trained' if info['trained'] else 'untrained'}")
    for name, f in info["files"].items():
        print(f"  {name:<32} {f['bytes'] / 1e6:7.2f} MB  {f['precision']}")
    pre = info["preprocessing"]
    if pre:
        print("  preprocessing: " + ", ".join(f"{k} {_short(v)}" for k, v in pre.items()))
    classes = info["classes"]
    if classes:
        shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)"
                                           if len(classes) > 10 else "")
        print(f"  classes: {shown}")
    int8 = info["int8"]
    if int8 is None:
        print("  int8: not asked for at export")
    elif not int8["written"]:
        print(f"  int8 not produced: {int8['reason']}")
    else:
        layers = int8["layers"]
        n = sum(layer["precision"] == "int8" for layer in layers)
        print(f"  int8: {n} of {len(layers)} layers in int8"
              + (f"; verdict: {verdict_word(int8['verdict'])} ({int8['verdict']['reason']})"
                 if int8.get("verdict") else ""))
        if layers:
            print(format_table([(x["layer"], x["op"], x["precision"], x["why"])
                                for x in layers], ["layer", "op", "precision", "why float"]))
    for key, t in info["tunings"].items():
        d = t["device"]
        print(f"  tuned on {d.get('cpu_model')} ({d.get('arch')}, {d.get('cores')} cores"
              f"{', ' + d['board'] if d.get('board') else ''}) {t['date']}: {t['file']} in "
              f"{t['runtime']}, {t['threads']} thread(s), {t['ms']} ms")
    print(f"  on this machine: {info['this_machine']}")


def _short(value: object) -> object:
    """Mean and std as 4 significant digits (export.json keeps them exact)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return value
