"""The recipes that ship with edgecnn: the package `edgecnn.recipes` (YAML package data).

pyproject.toml maps `edgecnn.recipes` onto this folder, so the repository keeps its recipes
here and a wheel carries them; `edgecnn.export.targets` reads them with importlib.resources,
from the checkout (editable install) and from site-packages (regular install) alike.
"""
