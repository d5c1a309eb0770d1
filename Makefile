# The two commands the README promises:
#   make run    set everything up, then run the main job
#   make test   set everything up, then run the test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup run test
setup:
	$(PIP) torch==2.13.0          # first, alone: never let a resolver pick a CUDA build
	$(PIP) -e ".[torch,openvino,test]"

run: setup
	$(PYTHON) -m edgecnn pipeline export/pipeline.yaml

test: setup
	$(PYTHON) -m pytest -n 2 --durations=15 tests
