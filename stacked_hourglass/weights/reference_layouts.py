"""State-dict layouts of two PyTorch reference implementations, mapped onto our Keras layers.

Both references build the paper's network (pre-activation bottleneck residuals with conv biases,
BN eps 1e-5, nearest-neighbour upsampling, a 1x1 conv+BN+ReLU "features" head and 1x1 heatmap and
merge convs), so every tensor has a place in `stacked_hourglass.model`:

princeton (princeton-vl/pytorch_stacked_hourglass, `PoseNet(nstack, inp_dim, oup_dim)`, keys
`model.module.` + ...; `extract_state_dict` strips that):
    pre.0.{conv,bn}          stem_conv, stem_bn            conv7x7/2 3->64 (+BN+ReLU)
    pre.1 / pre.3 / pre.4    stem_res1 / _res2 / _res3     Residual 64->128, 128->128, 128->F
                                                           (pre.2 is the max-pool)
    hgs.i.0.{up1,low1,low3}  hg{i+1}_up1, _low1, _low3     low2 recurses: hgs.i.0.low2.up1 is
    hgs.i.0.low2....         hg{i+1}_d3_..., ..._d1_low2   hg{i+1}_d3_up1; the innermost low2 is
                                                           a Residual (..._d1_low2)
    features.i.0             stack{i+1}_res
    features.i.1.{conv,bn}   stack{i+1}_feat_conv, _feat_bn
    outs.i.conv              stack{i+1}_heatmap_conv
    merge_features.i.conv.conv, merge_preds.i.conv.conv   stack{i+1}_merge_features, _heatmaps
  A Residual is bn1, conv1.conv, bn2, conv2.conv, bn3, conv3.conv, skip_layer.conv (-> _bn1, _conv1,
  ..., _skip). Every Residual owns a skip_layer, but forward() uses it only when the channel count
  changes: the others are returned as unused.

bearpaw (bearpaw/pytorch-pose `HourglassNet(Bottleneck, num_stacks, num_blocks, num_classes)`,
keys `module.` + ...):
    conv1, bn1               stem_conv, stem_bn            conv7x7/2 3->64 (+BN+ReLU)
    layer1.0 / layer2.0 / layer3.0   stem_res1 / _res2 / _res3   Bottleneck 64->128, 128->256,
                                                           256->F (max-pool after layer1)
    hg.i.hg.{L}.{j}.{b}      level L = depth-1 is the outermost: j = 0 up1, 1 low1, 2 low3 and
                             (L = 0 only) 3 low2; block b is our module b+1 (suffix _m{b+1})
    res.i.{b}                stack{i+1}_res[_m{b+1}]
    fc.i.0, fc.i.1           stack{i+1}_feat_conv, _feat_bn
    score.i, fc_.i, score_.i stack{i+1}_heatmap_conv, _merge_features, _merge_heatmaps
  A Bottleneck is bn1, conv1, bn2, conv2, bn3, conv3, downsample.0 (-> _skip; present exactly
  where the channel count changes).

Conv2D weights become [kernel HWIO (torch OIHW transposed by (2, 3, 1, 0)), bias]; BatchNorm
weights [gamma, beta, moving_mean, moving_variance], all float32 (Keras `set_weights` order).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from stacked_hourglass.weights.torch_pickle import CheckpointError

FORMATS = ("princeton", "bearpaw")
IMAGE_CHANNELS = 3

_BN_PARTS = ("weight", "bias", "running_mean", "running_var")
# Keys whose presence identifies each reference (after `extract_state_dict`).
_SIGNATURES = {
    "princeton": ("pre.0.conv.weight", "hgs.0.0.up1.bn1.weight"),
    "bearpaw": ("conv1.weight", "hg.0.hg.0.0.0.bn1.weight"),
}


def _error(path, message: str) -> CheckpointError:
    return CheckpointError(" ".join(f"{os.fspath(path)}: {message}".split()))


def detect_format(state: Mapping[str, np.ndarray], path: str | os.PathLike = "checkpoint") -> str:
    """Which reference implementation wrote a state dict ("princeton" or "bearpaw").

    Args:
        state: names to arrays, as `torch_pickle.extract_state_dict` returns.
        path: the file, for error messages.

    Raises:
        CheckpointError: neither layout matches.
    """
    matches = [fmt for fmt, keys in _SIGNATURES.items() if all(k in state for k in keys)]
    if len(matches) != 1:
        first = ", ".join(list(state)[:4])
        raise _error(
            path,
            "not a checkpoint of a known stacked hourglass implementation (princeton-vl's "
            f"pytorch_stacked_hourglass or bearpaw's pytorch-pose); first tensors: {first}",
        )
    return matches[0]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


def _shape(state, key: str, ndim: int, fmt: str, path) -> tuple[int, ...]:
    if key not in state:
        raise _error(path, f"missing tensor {key}: not a {fmt} stacked hourglass checkpoint")
    shape = tuple(np.shape(state[key]))
    if len(shape) != ndim:
        raise _error(path, f"tensor {key} has shape {shape}, expected {ndim} dimensions")
    return shape


def _count(state, pattern: str, fmt: str, path, what: str) -> int:
    """How many consecutive indices 0..n-1 match the group of `pattern` in the state's keys."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for key in state if (m := regex.match(key))}
    if not found:
        raise _error(path, f"no {what} found (no key matches {pattern}): not a {fmt} checkpoint")
    expected = set(range(max(found) + 1))
    if found != expected:
        missing = min(expected - found)
        raise _error(path, f"{what} numbered {sorted(found)}: index {missing} missing")
    return max(found) + 1


