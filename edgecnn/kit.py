"""Where the device kit is: the repository's deploy/ folder, installed as the package
`edgecnn.deploy` (package data: the app example, Jetson and Jetson Nano scripts, the arm64
userland setup), so a wheel on a workstation carries what the device needs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgecnn.errors import EdgeCNNError


def kit_path() -> Path:
    """The deploy folder of this install: site-packages/edgecnn/deploy from a wheel, the
    repository's deploy/ in a checkout."""
    spec = importlib.util.find_spec("edgecnn.deploy")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[1] / "deploy"
    if checkout.is_dir():
        return checkout
    raise EdgeCNNError("this install has no device kit (edgecnn.deploy); get deploy/ from the "
                       "edgecnn source distribution or repository")
