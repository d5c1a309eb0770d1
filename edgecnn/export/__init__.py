"""Export: PyTorch zoo models to self-describing ONNX artifacts (pruning, int8, fp16)."""
