"""`edgecnn tune ARTIFACT`: the int8 placement, runtime and thread count, measured on the
device that will run the model, under the settings it will run with, and recorded in the
artifact with that device's identity (run.py). Needs numpy, a runtime and `onnx` (the
placement rewrites the int8 graph), not torch: it runs on a Jetson or a Raspberry Pi.
"""