def infer_architecture(
    fmt: str, state: Mapping[str, np.ndarray], path: str | os.PathLike = "checkpoint"
) -> dict:
    """The hyper-parameters of the network a reference state dict belongs to, from its tensors.

    Args:
        fmt: "princeton" or "bearpaw".
        state: names to arrays, as `torch_pickle.extract_state_dict` returns.
        path: the file, for error messages.

    Returns:
        {"num_stacks", "num_features", "depth", "num_joints", "num_modules", "stem_features"}:
        the `ModelConfig` fields, with `stem_features` = output channels of (stem conv, first stem
        residual, second stem residual); the third stem residual outputs `num_features`.
        princeton: stem_features (64, 128, 128) and num_modules 1 always; bearpaw: (64, 128, 256).

    Raises:
        CheckpointError: a tensor needed to read a hyper-parameter is missing or malformed.
    """
    _check_format(fmt)
    if fmt == "princeton":
        num_stacks = _count(state, r"hgs\.(\d+)\.", fmt, path, "hourglasses (hgs.i)")
        depth = 1
        while f"hgs.0.0.{'low2.' * depth}up1.bn1.weight" in state:
            depth += 1
        arch = {
            "num_stacks": num_stacks,
            "num_features": _shape(state, "pre.4.conv3.conv.weight", 4, fmt, path)[0],
            "depth": depth,
            "num_joints": _shape(state, "outs.0.conv.weight", 4, fmt, path)[0],
            "num_modules": 1,
            "stem_features": (
                _shape(state, "pre.0.conv.weight", 4, fmt, path)[0],
                _shape(state, "pre.1.conv3.conv.weight", 4, fmt, path)[0],
                _shape(state, "pre.3.conv3.conv.weight", 4, fmt, path)[0],
            ),
        }
    else:
        arch = {
            "num_stacks": _count(state, r"hg\.(\d+)\.hg\.", fmt, path, "hourglasses (hg.i)"),
            "num_features": _shape(state, "layer3.0.conv3.weight", 4, fmt, path)[0],
            "depth": _count(state, r"hg\.0\.hg\.(\d+)\.", fmt, path, "hourglass levels"),
            "num_joints": _shape(state, "score.0.weight", 4, fmt, path)[0],
            "num_modules": _count(
                state, r"hg\.0\.hg\.0\.0\.(\d+)\.", fmt, path, "residual blocks (num_blocks)"
            ),
            "stem_features": (
                _shape(state, "conv1.weight", 4, fmt, path)[0],
                _shape(state, "layer1.0.conv3.weight", 4, fmt, path)[0],
                _shape(state, "layer2.0.conv3.weight", 4, fmt, path)[0],
            ),
        }
    return arch


