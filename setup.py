"""Only what pyproject.toml cannot say: the recipes and the device kit ship inside the package.

The repository keeps the target and pipeline recipes in its root `export/` folder; they are
installed as the package `edgecnn.recipes` (YAML package data, read with importlib.resources),
next to the packages found under `edgecnn/`. The device kit (`deploy/`: the app example,
Jetson, Jetson Nano and arm64 scripts) is installed the same way as `edgecnn.deploy`
(`edgecnn kit` prints where). Works for regular and editable installs alike.
"""

from pathlib import Path

from setuptools import find_packages, setup

packages = [*find_packages(include=["edgecnn*"]), "edgecnn.recipes"]
package_dir = {"edgecnn.recipes": "export"}
if (Path(__file__).parent / "deploy" / "__init__.py").is_file():  # a source tree that has it
    packages.append("edgecnn.deploy")
    package_dir["edgecnn.deploy"] = "deploy"
setup(packages=packages, package_dir=package_dir)
