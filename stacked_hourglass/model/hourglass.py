"""The stacked hourglass network (Newell, Yang, Deng, ECCV 2016) as a Keras model.

Layout follows the paper and the reference implementation (umich-vl/pose-hg-train `hg.lua`):

  image [B, S, S, 3] -> stem (conv7x7/2, residual, max-pool, residual, residual) [B, S/4, S/4, F]
    -> N x (hourglass -> residual -> 1x1 conv+BN+ReLU "features" -> 1x1 conv "heatmaps_i")
  with `x_{i+1} = x_i + conv1x1(features_i) + conv1x1(heatmaps_i)` between stacks.

Tensors are channels-last. Heatmaps are at 1/4 of the input resolution (64x64 for 256x256).
Every stack has its own weights; every stack's heatmaps are a named model output
(`heatmaps_1` ... `heatmaps_N`) so that `model.compile(loss=...)` gives each stack its own MSE loss
(intermediate supervision). With `intermediate_supervision=False` only the last stack's heatmaps
are an output: the network is the same, only the loss differs (the paper's ablation).

Layer names are stable (`stem_conv`, `hg2_d3_low1_conv2`, `stack1_heatmap_conv`, ...): weight
import (`stacked_hourglass.weights`) and older checkpoints rely on them. Each BatchNorm layer
applies the ReLU after it (`FusedBatchNormalization(activation="relu")`); models built with a
ReLU layer after each BatchNorm have the same variables and load unchanged.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from stacked_hourglass.config import ModelConfig, output_name
from stacked_hourglass.model.layers import (
    BiasAddConv2D,
    FusedBatchNormalization,
    NearestUpsampling2D,
)

_BN_MOMENTUM = 0.9  # Torch's SpatialBatchNormalization momentum 0.1 on the new statistic.
_BN_EPSILON = 1e-5  # Torch's default, and both PyTorch reference implementations'.


def _conv(filters, kernel_size, name, strides=1, padding="same"):
    return BiasAddConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        # Torch's default (pose-hg-train): U(-1/sqrt(fan_in), 1/sqrt(fan_in)). He init makes the
        # summed residual streams and the first heatmaps large, and training starts slower.
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        name=name,
    )


def _bn_relu(name, sync):
    """BatchNorm then ReLU, as one layer (`FusedBatchNormalization`'s `activation`)."""
    return FusedBatchNormalization(
        activation="relu",
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        synchronized=sync,
        name=name,
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
    y = _bn_relu(f"{name}_bn1", sync_bn)(x)
    y = _conv(half, 1, f"{name}_conv1")(y)
    y = _bn_relu(f"{name}_bn2", sync_bn)(y)
    y = _conv(half, 3, f"{name}_conv2")(y)
    y = _bn_relu(f"{name}_bn3", sync_bn)(y)
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
    up2 = NearestUpsampling2D(2, interpolation="nearest", name=f"{name}_upsample")(low3)
    return layers.Add(name=f"{name}_add")([up1, up2])


def apply_stem(x, config: ModelConfig):
    """conv7x7/2 + BN + ReLU -> residual -> max-pool 2 -> residual -> residual(F).

    Channels are `config.stem_features` (paper: 64, 128, 128) and then F. The 7x7 stride-2
    convolution pads 3 pixels on every side, as Torch does and as the paper's grid assumes
    (TF's "same" would pad 2 before and 3 after on an even input, shifting every output by
    one input pixel); `stem_padding="same"` keeps that for model directories trained with it.

    Args:
        x: [B, S, S, 3] image.
        config: the model's config.

    Returns:
        [B, S/4, S/4, F].
    """
    conv_filters, res1_filters, res2_filters = config.stem_features
    sync = config.sync_batch_norm
    if config.stem_padding == "symmetric":
        x = layers.ZeroPadding2D(3, name="stem_pad")(x)
        x = _conv(conv_filters, 7, "stem_conv", strides=2, padding="valid")(x)
    else:
        x = _conv(conv_filters, 7, "stem_conv", strides=2)(x)
    x = _bn_relu("stem_bn", sync)(x)
    x = apply_residual(x, res1_filters, "stem_res1", sync)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    x = apply_residual(x, res2_filters, "stem_res2", sync)
    return apply_residual(x, config.num_features, "stem_res3", sync)


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
    features = _bn_relu(f"{name}_feat_bn", sync_bn)(y)
    heatmaps = _conv(num_joints, 1, f"{name}_heatmap_conv")(features)
    return features, heatmaps


def apply_stacked_hourglass(image, config: ModelConfig) -> dict:
    """The whole network on a Keras input; returns the dict of supervised heatmap outputs."""
    f, k, sync = config.num_features, config.num_joints, config.sync_batch_norm
    x = image
    if any(config.input_mean):
        # Imported networks expect a mean-subtracted input; in the model, so every consumer
        # (evaluation, SavedModel, LiteRT) feeds the same [0, 1] crops.
        offset = [-m for m in config.input_mean]
        x = layers.Rescaling(1.0, offset=offset, name="input_normalization")(x)
    x = apply_stem(x, config)
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
    return outputs


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class StackedHourglass(keras.Model):
    """The stacked hourglass network: image [B, S, S, 3] in [0, 1] -> {"heatmaps_i": [B, H, H, K]}.

    A functional model (so `summary()`, layer access by name and weight files work as for any
    functional model) whose constructor takes the `ModelConfig` fields, and whose `get_config`
    returns them, so that `.keras` files rebuild the same architecture.

    Args:
        **fields: `ModelConfig` fields (e.g. `num_stacks=2, num_features=64, input_size=128`),
            plus Keras's `name`, `trainable` and `dtype`.
    """

    def __init__(self, name: str = "stacked_hourglass", **fields):
        keras_kwargs = {k: fields.pop(k) for k in ("trainable", "dtype") if k in fields}
        try:
            config = ModelConfig(**fields)
        except TypeError as e:
            raise ValueError(f"StackedHourglass: {e}") from None
        image = keras.Input((config.input_size, config.input_size, 3), name="image")
        outputs = apply_stacked_hourglass(image, config)
        super().__init__(inputs=image, outputs=outputs, name=name, **keras_kwargs)
        self.hourglass_config = config

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            **dataclasses.asdict(self.hourglass_config),
        }

    @classmethod
    def from_config(cls, config: dict) -> StackedHourglass:
        config = dict(config)
        config.pop("dtype", None)  # the policy is global (mixed precision), not per model
        return cls(**config)


def build_model(config: ModelConfig | None = None, **overrides) -> StackedHourglass:
    """Builds the stacked hourglass network.

    Args:
        config: a `ModelConfig`; fields may also be given (or overridden) as keyword arguments,
            e.g. `build_model(num_stacks=2, num_features=64, input_size=64)`.

    Returns:
        A `StackedHourglass` mapping a float image [B, S, S, 3] (values in [0, 1]) to a dict
        {"heatmaps_i": [B, S/4, S/4, K]}; with intermediate supervision every stack i = 1..N is
        an output, otherwise only i = N. Outputs are float32 even under a mixed-precision policy.
    """
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    return StackedHourglass(**dataclasses.asdict(config))


def model_config(model: keras.Model) -> ModelConfig:
    """The `ModelConfig` of a `StackedHourglass` (built here or loaded from a `.keras` file)."""
    config = getattr(model, "hourglass_config", None)
    if config is None:
        raise ValueError(
            f"{model.name!r} is a {type(model).__name__}, not a StackedHourglass; rebuild it with "
            "build_model(...) and load its weights"
        )
    return config