class _Layout:
    """Collects (Keras layer, kind, torch prefix, shapes) in the Keras model's build order."""

    def __init__(self, fmt: str, arch: dict):
        self.fmt = fmt
        self.arch = arch
        self.layers: list[tuple[str, str, str, tuple[int, ...]]] = []
        self.unused_prefixes: list[str] = []

    def conv(self, name: str, prefix: str, filters: int, channels: int, kernel: int = 1):
        self.layers.append((name, "conv", prefix, (filters, channels, kernel, kernel)))

    def bn(self, name: str, prefix: str, channels: int):
        self.layers.append((name, "bn", prefix, (channels,)))

    def residual(self, name: str, prefix: str, channels: int, filters: int):
        half = filters // 2
        conv = "conv{}.conv." if self.fmt == "princeton" else "conv{}."
        self.bn(f"{name}_bn1", prefix + "bn1.", channels)
        self.conv(f"{name}_conv1", prefix + conv.format(1), half, channels)
        self.bn(f"{name}_bn2", prefix + "bn2.", half)
        self.conv(f"{name}_conv2", prefix + conv.format(2), half, half, 3)
        self.bn(f"{name}_bn3", prefix + "bn3.", half)
        self.conv(f"{name}_conv3", prefix + conv.format(3), filters, half)
        skip = prefix + ("skip_layer.conv." if self.fmt == "princeton" else "downsample.0.")
        if channels != filters:
            self.conv(f"{name}_skip", skip, filters, channels)
        elif self.fmt == "princeton":
            self.unused_prefixes.append(skip)

    def residuals(self, name: str, prefix: str, features: int):
        """bearpaw's `num_blocks` Bottlenecks at prefix.0., prefix.1., ... (ours _m2, ...)."""
        for block in range(self.arch["num_modules"]):
            suffix = "" if block == 0 else f"_m{block + 1}"
            self.residual(name + suffix, f"{prefix}{block}.", features, features)


def _princeton_layout(arch: dict) -> _Layout:
    layout = _Layout("princeton", arch)
    f, k = arch["num_features"], arch["num_joints"]
    c0, c1, c2 = arch["stem_features"]
    layout.conv("stem_conv", "pre.0.conv.", c0, IMAGE_CHANNELS, 7)
    layout.bn("stem_bn", "pre.0.bn.", c0)
    layout.residual("stem_res1", "pre.1.", c0, c1)
    layout.residual("stem_res2", "pre.3.", c1, c2)
    layout.residual("stem_res3", "pre.4.", c2, f)

    def hourglass(name: str, prefix: str, depth: int):
        layout.residual(f"{name}_up1", prefix + "up1.", f, f)
        layout.residual(f"{name}_low1", prefix + "low1.", f, f)
        if depth > 1:
            hourglass(f"{name}_d{depth - 1}", prefix + "low2.", depth - 1)
        else:
            layout.residual(f"{name}_low2", prefix + "low2.", f, f)
        layout.residual(f"{name}_low3", prefix + "low3.", f, f)

    for i in range(arch["num_stacks"]):
        s = i + 1
        hourglass(f"hg{s}", f"hgs.{i}.0.", arch["depth"])
        layout.residual(f"stack{s}_res", f"features.{i}.0.", f, f)
        layout.conv(f"stack{s}_feat_conv", f"features.{i}.1.conv.", f, f)
        layout.bn(f"stack{s}_feat_bn", f"features.{i}.1.bn.", f)
        layout.conv(f"stack{s}_heatmap_conv", f"outs.{i}.conv.", k, f)
        if s < arch["num_stacks"]:
            layout.conv(f"stack{s}_merge_features", f"merge_features.{i}.conv.conv.", f, f)
            layout.conv(f"stack{s}_merge_heatmaps", f"merge_preds.{i}.conv.conv.", f, k)
    return layout


def _bearpaw_layout(arch: dict) -> _Layout:
    layout = _Layout("bearpaw", arch)
    f, k = arch["num_features"], arch["num_joints"]
    c0, c1, c2 = arch["stem_features"]
    layout.conv("stem_conv", "conv1.", c0, IMAGE_CHANNELS, 7)
    layout.bn("stem_bn", "bn1.", c0)
    layout.residual("stem_res1", "layer1.0.", c0, c1)
    layout.residual("stem_res2", "layer2.0.", c1, c2)
    layout.residual("stem_res3", "layer3.0.", c2, f)

    def hourglass(name: str, stack: int, depth: int):
        level = f"hg.{stack}.hg.{depth - 1}."
        layout.residuals(f"{name}_up1", level + "0.", f)
        layout.residuals(f"{name}_low1", level + "1.", f)
        if depth > 1:
            hourglass(f"{name}_d{depth - 1}", stack, depth - 1)
        else:
            layout.residuals(f"{name}_low2", level + "3.", f)
        layout.residuals(f"{name}_low3", level + "2.", f)

    for i in range(arch["num_stacks"]):
        s = i + 1
        hourglass(f"hg{s}", i, arch["depth"])
        layout.residuals(f"stack{s}_res", f"res.{i}.", f)
        layout.conv(f"stack{s}_feat_conv", f"fc.{i}.0.", f, f)
        layout.bn(f"stack{s}_feat_bn", f"fc.{i}.1.", f)
        layout.conv(f"stack{s}_heatmap_conv", f"score.{i}.", k, f)
        if s < arch["num_stacks"]:
            layout.conv(f"stack{s}_merge_features", f"fc_.{i}.", f, f)
            layout.conv(f"stack{s}_merge_heatmaps", f"score_.{i}.", f, k)
    return layout


