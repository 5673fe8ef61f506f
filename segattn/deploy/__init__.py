"""Leaving PyTorch: ONNX export of a trained segmentor, and the runtimes that run it (ONNX Runtime, OpenVINO)."""
