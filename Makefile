# The two commands the README promises:
#   make run    set everything up, then run the main job
#   make test   set everything up, then run the test suite
# Both install into their own virtual environment, .venv (git-ignored), so they work where
# the system Python refuses pip ("externally managed", as on Debian and Ubuntu).
#   make PYTHON=python3.12 ...   the interpreter .venv is created with (delete .venv to switch)
#   make TORCH_INDEX=https://download.pytorch.org/whl/cpu ...   torch from PyTorch's own CPU
#                                wheel index (without it: the configured index, see README)
PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?=
PY = $(VENV)/bin/python
PIP = $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup run test
$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

setup: $(VENV)/bin/pip
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0   # first, alone
	$(PIP) -e ".[torch,openvino,test]"

run: setup
	$(PY) -m edgecnn pipeline

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15 tests
