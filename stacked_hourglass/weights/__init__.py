"""Importing weights from PyTorch checkpoints of reference stacked-hourglass implementations.

`torch_pickle` reads and writes PyTorch's two checkpoint formats with the standard library and
numpy only (no torch, no arbitrary code from the file); `reference_layouts` maps the state dicts
of princeton-vl/pytorch_stacked_hourglass and bearpaw/pytorch-pose onto this package's Keras
layer names and weight layouts.
"""
