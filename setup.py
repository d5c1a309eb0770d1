"""Only what pyproject.toml cannot say: the recipes ship inside the package.

The repository keeps the target and pipeline recipes in its root `export/` folder; they are
installed as the package `edgecnn.recipes` (YAML package data, read with importlib.resources),
next to the packages found under `edgecnn/`. Works for regular and editable installs alike.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["edgecnn*"]), "edgecnn.recipes"],
      package_dir={"edgecnn.recipes": "export"})
