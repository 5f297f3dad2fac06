"""The network: shapes, names, wiring, the stem, training, get_config and `.keras` files."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import model as model_lib
from stacked_hourglass.model import StackedHourglass
from stacked_hourglass.training.optimizers import TorchRMSprop

TINY = dict(num_stacks=2, num_features=16, depth=4, num_joints=5, input_size=64)
ONE = dict(TINY, num_stacks=1)  # where a second stack adds nothing but time


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return model_lib.build_model(**TINY)


def _image(batch=2, size=64, seed=0):
    return np.random.default_rng(seed).random((batch, size, size, 3), np.float32)


def _max_abs_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


@pytest.mark.parametrize(
    "config, expected",
    [
        (dict(num_stacks=1, num_features=16, input_size=64, num_joints=16), 1),
        (dict(num_stacks=2, num_features=8, input_size=64, num_joints=11, depth=3), 2),
        (dict(num_stacks=3, num_features=8, input_size=128, num_joints=4, depth=2), 3),
    ],
)
def test_output_shapes_and_names(config, expected):
    model = model_lib.build_model(**config)
    size = config["input_size"] // 4
    names = [f"heatmaps_{i}" for i in range(1, expected + 1)]
    assert sorted(model.output_names) == names
    out = model(np.zeros((2, config["input_size"], config["input_size"], 3), np.float32))
    assert sorted(out) == names
    for name in names:
        assert tuple(out[name].shape) == (2, size, size, config["num_joints"])


def test_build_model_takes_a_config_and_overrides():
    base = model_lib.ModelConfig(**ONE)
    model = model_lib.build_model(base, num_joints=3)
    assert isinstance(model, StackedHourglass)
    assert model.hourglass_config == dataclasses.replace(base, num_joints=3)
    assert model_lib.model_config(model) is model.hourglass_config


def test_no_variable_shared_between_stacks(tiny):
    paths = [v.path for v in tiny.weights]
    assert len(paths) == len(set(paths))
    ids = [id(v) for v in tiny.weights]
    assert len(ids) == len(set(ids))
    stack1 = {v.path for v in tiny.weights if v.path.startswith(("hg1_", "stack1_"))}
    stack2 = {v.path for v in tiny.weights if v.path.startswith(("hg2_", "stack2_"))}
    assert stack1 and stack2 and not stack1 & stack2
    # Same layout, separate variables.
    assert len([p for p in stack1 if p.startswith("hg1_")]) == len(
        [p for p in stack2 if p.startswith("hg2_")]
    )


def test_reinjection_is_wired():
    keras.utils.set_random_seed(2)
    model = model_lib.build_model(**TINY)
    image = _image(1)
    before = model(image)
    for name in ("stack1_merge_heatmaps", "stack1_merge_features"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), bias])
        after = model(image)
        np.testing.assert_allclose(after["heatmaps_1"], before["heatmaps_1"], atol=1e-6)
        assert (
            np.abs(np.asarray(after["heatmaps_2"]) - np.asarray(before["heatmaps_2"])).max() > 1e-4
        )
        before = after


def test_last_stack_only_supervision():
    model = model_lib.build_model(**TINY, intermediate_supervision=False)
    assert model.output_names == ["heatmaps_2"]
    # The same network: the intermediate heatmaps still feed the next stack.
    full = model_lib.build_model(**TINY)
    assert model.count_params() == full.count_params()


def test_modules_per_stage_keep_depth_and_size_comparable():
    """The paper's stacking ablation: 2 stacks x 2 modules vs 4 stacks x 1 module."""
    two = model_lib.build_model(num_stacks=2, num_modules=2, num_features=16, input_size=64)
    four = model_lib.build_model(num_stacks=4, num_modules=1, num_features=16, input_size=64)
    p2 = model_lib.count_parameters(two)["trainable"]
    p4 = model_lib.count_parameters(four)["trainable"]
    assert abs(p2 - p4) / p4 < 0.03
    convs = [sum("_conv2" in layer.name for layer in m.layers) for m in (two, four)]
    assert abs(convs[0] - convs[1]) <= 2  # the same number of residual modules, give or take
    assert model_lib.model_config(two).num_modules == 2
    assert two.get_layer("hg1_up1_m2_add") is not None