def _describe(fmt: str, arch: dict) -> str:
    return f"{fmt} network " + ", ".join(f"{key}={value}" for key, value in arch.items())


def to_keras_layers(
    fmt: str, state: Mapping[str, np.ndarray], path: str | os.PathLike = "checkpoint"
) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Every tensor of a reference state dict, as Keras weights of our layer of the same role.

    The layer names are `stacked_hourglass.model`'s for a `ModelConfig` with the fields
    `infer_architecture` returns (`stem_features` setting the stem widths: bearpaw's second stem
    residual outputs 256 channels where the paper's outputs 128).

    Args:
        fmt: "princeton" or "bearpaw".
        state: names to arrays, as `torch_pickle.extract_state_dict` returns.
        path: the file, for error messages.

    Returns:
        (layers, unused): layers maps each Keras layer name to its weights in `set_weights`
        order, float32 (Conv2D: [kernel HWIO, bias]; BatchNormalization: [gamma, beta,
        moving_mean, moving_variance]), in the model's build order; unused lists the state's
        keys that the reference's forward pass never reads (princeton's skip_layer of every
        Residual whose channel count does not change).

    Raises:
        CheckpointError: as `keras_layer_sources`.
    """
    sources, unused = keras_layer_sources(fmt, state, path)
    layers = {
        name: keras_weights(kind, [state[key] for key in keys])
        for name, (kind, keys) in sources.items()
    }
    return layers, unused


def keras_layer_sources(
    fmt: str, state: Mapping[str, np.ndarray], path: str | os.PathLike = "checkpoint"
) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """Which tensors of a reference state dict become the weights of which Keras layer, with
    every check of `to_keras_layers`, on shapes and dtypes only: nothing is read or copied, so
    `state` may hold `torch_pickle.TensorStub`s (a checkpoint opened, not read).

    Returns:
        (sources, unused): sources maps each Keras layer name, in the model's build order, to
        (kind, keys): kind "conv" or "bn" (`keras_weights`), keys the state's tensors in
        `set_weights` order; unused as in `to_keras_layers`.

    Raises:
        CheckpointError: the first tensor (in build order) that is missing, has another shape
            than the inferred architecture needs, or is not floating point; or a tensor that has
            no place in that architecture.
    """
    _check_format(fmt)
    arch = infer_architecture(fmt, state, path)
    layout = _princeton_layout(arch) if fmt == "princeton" else _bearpaw_layout(arch)
    used = set()

    def take(layer: str, key: str, shape: tuple[int, ...]) -> str:
        if key not in state:
            raise _error(
                path,
                f"missing tensor {key} of shape {shape} (Keras layer {layer}) for a "
                f"{_describe(fmt, arch)}",
            )
        value = state[key]
        if tuple(value.shape) != shape:
            raise _error(
                path,
                f"tensor {key} has shape {tuple(value.shape)}, expected {shape} (Keras layer "
                f"{layer}) for a {_describe(fmt, arch)}",
            )
        if value.dtype.kind != "f":
            raise _error(path, f"tensor {key} holds {value.dtype}, not floating-point weights")
        used.add(key)
        return key

    sources = {}
    for name, kind, prefix, shape in layout.layers:
        if kind == "conv":
            keys = [take(name, prefix + "weight", shape), take(name, prefix + "bias", shape[:1])]
        else:
            keys = [take(name, prefix + part, shape) for part in _BN_PARTS]
        sources[name] = (kind, keys)
    unused = [
        prefix + part
        for prefix in layout.unused_prefixes
        for part in ("weight", "bias")
        if prefix + part in state
    ]
    unused_set = set(unused)
    leftover = [key for key in state if key not in used and key not in unused_set]
    if leftover:
        key = leftover[0]
        raise _error(
            path,
            f"tensor {key} of shape {tuple(np.shape(state[key]))} has no place in a "
            f"{_describe(fmt, arch)} ({len(leftover)} such tensors)",
        )
    return sources, unused


def keras_weights(kind: str, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One layer's reference tensors as its Keras weights, float32: a "conv" layer's [weight
    OIHW, bias] -> [kernel HWIO, bias]; a "bn" layer's four tensors unchanged."""
    weights = [np.asarray(t, np.float32) for t in tensors]
    if kind == "conv":
        weights[0] = np.ascontiguousarray(weights[0].transpose(2, 3, 1, 0))
    return weights
