"""`edgecnn app ARTIFACT --images DIR` (or --camera): the device app (edgecnn/app.py), and
`edgecnn kit`: where the device scripts (Jetson, Nano, arm64) of this install are."""

from __future__ import annotations

import argparse

ORDER = 45  # beside predict


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from edgecnn.app import add_arguments

    p = subparsers.add_parser(
        "app", help="the device app: classify a folder (scored when its subfolders are "
        "classes) or a camera stream, torch-free")
    add_arguments(p)
    p.set_defaults(func=_run_app)
    p = subparsers.add_parser(
        "kit", help="print the folder of the device scripts shipped with edgecnn (Jetson, "
        "Jetson Nano, arm64 under qemu), with their READMEs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_kit)


def _run_app(args: argparse.Namespace) -> int:
    from edgecnn.app import run

    return run(args)


def _run_kit(args: argparse.Namespace) -> int:
    from edgecnn.kit import kit_path

    path = kit_path()
    subs = sorted(p.name for p in path.iterdir() if p.is_dir() and p.name[0] not in "._")
    if args.json:
        import json

        print(json.dumps({"path": str(path), "folders": {s: str(path / s) for s in subs}},
                         indent=2))
        return 0
    print(path)
    for sub in subs:
        print(f"  {sub}/  ({path / sub / 'README.md'})")
    return 0
