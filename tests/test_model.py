"""The network: shapes, names, parameter count, wiring, training, serialisation."""

import keras
import numpy as np
import pytest

from stacked_hourglass import model as model_lib
from stacked_hourglass.training.optimizers import TorchRMSprop

TINY = dict(num_stacks=2, num_features=16, depth=4, num_joints=5, input_size=64)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return model_lib.build_model(**TINY)


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


def test_paper_model_size():
    """8 stacks x 256 features x 16 joints: 25.43 M trainable (reference layout), 27 G MACs."""
    model = model_lib.build_model(num_stacks=8)
    counts = model_lib.count_parameters(model)
    assert counts["trainable"] == pytest.approx(25.43e6, rel=0.003)
    assert counts["total"] == pytest.approx(25.55e6, rel=0.003)
    assert len(model.outputs) == 8
    for output in model.outputs:
        assert tuple(output.shape) == (None, 64, 64, 16)
    assert model_lib.count_multiply_adds(model) == pytest.approx(27e9, rel=0.03)


def test_conv_multiply_adds_hand_computed():
    # One stem conv: 7x7x3x64 weights applied at 32x32 outputs for a 64x64 input.
    model = model_lib.build_model(**TINY)
    stem = model.get_layer("stem_conv")
    assert tuple(stem.output.shape[1:3]) == (32, 32)
    total = model_lib.count_multiply_adds(model)
    assert total > 32 * 32 * 7 * 7 * 3 * 64


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
    image = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
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


def test_tiny_model_loss_decreases():
    keras.utils.set_random_seed(3)
    model = model_lib.build_model(**TINY)
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 3), np.float32)
    y = rng.random((4, 16, 16, 5), np.float32)
    model.compile(
        optimizer=TorchRMSprop(learning_rate=1e-3),
        loss={n: "mse" for n in model.output_names},
    )
    first = model.train_on_batch(x, {n: y for n in model.output_names})[0]
    for _ in range(15):
        last = model.train_on_batch(x, {n: y for n in model.output_names})[0]
    assert last < 0.5 * first


def test_config_round_trip(tiny):
    config = tiny.get_config()
    rebuilt = keras.Model.from_config(config)
    assert rebuilt.count_params() == tiny.count_params()
    assert sorted(rebuilt.output_names) == sorted(tiny.output_names)
    recovered = model_lib.config_from_model(tiny)
    assert recovered == model_lib.ModelConfig(**TINY)


def test_keras_file_round_trip(tiny, tmp_path):
    image = np.random.default_rng(1).random((2, 64, 64, 3), np.float32)
    expected = tiny(image)
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    loaded = keras.models.load_model(path)
    got = loaded(image)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=100), "input_size=100"),
        (dict(num_stacks=0), "num_stacks"),
        (dict(num_features=15), "num_features"),
        (dict(depth=5, input_size=64), "depth=5"),
    ],
)
def test_bad_arguments_show_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_lib.ModelConfig(**kwargs)


def test_summary_command(capsys):
    model_lib.main(["--num_stacks=1", "--num_features=16", "--input_size=64"])
    out = capsys.readouterr().out
    assert "trainable parameters" in out and "multiply-adds per 64x64 image" in out


def test_modules_per_stage_keep_depth_and_size_comparable():
    """The paper's stacking ablation: 2 stacks x 2 modules vs 4 stacks x 1 module."""
    two = model_lib.build_model(num_stacks=2, num_modules=2, num_features=16, input_size=64)
    four = model_lib.build_model(num_stacks=4, num_modules=1, num_features=16, input_size=64)
    p2 = model_lib.count_parameters(two)["trainable"]
    p4 = model_lib.count_parameters(four)["trainable"]
    assert abs(p2 - p4) / p4 < 0.03
    convs = [sum("_conv2" in layer.name for layer in m.layers) for m in (two, four)]
    assert abs(convs[0] - convs[1]) <= 2  # the same number of residual modules, give or take
    assert model_lib.config_from_model(two).num_modules == 2
    assert two.get_layer("hg1_up1_m2_add") is not None
