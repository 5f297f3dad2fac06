"""`train --init_from`: the channel mapping (hand-computed), the joint matching (MPII → COCO: the
12 limb joints; --joint_map), the weight transfer into a new joint set's network, and its
one-line errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stacked_hourglass import joints, run_dir
from stacked_hourglass.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    with_records_joint_set,
)
from stacked_hourglass.model import build_model
from stacked_hourglass.training import init_from

TINY = dict(num_features=16, depth=1, input_size=64)
# (MPII channel, COCO channel) of the 12 limb joints, in COCO order.
MPII_TO_COCO = [
    (13, 5), (12, 6), (14, 7), (11, 8), (15, 9), (10, 10),
    (3, 11), (2, 12), (4, 13), (1, 14), (5, 15), (0, 16),
]  # fmt: skip


def test_map_channels_copies_the_paired_channels_only():
    fresh = np.zeros((2, 3))
    source = np.array([[1.0, 2.0], [3.0, 4.0]])
    mapped = init_from.map_channels(fresh, source, [(1, 0), (0, 2)], axis=1)
    np.testing.assert_array_equal(mapped, [[2.0, 0.0, 1.0], [4.0, 0.0, 3.0]])
    assert not fresh.any()  # not changed in place
    bias = init_from.map_channels(np.full(3, 9.0), np.array([5.0, 6.0]), [(0, 2)], axis=0)
    np.testing.assert_array_equal(bias, [9.0, 9.0, 5.0])
    np.testing.assert_array_equal(init_from.map_channels(bias, np.zeros(2), [], 0), bias)
    with pytest.raises(ValueError, match=r"shape \(3, 2\) does not fit \(2, 3\)"):
        init_from.map_channels(fresh, np.zeros((3, 2)), [(0, 0)], axis=1)


def test_mpii_to_coco_carries_the_12_limb_joints():
    assert init_from.match_joints(joints.MPII, joints.COCO) == MPII_TO_COCO
    mapped = init_from.match_joints(joints.MPII, joints.COCO, [("head_top", "nose")])
    assert mapped == [(9, 0), *MPII_TO_COCO]
    # A map entry wins over the name match.
    swapped = init_from.match_joints(joints.MPII, joints.COCO, [("l_knee", "right_knee")])
    assert (4, 14) in swapped and (1, 14) not in swapped


@pytest.mark.parametrize(
    "entries, message",
    [
        (["head_top"], "--joint_map: entry 'head_top' is not source_joint:new_joint"),
        (["a:b:c"], "--joint_map: entry 'a:b:c' is not source_joint:new_joint"),
        (["chin:nose"], "--joint_map: chin:nose: 'chin' is no joint of the source model's joint "
                        "set 'mpii' (r_ankle, r_knee,"),
        (["head_top:tail"], "--joint_map: head_top:tail: 'tail' is no joint of this run's joint "
                            "set 'coco' (nose, left_eye,"),
        (["head_top:nose", "upper_neck:nose"], "--joint_map: 'nose' is mapped twice"),
    ],
)  # fmt: skip
def test_bad_joint_map_entries_are_one_line(entries, message):
    with pytest.raises(ValueError) as error:
        init_from.match_joints(joints.MPII, joints.COCO, init_from.parse_joint_map(entries))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def mpii_source(make_model_dir, tmp_path_factory):
    """A random 2-stack MPII model directory (so a merge_heatmaps layer exists)."""
    path = str(tmp_path_factory.mktemp("mpii_source") / "run")
    return {"path": path, "model": make_model_dir(path, num_stacks=2, dataset="mpii", seed=5)}


def _coco_config(source, model_dir, num_stacks=2, joint_map=(), **model) -> ExperimentConfig:
    config = ExperimentConfig(
        model=ModelConfig(num_stacks=num_stacks, **{**TINY, **model}),
        data=DataConfig(dataset="coco"),
        train=TrainConfig(model_dir=str(model_dir), init_from=source, joint_map=joint_map),
    )
    return with_records_joint_set(config, None, "records").resolve()


def _weights(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}


def test_init_from_mpii_to_coco_carries_the_named_joints_channels(mpii_source, tmp_path):
    config, plan = init_from.prepare(_coco_config(mpii_source["path"], tmp_path / "new"))
    model = build_model(config.model)
    fresh, source = _weights(model), _weights(mpii_source["model"])
    lines = []
    loaded = init_from.initialise(model, plan, joints.COCO, print_fn=lines.append)
    got = _weights(model)
    assert loaded == sum(1 for layer in model.layers if layer.weights)
    src, dst = (list(c) for c in zip(*MPII_TO_COCO, strict=True))
    others = [j for j in range(17) if j not in dst]
    for stack in (1, 2):
        (kernel, bias), (src_kernel, src_bias) = (
            got[f"stack{stack}_heatmap_conv"],
            source[f"stack{stack}_heatmap_conv"],
        )
        fresh_kernel, fresh_bias = fresh[f"stack{stack}_heatmap_conv"]
        np.testing.assert_array_equal(kernel[..., dst], src_kernel[..., src])
        np.testing.assert_array_equal(bias[dst], src_bias[src])
        np.testing.assert_array_equal(kernel[..., others], fresh_kernel[..., others])
        np.testing.assert_array_equal(bias[others], fresh_bias[others])
    (merge, merge_bias), (src_merge, src_merge_bias) = (
        got["stack1_merge_heatmaps"],
        source["stack1_merge_heatmaps"],
    )
    np.testing.assert_array_equal(merge[:, :, dst, :], src_merge[:, :, src, :])
    np.testing.assert_array_equal(
        merge[:, :, others, :], fresh["stack1_merge_heatmaps"][0][:, :, others, :]
    )
    np.testing.assert_array_equal(merge_bias, src_merge_bias)
    for name in ("stem_conv", "hg1_low_res_conv1", "stack2_feat_bn", "stack1_merge_features"):
        for mine, theirs in zip(got.get(name, []), source.get(name, []), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    assert lines == [
        f"--init_from={mpii_source['path']}: 12 of 17 joints carried over from 'mpii': "
        "left_shoulder (l_shoulder), right_shoulder (r_shoulder), left_elbow (l_elbow), "
        "right_elbow (r_elbow), left_wrist (l_wrist), right_wrist (r_wrist), left_hip (l_hip), "
        "right_hip (r_hip), left_knee (l_knee), right_knee (r_knee), left_ankle (l_ankle), "
        "right_ankle (r_ankle)",
        f"--init_from={mpii_source['path']}: 5 joints freshly initialised: nose, left_eye, "
        "right_eye, left_ear, right_ear",
    ]


def test_joint_map_carries_the_named_pairs(mpii_source, tmp_path):
    config = _coco_config(mpii_source["path"], tmp_path / "new", joint_map=("head_top:nose",))
    config, plan = init_from.prepare(config)
    model = build_model(config.model)
    lines = []
    init_from.initialise(model, plan, joints.COCO, print_fn=lines.append)
    kernel = model.get_layer("stack2_heatmap_conv").get_weights()[0]
    source = mpii_source["model"].get_layer("stack2_heatmap_conv").get_weights()[0]
    np.testing.assert_array_equal(kernel[..., 0], source[..., 9])
    assert ": 13 of 17 joints carried over from 'mpii': nose (head_top), left_shoulder" in lines[0]
    assert lines[1].endswith(
        "4 joints freshly initialised: left_eye, right_eye, left_ear, right_ear"
    )


@pytest.mark.parametrize(
    "model, message",
    [
        (dict(num_features=32), "the source model does not fit this one: layer 'stem_res3_"),
        (
            dict(num_stacks=3),
            "the source model does not fit this one: layer 'stack2_merge_features' is not in "
            "the source model",
        ),
        (
            dict(num_stacks=1),
            "the source model does not fit this one: layer 'stack1_merge_features' is not in "
            "this run's model",
        ),
    ],
)
def test_a_source_of_another_architecture_is_one_line(mpii_source, tmp_path, model, message):
    config, plan = init_from.prepare(_coco_config(mpii_source["path"], tmp_path / "new", **model))
    with pytest.raises(ValueError) as error:
        init_from.initialise(build_model(config.model), plan, joints.COCO)
    text = str(error.value)
    assert text.startswith(f"--init_from={mpii_source['path']}: {message}"), text
    assert "(source: 2 stacks, 16 features, depth 1, 1 modules, 16 joints;" in text
    assert "\n" not in text


def test_the_source_s_non_flag_fields_are_adopted(make_model_dir, tmp_path):
    source = str(tmp_path / "imported")
    make_model_dir(source, num_stacks=1, input_mean=(0.5, 0.4, 0.3), stem_padding="same")
    config, plan = init_from.prepare(_coco_config(source, tmp_path / "new", num_stacks=1))
    assert config.model.input_mean == (0.5, 0.4, 0.3) and config.model.stem_padding == "same"
    assert plan.fresh[0] == "nose"


def test_a_resumed_run_loads_nothing_from_init_from(mpii_source, tmp_path):
    run = str(tmp_path / "run")
    stored = _coco_config(mpii_source["path"], run)
    stored = dataclasses.replace(
        stored, model=dataclasses.replace(stored.model, input_mean=(0.1, 0.2, 0.3))
    )
    run_dir.save_config(run, stored)
    run_dir.write_state(run, {"epoch": 1, "epoch_step": 0, "step": 3})
    lines = []
    config = _coco_config(str(tmp_path / "gone"), run)
    config, plan = init_from.prepare(config, print_fn=lines.append)
    assert plan is None and config.model.input_mean == (0.1, 0.2, 0.3)
    assert lines == [
        f"Resuming {run}: --init_from={tmp_path / 'gone'} loads nothing (the run's checkpoint "
        "holds its weights)"
    ]


def test_joint_map_without_init_from_and_a_missing_source_are_one_line(tmp_path):
    config = _coco_config("", tmp_path / "new", joint_map=("a:b",))
    with pytest.raises(ValueError, match="^--joint_map needs --init_from"):
        init_from.prepare(config)
    with pytest.raises(FileNotFoundError, match="no config.json; is .*nowhere a model_dir"):
        init_from.prepare(_coco_config(str(tmp_path / "nowhere"), tmp_path / "new"))
