"""The device kit, installed as the package `edgecnn.deploy` (setup.py maps it onto this
folder): app.py (an example; the app itself is edgecnn/app.py), jetson/, nano/ and arm64/
scripts as package data. `edgecnn kit` prints where an install keeps them."""