@pytest.mark.parametrize(
    "depth",
    [
        2,  # the same wiring with fewer levels: Keras traces its train step 3x faster
        pytest.param(4, marks=pytest.mark.large),  # about a minute of tracing on a laptop CPU
    ],
)
def test_tiny_model_loss_decreases(depth):
    keras.utils.set_random_seed(3)
    model = model_lib.build_model(**dict(TINY, depth=depth))
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 3), np.float32)
    y = rng.random((4, 16, 16, 5), np.float32)
    model.compile(
        optimizer=TorchRMSprop(learning_rate=1e-3),
        loss={n: "mse" for n in model.output_names},
        jit_compile=False,  # XLA on CPU spends a minute compiling for 16 steps
    )
    # Slots made before the first step: tf.function traces the train step once, not twice.
    model.optimizer.build(model.trainable_variables)
    first = model.train_on_batch(x, {n: y for n in model.output_names})[0]
    for _ in range(15):
        last = model.train_on_batch(x, {n: y for n in model.output_names})[0]
    assert last < 0.5 * first


# --- the stem -----------------------------------------------------------------------------


def _stem_conv_output(model, image):
    return keras.Model(model.input, model.get_layer("stem_conv").output)(image).numpy()


def _reference_conv(image, kernel, bias, pad_before, pad_after, stride=2):
    """A 7x7 stride-2 convolution in numpy, with explicit zero padding."""
    padded = np.pad(
        image.astype(np.float64), ((0, 0), (pad_before, pad_after), (pad_before, pad_after), (0, 0))
    )
    k = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [B, H', W', C, k, k]
    return np.einsum("bijcyx,yxco->bijo", windows, kernel.astype(np.float64)) + bias


def test_stem_pads_three_on_every_side():
    keras.utils.set_random_seed(4)
    symmetric = model_lib.build_model(**ONE)
    assert symmetric.hourglass_config.stem_padding == "symmetric"
    kernel, bias = symmetric.get_layer("stem_conv").get_weights()
    assert kernel.shape == (7, 7, 3, 64)
    image = _image(2)
    got = _stem_conv_output(symmetric, image)
    assert got.shape == (2, 32, 32, 64)
    np.testing.assert_allclose(got, _reference_conv(image, kernel, bias, 3, 3), atol=1e-5)
    # The same with TF's own op and explicit padding.
    tf_ref = tf.nn.conv2d(image, kernel, 2, padding=[[0, 0], [3, 3], [3, 3], [0, 0]]) + bias
    np.testing.assert_allclose(got, tf_ref.numpy(), atol=1e-5)

    # 'same' (older model directories): 2 before and 3 after, the same weights.
    same = model_lib.build_model(**ONE, stem_padding="same")
    same.set_weights(symmetric.get_weights())  # no weights in the padding layer
    got_same = _stem_conv_output(same, image)
    np.testing.assert_allclose(got_same, _reference_conv(image, kernel, bias, 2, 3), atol=1e-5)
    assert np.abs(got_same - got).max() > 1e-2
    assert _max_abs_diff(same(image), symmetric(image)) > 1e-4


