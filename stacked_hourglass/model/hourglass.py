"""The stacked hourglass network (Newell, Yang, Deng, ECCV 2016) as a Keras functional model.

Layout follows the paper and the reference implementation (umich-vl/pose-hg-train `hg.lua`):

  image [B, S, S, 3] -> stem (conv7x7/2, residual, max-pool, residual, residual) [B, S/4, S/4, F]
    -> N x (hourglass -> residual -> 1x1 conv+BN+ReLU "features" -> 1x1 conv "heatmaps_i")
  with `x_{i+1} = x_i + conv1x1(features_i) + conv1x1(heatmaps_i)` between stacks.

Tensors are channels-last. Heatmaps are at 1/4 of the input resolution (64x64 for 256x256).
Every stack has its own weights; every stack's heatmaps are a named model output
(`heatmaps_1` ... `heatmaps_N`) so that `model.compile(loss=...)` gives each stack its own MSE loss
(intermediate supervision). With `intermediate_supervision=False` only the last stack's heatmaps
are an output: the network is the same, only the loss differs (the paper's ablation).

Run `python -m stacked_hourglass.model --summary` for parameter and multiply-add counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time

import keras
import numpy as np
from keras import layers

_BN_MOMENTUM = 0.9  # Torch's SpatialBatchNormalization momentum 0.1 on the new statistic.
_BN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters.

    Attributes:
        num_stacks: number of hourglass modules N (paper: 8).
        num_features: channels F inside the hourglasses (paper: 256).
        depth: hourglass recursion depth (paper: 4; 64x64 -> 4x4).
        num_joints: heatmap channels K (MPII: 16, FLIC: 11).
        input_size: square input side S in pixels (paper: 256); must be divisible by 4 * 2**depth.
        intermediate_supervision: output every stack's heatmaps (True) or only the last (False).
        sync_batch_norm: BatchNorm statistics over the global batch across replicas (TF
            backend); without it each replica normalises with its own part of the batch.
        num_modules: residual modules at every residual place of the hourglasses and heads
            (pose-hg-train's nModules): the paper compares 2 stacks x 4 modules, 4 x 2 and 8 x 1
            at the same total depth (§5.1, Fig. 8).
    """

    num_stacks: int = 8
    num_features: int = 256
    depth: int = 4
    num_joints: int = 16
    input_size: int = 256
    intermediate_supervision: bool = True
    sync_batch_norm: bool = False
    num_modules: int = 1

    def __post_init__(self):
        for name in (
            "num_stacks", "num_features", "depth", "num_joints", "input_size", "num_modules"
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_features % 2:
            raise ValueError(
                f"num_features must be even (bottleneck halves it), got {self.num_features}"
            )
        stride = 4 * 2**self.depth
        if self.input_size % stride:
            raise ValueError(
                f"input_size must be divisible by 4 * 2**depth = {stride} so the hourglass "
                f"resolutions stay integral, got input_size={self.input_size}, depth={self.depth}"
            )

    @property
    def heatmap_size(self) -> int:
        return self.input_size // 4

    @property
    def output_names(self) -> list[str]:
        if self.intermediate_supervision:
            return [output_name(i) for i in range(1, self.num_stacks + 1)]
        return [output_name(self.num_stacks)]


def output_name(stack: int) -> str:
    """Name of the model output holding stack `stack`'s heatmaps (1-based)."""
    return f"heatmaps_{stack}"


def _conv(filters, kernel_size, name, strides=1):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        # Torch's default (pose-hg-train): U(-1/sqrt(fan_in), 1/sqrt(fan_in)). He init makes the
        # summed residual streams and the first heatmaps large, and training starts slower.
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        name=name,
    )


def _bn(name, sync):
    return layers.BatchNormalization(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, synchronized=sync, name=name
    )


def apply_residual(x, filters: int, name: str, sync_bn: bool = False):
    """Pre-activation bottleneck residual module (paper Fig. 4).

    BN-ReLU-conv1x1(F/2) -> BN-ReLU-conv3x3(F/2) -> BN-ReLU-conv1x1(F), plus the input; the skip
    gets a 1x1 conv only when the channel count changes.

    Args:
        x: [B, H, W, C_in].
        filters: output channels F.
        name: layer-name prefix.
        sync_bn: synchronise BatchNorm statistics across replicas.

    Returns:
        [B, H, W, F].
    """
    half = filters // 2
    y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1", sync_bn)(x))
    y = _conv(half, 1, f"{name}_conv1")(y)
    y = layers.ReLU(name=f"{name}_relu2")(_bn(f"{name}_bn2", sync_bn)(y))
    y = _conv(half, 3, f"{name}_conv2")(y)
    y = layers.ReLU(name=f"{name}_relu3")(_bn(f"{name}_bn3", sync_bn)(y))
    y = _conv(filters, 1, f"{name}_conv3")(y)
    skip = x if x.shape[-1] == filters else _conv(filters, 1, f"{name}_skip")(x)
    return layers.Add(name=f"{name}_add")([skip, y])


