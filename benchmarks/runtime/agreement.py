"""Do ONNX Runtime and OpenVINO compute the same thing? Every edge-family artifact at 224,
fp32 (max absolute logit difference) and int8 (top-1 agreement), through edgecnn.runtime.

    python benchmarks/runtime/agreement.py            # ~5 min on 2 cores

Models: the zoo's edge families with BatchNorm statistics set from real images (untrained
weights otherwise: what is compared is the runtimes, not the models), exported as the export
stage does (dynamo exporter, opset 18, metadata). Inputs: 64 crops of scikit-learn's two
sample photos, preprocessed by the runtime. int8: ONNX Runtime's static quantizer, QDQ,
per-channel int8 weights, asymmetric uint8 activations (the CPU recipe), calibrated on 32
crops and evaluated on the other 32. float64 PyTorch is the exact reference: where float32
itself is further than 1e-4 from it, 1e-4 between two float32 runtimes cannot be asked for,
so that error is reported next to the difference.
"""

from __future__ import annotations

import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = [("mobilenet", 0.5), ("mobilenet", 1.0), ("mobilenet_v2", 1.0),
            ("mobilenet_v3_small", 1.0), ("mobilenet_v3_large", 1.0), ("squeezenet", 1.0),
            ("squeezenet1_1", 1.0), ("squeezenext23", 1.0), ("shufflenet_v2_x0_5", 1.0),
            ("shufflenet_v2_x1_0", 1.0)]
RES = 224


def crops(n: int, seed: int = 0) -> list:
    """n random square crops (30-100% of the shorter side, random flips) of the two photos."""
    import sklearn.datasets
    from PIL import Image

    folder = Path(sklearn.datasets.__file__).parent / "images"
    photos = [Image.open(folder / name).convert("RGB") for name in ("china.jpg", "flower.jpg")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = photos[i % 2]
        side = int(min(im.size) * rng.uniform(0.3, 1.0))
        x, y = rng.integers(0, im.width - side + 1), rng.integers(0, im.height - side + 1)
        crop = im.crop((int(x), int(y), int(x) + side, int(y) + side))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5
                   else crop)
    return out


def build(name: str, alpha: float, batch: np.ndarray, directory: Path):  # noqa: ANN201
    import torch

    from edgecnn.export.onnx_io import save_onnx, to_onnx_proto
    from edgecnn.metadata import ArtifactMetadata
    from edgecnn.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, alpha=alpha)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch))
    model.eval()
    proto = to_onnx_proto(model, torch.from_numpy(batch[:1]), dynamic_batch=True)
    spec = model.spec
    meta = ArtifactMetadata(model=name, alpha=alpha, resolution=RES, in_chans=3, mean=spec.mean,
                            std=spec.std, classes=tuple(str(i) for i in range(1000)))
    for key, value in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    directory.mkdir(parents=True)
    return model, save_onnx(proto, directory / "model.onnx")


def quantize(fp32: Path, calibration: np.ndarray) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    prepared = fp32.with_name("model.prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    out = fp32.with_name("model.int8.onnx")
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def sqnr(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: how far `other` is from `reference`."""
    noise = float(np.sum((reference - other) ** 2))
    return float("inf") if noise == 0 else 10 * float(np.log10(np.sum(reference ** 2) / noise))


def margin(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 logit per row: how decided the model is."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def main() -> None:
    import torch

    from edgecnn.registry import get_spec
    from edgecnn.runtime import Preprocess, load

    torch.set_num_threads(2)
    images = crops(64)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for name, alpha in FAMILIES:
        start = time.perf_counter()
        spec = get_spec(name)  # what the artifact's metadata will say, preprocessed by the runtime
        batch = Preprocess(RES, spec.mean, spec.std)(images)
        model, path = build(name, alpha, batch[:32], tmp / f"{name}-{alpha}")
        ort, ov = load(path, runtime="onnxruntime"), load(path, runtime="openvino")
        a, b = ort.infer(batch), ov.infer(batch)
        with torch.no_grad():
            exact = copy.deepcopy(model).double()(torch.from_numpy(batch).double()).numpy()
            fp32_torch = model(torch.from_numpy(batch)).numpy()
        int8 = quantize(path, batch[:32])
        qa = load(int8, runtime="onnxruntime").infer(batch[32:])
        qb = load(int8, runtime="openvino").infer(batch[32:])
        row = {
            "model": name, "alpha": alpha,
            "fp32_max_abs_ort_vs_openvino": float(np.abs(a - b).max()),
            "fp32_max_abs_ort_vs_float64": float(np.abs(a - exact).max()),
            "fp32_max_abs_openvino_vs_float64": float(np.abs(b - exact).max()),
            "fp32_max_abs_torch_vs_float64": float(np.abs(fp32_torch - exact).max()),
            "logit_max_abs": float(np.abs(exact).max()),
            "fp32_top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
            "int8_top1_agreement_ort_vs_openvino": float((qa.argmax(1) == qb.argmax(1)).mean()),
            "int8_top1_agreement_ort_vs_fp32": float((qa.argmax(1) == a[32:].argmax(1)).mean()),
            "int8_sqnr_db_ort_vs_openvino": sqnr(qa, qb),
            "int8_sqnr_db_ort_vs_fp32": sqnr(a[32:], qa),
            "int8_sqnr_db_openvino_vs_fp32": sqnr(a[32:], qb),
            "fp32_top1_margin_median": float(np.median(margin(a[32:]))),
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    from importlib.metadata import version

    record = {"command": "python benchmarks/runtime/agreement.py", "resolution": RES,
              "inputs": "64 crops of scikit-learn's china.jpg/flower.jpg; int8 calibrated on 32, "
                        "compared on the other 32",
              "versions": {p: version(p) for p in ("onnxruntime", "openvino", "torch")},
              "python": platform.python_version(), "results": rows}
    (HERE / "agreement.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["| model | fp32: max abs ORT vs OV | fp32: float32's own error (torch vs fp64) | "
             "fp32: top-1 agree | int8: top-1 agree ORT vs OV | int8: SQNR ORT vs OV (dB) | "
             "int8: SQNR vs fp32, ORT / OV (dB) | int8 ORT: top-1 = fp32 | fp32 top-1 margin "
             "(median) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} {r['alpha']:g} | {r['fp32_max_abs_ort_vs_openvino']:.1e} | "
                     f"{r['fp32_max_abs_torch_vs_float64']:.1e} | {r['fp32_top1_agreement']:.0%} | "
                     f"{r['int8_top1_agreement_ort_vs_openvino']:.0%} | "
                     f"{r['int8_sqnr_db_ort_vs_openvino']:.1f} | "
                     f"{r['int8_sqnr_db_ort_vs_fp32']:.1f} / "
                     f"{r['int8_sqnr_db_openvino_vs_fp32']:.1f} | "
                     f"{r['int8_top1_agreement_ort_vs_fp32']:.0%} | "
                     f"{r['fp32_top1_margin_median']:.3f} |")
    (HERE / "agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
