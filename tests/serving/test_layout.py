"""The export directory's layout: versions, SavedModel resolution, joints.json metadata."""

from __future__ import annotations

import json

import pytest

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.serving import layout


def test_next_version(tmp_path):
    assert layout.next_version(str(tmp_path / "missing")) == 1
    assert layout.next_version(str(tmp_path)) == 1
    for name in ("1", "3", "10", "abc", ".tmp-11-1"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert layout.next_version(str(tmp_path)) == 11


def test_resolve_saved_model(tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    # A version directory is used as is; an export directory resolves to its highest version.
    assert layout.resolve_saved_model(str(tmp_path / "2")) == str(tmp_path / "2")
    assert layout.resolve_saved_model(str(tmp_path)) == str(tmp_path / "10")
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(FileNotFoundError, match=f"{bad}: not a SavedModel"):
            layout.resolve_saved_model(str(bad))


def test_joints_metadata():
    metadata = layout.joints_metadata(joints.FLIC, 128, 32, flip_test=True)
    assert metadata["dataset"] == "flic"
    assert metadata["joint_names"] == list(joints.FLIC.names)
    assert metadata["flip_permutation"] == joints.FLIC.flip_permutation()
    assert [list(e) for e in joints.FLIC.skeleton] == metadata["skeleton"]
    assert (metadata["input_size"], metadata["heatmap_size"]) == (128, 32)
    assert metadata["flip_test"] is True and metadata["box_margin"] == layout.BOX_MARGIN == 1.25
    assert metadata["package_version"] == stacked_hourglass.__version__


def test_read_joints_metadata(tmp_path):
    (tmp_path / "1" / "assets").mkdir(parents=True)
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="joints.json: missing; was .* written by export"):
        layout.read_joints_metadata(str(tmp_path))
    metadata = layout.joints_metadata(joints.MPII, 64, 16, flip_test=False)
    (tmp_path / "1" / "assets" / layout.JOINTS_ASSET).write_text(json.dumps(metadata))
    assert layout.read_joints_metadata(str(tmp_path)) == metadata
