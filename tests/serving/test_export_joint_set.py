"""The joint set travels with an export: the SavedModel's joints.json and LiteRT's FILE.json
record it (`JointSet.to_dict`), and `predictor.read_info` gives it back, names and all."""

from __future__ import annotations

import json

import pytest

from stacked_hourglass import joints
from stacked_hourglass.serving import exporter, layout, predictor


def test_an_export_records_a_custom_joint_set_and_read_info_gives_it_back(
    make_model_dir, tool_records, tmp_path
):
    tool = tool_records["joint_set"]
    run = str(tmp_path / "run")
    make_model_dir(run, num_stacks=1, dataset="coco", joint_set=tool)
    assert predictor.read_info("model_dir", run).joint_set == tool
    path = exporter.export_from_model_dir(run, str(tmp_path / "export"))
    metadata = json.loads((tmp_path / "export" / "1" / "assets" / "joints.json").read_text())
    assert metadata["joint_set"] == tool.to_dict()
    assert metadata["dataset"] == "tool" and metadata["joint_names"] == list(tool.names)
    info = predictor.read_info("saved_model", path)
    assert info.joint_set == tool
    assert info.joint_set.names == ("tip", "left_jaw", "right_jaw", "pivot", "handle")
    assert info.joint_set.swap_pairs == (("left_jaw", "right_jaw"),)


def test_litert_metadata_records_the_joint_set(tool_records):
    """FILE.json is `layout.joints_metadata` plus the LiteRT fields."""
    tool = tool_records["joint_set"]
    metadata = {**layout.joints_metadata(tool, 64, 16, False), "format": "litert"}
    back = json.loads(json.dumps(metadata, sort_keys=True))
    assert predictor.info_from_metadata("litert", "m.tflite", back).joint_set == tool


def test_exports_written_before_the_joint_set_was_recorded_still_read():
    metadata = layout.joints_metadata(joints.MPII, 64, 16, False)
    del metadata["joint_set"]
    assert predictor.joint_set_from_metadata(metadata) is joints.MPII
    custom = {**metadata, "dataset": "tool", "joint_names": ["a", "b"], "skeleton": [["a", "b"]]}
    assert predictor.joint_set_from_metadata(custom).names == ("a", "b")


def test_a_bad_recorded_joint_set_is_one_line_naming_the_export():
    metadata = layout.joints_metadata(joints.MPII, 64, 16, False)
    metadata["joint_set"] = {"name": "x", "joints": ["a", "a"]}
    with pytest.raises(ValueError) as error:
        predictor.info_from_metadata("saved_model", "EXPORT/1", metadata)
    assert str(error.value) == "EXPORT/1: joint_set: Joint set 'x' has duplicate joint names ['a']"