def apply_residuals(x, filters: int, name: str, num_modules: int = 1, sync_bn: bool = False):
    """`num_modules` residual modules in a row (pose-hg-train's nModules; the paper uses 1).

    The first is named `name`, the following `name_m2`, `name_m3`, ... so that models with one
    module per stage keep the same layer names.
    """
    for i in range(num_modules):
        x = apply_residual(x, filters, name if i == 0 else f"{name}_m{i + 1}", sync_bn)
    return x


def apply_hourglass(
    x, depth: int, filters: int, name: str, sync_bn: bool = False, num_modules: int = 1
):
    """One hourglass of the given recursion depth (paper Fig. 3).

    Each level sums an upper branch (residual at the current resolution) and a lower branch
    (max-pool 2 -> residual -> [next level | residual] -> residual -> nearest upsample x2).

    Args:
        x: [B, H, W, F] with H, W divisible by 2**depth.
        depth: levels of recursion (4 in the paper).
        filters: F.
        name: layer-name prefix.
        sync_bn: synchronise BatchNorm statistics across replicas.
        num_modules: residual modules at each of those places (1 in the paper's final model).

    Returns:
        [B, H, W, F].
    """
    up1 = apply_residuals(x, filters, f"{name}_up1", num_modules, sync_bn)
    low1 = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    low1 = apply_residuals(low1, filters, f"{name}_low1", num_modules, sync_bn)
    if depth > 1:
        low2 = apply_hourglass(
            low1, depth - 1, filters, f"{name}_d{depth - 1}", sync_bn, num_modules
        )
    else:
        low2 = apply_residuals(low1, filters, f"{name}_low2", num_modules, sync_bn)
    low3 = apply_residuals(low2, filters, f"{name}_low3", num_modules, sync_bn)
    up2 = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_upsample")(low3)
    return layers.Add(name=f"{name}_add")([up1, up2])


def apply_stem(x, filters: int, sync_bn: bool = False):
    """conv7x7/2 (64) + BN + ReLU -> residual(128) -> max-pool 2 -> residual(128) -> residual(F).

    Args:
        x: [B, S, S, 3] image.
        filters: F.

    Returns:
        [B, S/4, S/4, F].
    """
    x = _conv(64, 7, "stem_conv", strides=2)(x)
    x = layers.ReLU(name="stem_relu")(_bn("stem_bn", sync_bn)(x))
    x = apply_residual(x, 128, "stem_res1", sync_bn)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    x = apply_residual(x, 128, "stem_res2", sync_bn)
    return apply_residual(x, filters, "stem_res3", sync_bn)


def apply_stack_head(
    x, filters: int, num_joints: int, stack: int, sync_bn: bool = False, num_modules: int = 1
):
    """Residual(s) -> 1x1 conv + BN + ReLU ("features") -> 1x1 conv to K heatmaps.

    Returns:
        (features [B, H, W, F], heatmaps [B, H, W, K]).
    """
    name = f"stack{stack}"
    y = apply_residuals(x, filters, f"{name}_res", num_modules, sync_bn)
    y = _conv(filters, 1, f"{name}_feat_conv")(y)
    features = layers.ReLU(name=f"{name}_feat_relu")(_bn(f"{name}_feat_bn", sync_bn)(y))
    heatmaps = _conv(num_joints, 1, f"{name}_heatmap_conv")(features)
    return features, heatmaps


def build_model(config: ModelConfig | None = None, **overrides) -> keras.Model:
    """Builds the stacked hourglass network.

    Args:
        config: a `ModelConfig`; fields may also be given (or overridden) as keyword arguments,
            e.g. `build_model(num_stacks=2, num_features=64, input_size=64)`.

    Returns:
        A functional `keras.Model` named "stacked_hourglass" mapping a float image
        [B, S, S, 3] (values in [0, 1]) to a dict {"heatmaps_i": [B, S/4, S/4, K]}; with
        intermediate supervision every stack i = 1..N is an output, otherwise only i = N.
        Outputs are float32 even under a mixed-precision policy.
    """
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    f, k, sync = config.num_features, config.num_joints, config.sync_batch_norm
    image = keras.Input((config.input_size, config.input_size, 3), name="image")
    x = apply_stem(image, f, sync)
    outputs = {}
    for stack in range(1, config.num_stacks + 1):
        hg = apply_hourglass(x, config.depth, f, f"hg{stack}", sync, config.num_modules)
        features, heatmaps = apply_stack_head(hg, f, k, stack, sync, config.num_modules)
        # A linear float32 identity gives every output a stable name and keeps the loss in
        # float32 under mixed precision.
        heatmaps = layers.Activation("linear", dtype="float32", name=output_name(stack))(heatmaps)
        if config.intermediate_supervision or stack == config.num_stacks:
            outputs[output_name(stack)] = heatmaps
        if stack < config.num_stacks:
            merge_features = _conv(f, 1, f"stack{stack}_merge_features")(features)
            merge_heatmaps = _conv(f, 1, f"stack{stack}_merge_heatmaps")(heatmaps)
            x = layers.Add(name=f"stack{stack}_merge")([x, merge_features, merge_heatmaps])
    return keras.Model(image, outputs, name="stacked_hourglass")


