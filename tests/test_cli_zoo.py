"""`edgecnn list` and `edgecnn info` through `edgecnn.cli.main.main`, the function the
console command calls, in this process (tests/test_bad_inputs.py runs the console command
itself, and every command's bad input in a subprocess too)."""

from __future__ import annotations

import json

import pytest

Capture = pytest.CaptureFixture[str]

from tests.conftest import run_main


def test_list_json_covers_the_registry_with_reference_figures(capfd: Capture) -> None:
    import edgecnn

    code, out, err = run_main(["list", "--json"], capfd)
    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert set(records) == set(edgecnn.list_models())
    # spot figures a user would check against the papers / torchvision
    assert records["mobilenet"]["params"] == 4_231_976
    assert records["mobilenet"]["macs"] == 568_740_352
    assert records["squeezenet1_1"]["params"] == 1_235_496
    assert records["resnet50"]["params"] == 25_557_032
    assert all(r["paper"] for r in records.values())


def test_list_table_filters_by_pattern(capfd: Capture) -> None:
    code, out, err = run_main(["list", "squeeze*"], capfd)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["model", "family"]
    names = [line.split()[0] for line in lines[2:-1]]
    assert names and all(n.startswith("squeeze") for n in names)


def test_info_json_has_the_promised_fields(capfd: Capture) -> None:
    code, out, err = run_main(["info", "mobilenet", "--alpha", "0.5", "--resolution", "160",
                               "--num-classes", "10", "--json"], capfd)
    assert code == 0, err
    info = json.loads(out)
    assert {k: info[k] for k in ("model", "alpha", "resolution", "num_classes")} == {
        "model": "mobilenet", "alpha": 0.5, "resolution": 160, "num_classes": 10}
    assert isinstance(info["params"], int) and isinstance(info["macs"], int)
    # per-layer rows add up to the totals
    assert sum(layer["macs"] for layer in info["layers"]) == info["macs"]
    assert sum(layer["params"] for layer in info["layers"]) == info["params"]


def test_info_table_lists_layers_with_output_shapes(capfd: Capture) -> None:
    code, out, err = run_main(["info", "lenet5"], capfd)
    assert code == 0, err
    assert "Conv2d" in out and "6x28x28" in out
    assert "params=61,706" in out


@pytest.mark.parametrize("args, message", [
    (("info", "mobilenett"), "unknown model 'mobilenett'; did you mean mobilenet"),
    (("info", "mobilenet", "--alpha", "-0.5"), "alpha must be a positive number"),
    (("info", "mobilenet", "--alpha", "abc"), "alpha must be a positive number"),
    (("info", "mobilenet", "--resolution", "16"), "needs inputs of at least 32x32"),
    (("info", "resnet50", "--alpha", "0.5"), "resnet50 has no width multiplier"),
    (("info", "squeezenet", "--alpha", "0.001"), "rounds a"),
    (("info", "mobilenet", "--resolution", "0"), "expected a positive integer"),
    (("nosuchcommand",), "invalid choice"),
])
def test_user_errors_are_one_line_exit_2(args: tuple[str, ...], message: str,
                                        capfd: Capture) -> None:
    code, out, err = run_main(list(args), capfd)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert out == ""