def _taps_that_see_pixel_0(stem_padding):
    """{(output row, output col, kernel tap)} of the stem conv that read input pixel (0, 0)."""
    model = model_lib.build_model(**ONE, stem_features=(49, 64, 64), stem_padding=stem_padding)
    kernel = np.zeros((7, 7, 3, 49), np.float32)
    for tap in range(49):
        kernel[tap // 7, tap % 7, 0, tap] = 1.0  # output channel `tap` reads kernel row/col tap
    model.get_layer("stem_conv").set_weights([kernel, np.zeros(49, np.float32)])
    image = np.zeros((1, 64, 64, 3), np.float32)
    image[0, 0, 0, 0] = 1.0
    out = _stem_conv_output(model, image)[0]
    return {(i, j, c) for i, j, c in zip(*np.nonzero(out), strict=True)}


def test_stem_padding_on_a_hand_made_case():
    """One 1 at input pixel (0, 0) and a kernel whose channels each read one tap."""
    # Symmetric: output (0, 0) covers padded rows/cols 0..6 = input -3..3, so input 0 is its
    # tap 3; output 1 covers input -1..5: tap 1.
    expected = {(i, j, (3 - 2 * i) * 7 + (3 - 2 * j)) for i in (0, 1) for j in (0, 1)}
    assert _taps_that_see_pixel_0("symmetric") == expected
    # TF's 'same' pads 2 before: every output sees the input one pixel later (taps 2 and 0).
    expected = {(i, j, (2 - 2 * i) * 7 + (2 - 2 * j)) for i in (0, 1) for j in (0, 1)}
    assert _taps_that_see_pixel_0("same") == expected


def test_input_mean_is_subtracted_inside_the_model():
    mean = (0.485, 0.456, 0.406)
    keras.utils.set_random_seed(5)
    with_mean = model_lib.build_model(**ONE, input_mean=mean)
    without = model_lib.build_model(**ONE)
    assert with_mean.get_layer("input_normalization") is not None
    assert "input_normalization" not in [layer.name for layer in without.layers]
    without.set_weights(with_mean.get_weights())
    image = _image(2)
    shifted = image - np.asarray(mean, np.float32)
    assert _max_abs_diff(with_mean(image), without(shifted)) <= 1e-6
    assert _max_abs_diff(with_mean(image), without(image)) > 1e-4


# --- serialisation ------------------------------------------------------------------------

# Non-default values for the fields a round trip could drop.
ODD = dict(
    num_stacks=2,
    num_features=16,
    depth=3,
    num_modules=1,
    input_size=64,
    num_joints=3,
    intermediate_supervision=False,
    stem_features=(8, 16, 24),
    stem_padding="same",
    input_mean=(0.25, 0.5, 0.75),
)


def test_get_config_from_config_round_trip(tiny):
    config = tiny.get_config()
    json.dumps(config)  # JSON-serialisable, as `.keras` files need
    assert {k: config[k] for k in TINY} == TINY
    rebuilt = StackedHourglass.from_config(config)
    assert rebuilt.count_params() == tiny.count_params()
    assert sorted(rebuilt.output_names) == sorted(tiny.output_names)
    assert model_lib.model_config(tiny) == model_lib.ModelConfig(**TINY)
    assert rebuilt.hourglass_config == tiny.hourglass_config

    odd = StackedHourglass(**ODD, name="odd")
    again = StackedHourglass.from_config(json.loads(json.dumps(odd.get_config())))
    assert again.name == "odd"
    assert again.hourglass_config == odd.hourglass_config == model_lib.ModelConfig(**ODD)
    # A dtype (what Keras adds to layer configs) is left to the global policy.
    assert StackedHourglass.from_config({**odd.get_config(), "dtype": "float32"}).name == "odd"
    # Registered, so Keras's generic (de)serialisation finds the class.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(odd))
    assert isinstance(restored, StackedHourglass)
    assert restored.hourglass_config == odd.hourglass_config


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(6)
    model = model_lib.build_model(**ODD)
    image = _image(2)
    expected = model(image)
    path = tmp_path / "odd.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, StackedHourglass)
    assert loaded.hourglass_config == model.hourglass_config
    assert model_lib.model_config(loaded) == model_lib.ModelConfig(**ODD)
    assert loaded.output_names == ["heatmaps_2"]
    assert _max_abs_diff(loaded(image), expected) == 0.0


def test_keras_file_round_trip_default_stem(tiny, tmp_path):
    image = _image(2, seed=1)
    expected = tiny(image)
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.hourglass_config == tiny.hourglass_config
    assert loaded.get_layer("stem_pad") is not None
    assert _max_abs_diff(loaded(image), expected) == 0.0


def test_model_config_of_another_model_says_what_it_is():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="plain")
    with pytest.raises(ValueError, match="'plain' is a Sequential, not a StackedHourglass"):
        model_lib.model_config(plain)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=100), "input_size=100"),
        (dict(num_stacks=0), "num_stacks must be a positive integer, got 0"),
        (dict(num_features=15), "num_features must be even.*got 15"),
        (dict(depth=5, input_size=64), "depth=5"),
        (dict(depth=5, input_size=64), "4 \\* 2\\*\\*depth = 128.*input_size=64"),
        (dict(num_joints=-1), "num_joints must be a positive integer, got -1"),
        (dict(num_modules=True), "num_modules must be a positive integer, got True"),
        (dict(stem_padding="valid"), "stem_padding must be one of symmetric, same; got 'valid'"),
        (
            dict(stem_features=(64, 128)),
            "stem_features must be 3 channel counts, got \\(64, 128\\)",
        ),
        (dict(input_mean=(0.5,)), "input_mean must be 3 values .*got \\(0.5,\\)"),
    ],
)
def test_bad_arguments_show_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_lib.ModelConfig(**kwargs)
    with pytest.raises(ValueError, match=message):
        model_lib.build_model(**{**TINY, **kwargs})


def test_unknown_argument_names_it():
    with pytest.raises(ValueError, match="StackedHourglass: .*'num_stack'"):
        StackedHourglass(num_stack=2)
