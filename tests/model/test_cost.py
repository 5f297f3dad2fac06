"""Size and cost of the network: parameters, multiply-adds, the summary report."""

import pytest

from stacked_hourglass import model as model_lib
from stacked_hourglass.model import cost

TINY = dict(num_stacks=2, num_features=16, depth=4, num_joints=5, input_size=64)


def test_paper_model_size():
    """8 stacks x 256 features x 16 joints: 25,434,112 trainable (reference layout), 27 G MACs."""
    model = model_lib.build_model(num_stacks=8)
    counts = model_lib.count_parameters(model)
    assert counts["trainable"] == 25_434_112
    assert counts["trainable"] == pytest.approx(25.43e6, rel=0.003)
    assert counts["total"] == pytest.approx(25.55e6, rel=0.003)
    assert counts["total"] == counts["trainable"] + counts["non_trainable"]
    assert len(model.outputs) == 8
    for output in model.outputs:
        assert tuple(output.shape) == (None, 64, 64, 16)
    assert model_lib.count_multiply_adds(model) == pytest.approx(27e9, rel=0.03)


def test_batch_norm_statistics_are_the_non_trainable_parameters():
    model = model_lib.build_model(**TINY)
    counts = model_lib.count_parameters(model)
    moving = sum(int(w.shape[0]) for w in model.non_trainable_weights if "moving" in w.path)
    assert counts["non_trainable"] == moving > 0
    assert counts["total"] == model.count_params()


def test_conv_multiply_adds_hand_computed():
    # One stem conv: 7x7x3x64 weights applied at 32x32 outputs for a 64x64 input.
    model = model_lib.build_model(**TINY)
    stem = model.get_layer("stem_conv")
    assert tuple(stem.output.shape[1:3]) == (32, 32)
    total = model_lib.count_multiply_adds(model)
    assert total > 32 * 32 * 7 * 7 * 3 * 64
    # Every convolution runs on 4x the pixels when the input side doubles.
    bigger = model_lib.build_model(**dict(TINY, input_size=128))
    assert model_lib.count_multiply_adds(bigger) == 4 * total


def test_summarize_and_format_summary():
    config = model_lib.ModelConfig(num_stacks=1, num_features=16, input_size=64)
    report = cost.summarize(config)
    assert report["config"]["num_stacks"] == 1
    assert report["parameters"] == model_lib.count_parameters(model_lib.build_model(config))
    assert report["multiply_adds"] > 0
    assert report["build_seconds"] > 0 and report["first_forward_seconds"] > 0
    text = cost.format_summary(report)
    trainable = report["parameters"]["trainable"]
    assert f"trainable parameters:     {trainable:,}" in text
    assert "multiply-adds per 64x64 image" in text
    assert len(text.splitlines()) == 7
