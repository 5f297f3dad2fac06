"""Tests of the record inspection library (data/records/inspect_lib.py)."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data.records import inspect_lib as inspect


def test_summarize_and_format(synthetic_records):
    files = inspect.expand_files([synthetic_records["valid"]])
    assert [pathlib.Path(f).name for f in files] == [
        "valid-00000-of-00002.tfrecord",
        "valid-00001-of-00002.tfrecord",
    ]
    summary = inspect.summarize(files)
    assert list(summary["shards"].values()) == [8, 8]
    assert summary["datasets"] == {"synthetic": 16}
    table = summary["status"]["synthetic"]
    assert table.shape == (16, 3) and np.all(table.sum(axis=1) == 16)
    text = inspect.format_summary(summary)
    assert "Dataset synthetic: 16 records" in text and "head_top" in text


def test_draw_records(synthetic_records, tmp_path):
    files = inspect.expand_files([synthetic_records["valid"]])
    written = inspect.draw_records(files, tmp_path / "drawn", 2)
    assert [p.name.split("_")[0] for p in written] == ["000", "001"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file is a file"):
        inspect.draw_records(files, tmp_path / "file", 1)


def test_expand_files_errors(tmp_path):
    with pytest.raises(ValueError, match="one or more"):
        inspect.expand_files([])
    with pytest.raises(FileNotFoundError, match="no such file: .*nope.tfrecord"):
        inspect.expand_files([str(tmp_path / "nope.tfrecord")])
    with pytest.raises(FileNotFoundError, match="no file matches .*valid-\\*"):
        inspect.expand_files([str(tmp_path / "valid-*")])
    with pytest.raises(IsADirectoryError, match="is a folder"):
        inspect.expand_files([str(tmp_path)])
    # A half-written temporary is hidden from the glob; the same file named twice counts once.
    (tmp_path / ".valid-00000-of-00001.tfrecord.123.tmp").write_bytes(b"")
    (tmp_path / "valid-00000-of-00001.tfrecord").write_bytes(b"")
    shard = str(tmp_path / "valid-00000-of-00001.tfrecord")
    assert inspect.expand_files([str(tmp_path / "valid-*"), shard]) == [shard]
    assert inspect.summarize([shard])["shards"] == {shard: 0}  # empty file: no records


def test_files_that_are_not_person_records(tmp_path):
    (tmp_path / "a.json").write_text('{"not": "a tfrecord"}')
    with pytest.raises(ValueError, match="a.json: not a readable TFRecord file"):
        inspect.summarize([str(tmp_path / "a.json")])
    other = str(tmp_path / "other.tfrecord")
    with tf.io.TFRecordWriter(other) as writer:
        writer.write(tf.train.Example().SerializeToString())
    with pytest.raises(ValueError, match="other.tfrecord: record 0 is not a person record"):
        inspect.summarize([other])


def test_a_phone_photo_is_drawn_upright(person_example, blocky_picture, oriented_jpeg, tmp_path):
    """A record of a JPEG stored a quarter turn off (EXIF orientation 6) is drawn upright: the
    figure is 8 inches wide at 100 dpi and as tall as the upright 64 x 48 picture's aspect."""
    from stacked_hourglass.data import features

    data = oriented_jpeg(blocky_picture(48, 64, seed=1), 6)
    serialized = features.serialize_example(person_example(0, image=data))
    path = tmp_path / "drawn.png"
    inspect.draw_record(features.parse_example_numpy(serialized, 16), path)
    assert tuple(tf.io.decode_png(path.read_bytes()).shape) == (600, 800, 4)


def test_records_of_a_custom_joint_set_are_read_with_their_manifest_s_joints(
    tool_records, tmp_path
):
    files = inspect.expand_files([tool_records["valid"]])
    summary = inspect.summarize(files)
    assert summary["datasets"] == {"tool": 4} and summary["status"]["tool"].shape == (5, 3)
    assert summary["check"].problems == []
    text = inspect.format_summary(summary)
    assert "Dataset tool: 4 records" in text and "left_jaw" in text
    assert len(inspect.draw_records(files, tmp_path / "drawn", 1)) == 1
