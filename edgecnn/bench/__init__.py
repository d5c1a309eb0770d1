"""Benchmarks: latency distributions, throughput, memory and accuracy across runtimes.

Torch-free like the runtime it measures (the PyTorch runner is imported only when asked for),
so the same harness runs on a Jetson with nothing but ONNX Runtime or TensorRT installed.
"""
