"""Benchmarks: latency distributions, throughput, memory and accuracy across runtimes.

What is measured (targets, cases, machine conditions, the roofline, sweeps) lives here; how
it is timed is edgecnn/timing, the one harness export also uses. Torch-free like the runtime
it measures (the PyTorch runner is imported only when asked for), so the same harness runs on
a Jetson with nothing but ONNX Runtime or TensorRT installed.
"""