def config_from_model(model: keras.Model) -> ModelConfig:
    """Recovers the `ModelConfig` of a model made by `build_model` (e.g. after loading)."""
    size = model.input_shape[1]
    outputs = model.output_names if hasattr(model, "output_names") else list(model.output)
    stacks = sorted(int(n.rsplit("_", 1)[1]) for n in outputs if n.startswith("heatmaps_"))
    num_stacks = max(stacks)
    depth = sum(
        1 for layer in model.layers if layer.name.startswith("hg1") and "pool" in layer.name
    )
    last = model.get_layer(output_name(num_stacks))
    return ModelConfig(
        num_stacks=num_stacks,
        num_features=model.get_layer("stem_res3_conv3").filters,
        depth=depth,
        num_joints=last.output.shape[-1],
        input_size=size,
        intermediate_supervision=len(stacks) == num_stacks,
        sync_batch_norm=model.get_layer("stem_bn").synchronized,
        num_modules=sum(
            1 for layer in model.layers if re.fullmatch(r"hg1_up1(_m\d+)?_add", layer.name)
        ),
    )


def count_parameters(model: keras.Model) -> dict:
    """Parameter counts: trainable, non-trainable (BatchNorm moving statistics) and total."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {
        "trainable": trainable,
        "non_trainable": non_trainable,
        "total": trainable + non_trainable,
    }


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass for one image, counted over the convolutions.

    Convolutions dominate; BatchNorm, ReLU, pooling, upsampling and additions (a few multiply-adds
    per activation) are left out, as in the usual FLOP counts of this network.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += h * w * c_out * kh * kw * c_in
    return int(total)


def summarize(config: ModelConfig) -> dict:
    """Builds a model and reports its size, cost, build time and first forward-pass time."""
    start = time.perf_counter()
    model = build_model(config)
    built = time.perf_counter()
    image = np.zeros((1, config.input_size, config.input_size, 3), np.float32)
    model(image, training=False)
    forward = time.perf_counter()
    return {
        "config": dataclasses.asdict(config),
        "parameters": count_parameters(model),
        "multiply_adds": count_multiply_adds(model),
        "build_seconds": built - start,
        "first_forward_seconds": forward - built,
    }


def main(argv=None):
    # argparse rather than absl flags: this module is imported by the trainer, whose absl flags
    # (e.g. --num_stacks) must not be declared twice.
    parser = argparse.ArgumentParser(description="Size and cost of a stacked hourglass network.")
    parser.add_argument("--summary", action="store_true", help="print size and cost (default)")
    parser.add_argument("--layers", action="store_true", help="also print the Keras layer table")
    defaults = ModelConfig()
    int_fields = ("num_stacks", "num_features", "depth", "num_joints", "input_size", "num_modules")
    for name in int_fields:
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    parser.add_argument("--supervise", choices=("all", "last"), default="all")
    args = parser.parse_args(argv)
    values = {name: getattr(args, name) for name in int_fields}
    values["intermediate_supervision"] = args.supervise == "all"
    config = ModelConfig(**values)
    report = summarize(config)
    if args.layers:
        build_model(config).summary()
    params = report["parameters"]
    print(f"config: {report['config']}")
    print(f"trainable parameters:     {params['trainable']:,} ({params['trainable'] / 1e6:.2f} M)")
    print(f"non-trainable parameters: {params['non_trainable']:,} (BatchNorm moving statistics)")
    print(f"total parameters:         {params['total']:,} ({params['total'] / 1e6:.2f} M)")
    print(
        f"multiply-adds per {config.input_size}x{config.input_size} image: "
        f"{report['multiply_adds'] / 1e9:.2f} G"
    )
    print(f"build time: {report['build_seconds']:.2f} s")
    print(f"first forward pass (batch 1): {report['first_forward_seconds']:.2f} s")


if __name__ == "__main__":
    main()
