"""Tests of the shard check (data/records/validate.py): shards broken the ways copies, disks and
other writers break them; each problem named by shard and record index, in one line."""

import pathlib
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.records import validate
from stacked_hourglass.data.records.split import Manifest, ShardEntry, Split

K = 16


def _png_header(width, height) -> bytes:
    """A PNG signature + IHDR (+ IEND) claiming width x height: no pixel data at all."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _good(person_example, n=4):
    return [features.serialize_example(person_example(i)) for i in range(n)]


def _without(record: bytes, key: str) -> bytes:
    example = tf.train.Example.FromString(record)
    del example.features.feature[key]
    return example.SerializeToString()


def _check(files, **kwargs):
    kwargs.setdefault("need_normalizer", False)
    kwargs.setdefault("max_pixels", 50_000_000)
    return validate.check_records(files, K, **kwargs)


def test_good_shards_have_no_problems(person_example, tmp_path):
    files = [_write(tmp_path / f"s{i}.tfrecord", _good(person_example)) for i in range(2)]
    report = _check(files, need_normalizer=True, decode_images=True)
    assert report.ok and report.num_records == 8 and report.num_good == 8, report.format()
    assert report.records == {files[0]: 4, files[1]: 4}
    validate.raise_for_problems(report)  # nothing to raise
    assert "No problems in 8 record(s) of 2 shard(s)" in report.format()


@pytest.mark.parametrize(
    "case,record,reason",
    [
        ("flipped_byte", 1, "cannot be read (corrupted record at"),
        ("truncated", 3, "cannot be read (truncated record at"),
        ("appended_garbage", 4, "cannot be read (corrupted record at"),
        ("short_tail", 4, "6 byte(s) after the last record"),
        ("text_file", 0, "cannot be read (corrupted record at 0 (Is this even a TFRecord file?)"),
        ("tiny_text_file", 0, "holds no record in its 3 bytes"),
        ("empty_file", 0, "the file is empty (0 bytes)"),
    ],
)
def test_damaged_shards_name_shard_and_record(person_example, tmp_path, case, record, reason):
    path = _write(tmp_path / "s.tfrecord", _good(person_example))
    data = pathlib.Path(path).read_bytes()
    first = len(data) // 4  # every record has the same length
    damaged = {
        "flipped_byte": data[: first + 40] + bytes([data[first + 40] ^ 0x10]) + data[first + 41 :],
        "truncated": data[: 3 * first + 100],
        "appended_garbage": data + b"this is not a tfrecord",
        "short_tail": data + b"\x00" * 6,
        "text_file": b"name,x,y\n" * 50,
        "tiny_text_file": b"{}\n",
        "empty_file": b"",
    }[case]
    pathlib.Path(path).write_bytes(damaged)
    report = _check([path])
    assert [(p.shard, p.record) for p in report.problems] == [(path, record)], report.format()
    assert reason in report.problems[0].reason
    with pytest.raises(ValueError) as error:
        validate.raise_for_problems(report)
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"{path}: record {record}: ")
    assert "1 problem(s) in 1 of 1 shard(s)" in line


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"scale": -1.0}, "person/scale must be a positive number, got -1"),
        ({"scale": float("nan")}, "person/scale must be a positive number, got nan"),
        ({"center": (float("inf"), 3.0)}, "person/center is not finite: [inf 3]"),
        ({"image_encoded": b"GIF89a"}, "image/encoded has a truncated GIF header (6 bytes)"),
        ({"box": (1.0, 2.0, 3.0)}, "person/box has 3 values, expected 0 or 4"),
        ({"image_encoded": b"<html>not found</html>"}, "image/encoded is not a JPEG, PNG"),
        (
            {"image_encoded": _png_header(20000, 20000)},
            "image/encoded is 20000x20000 (width x height) = 400000000 pixels, above the limit "
            "max_pixels = 50000000",
        ),
    ],
)
def test_bad_values_name_the_field(person_example, tmp_path, change, reason):
    records = _good(person_example)
    records[2] = features.serialize_example(person_example(2, **change))
    path = _write(tmp_path / "s.tfrecord", records)
    report = _check([path])
    assert [(p.record, p.reason[: len(reason)]) for p in report.problems] == [(2, reason)]
    assert report.bad_records == 1 and report.num_good == 3


def test_annotated_keypoints_must_be_finite_but_not_the_others(person_example, tmp_path):
    nan_annotated = person_example(1).keypoints.copy()
    nan_annotated[7] = np.nan
    nan_missing = person_example(2).keypoints.copy()
    nan_missing[5] = np.nan  # joint 5 is not annotated in person_example
    records = [
        features.serialize_example(person_example(1, keypoints=nan_annotated)),
        features.serialize_example(person_example(2, keypoints=nan_missing)),
    ]
    report = _check([_write(tmp_path / "s.tfrecord", records)])
    assert [(p.record, p.reason) for p in report.problems] == [
        (0, "person/keypoints is not finite at annotated joint(s) [7]")
    ]
    # And the parser reads the unannotated NaN as 0 (it would turn a target heatmap into NaN).
    assert features.parse_example_numpy(records[1], K)[features.KEYPOINTS][5].tolist() == [0, 0]


def test_missing_keys_and_wrong_lengths(person_example, tmp_path):
    good = _good(person_example, 1)[0]
    flic = person_example(0, keypoints=np.zeros((11, 2)), keypoint_status=np.full(11, 2))
    status = person_example(0)
    status.keypoint_status = status.keypoint_status.copy()
    status.keypoint_status[0] = 7
    records = [
        _without(good, features.CENTER),
        _without(good, features.IMAGE_ENCODED),
        features.serialize_example(flic),
        features.serialize_example(status),
        tf.train.Example().SerializeToString(),
    ]
    report = _check([_write(tmp_path / "s.tfrecord", records)])
    assert [p.reason for p in report.problems] == [
        "person/center is missing",
        "image/encoded is missing",
        "person/keypoints has 22 values, expected 32 (16 joints: is --dataset right?)",
        "person/keypoint_status must hold 0, 1 or 2, got [7 2 2 1 2 0 2 2 2 2 2 2 2 2 2 2]",
        "image/encoded is missing",
    ]


def test_bytes_that_are_not_an_example_and_wrong_types(person_example, tmp_path):
    good = _good(person_example, 1)[0]
    example = tf.train.Example.FromString(good)
    example.features.feature[features.SCALE].int64_list.value[:] = [3]  # int64, not float
    records = [b"\x00\x01garbage that is no protobuf", example.SerializeToString(), good]
    report = _check([_write(tmp_path / "s.tfrecord", records)])
    assert [p.record for p in report.problems] == [0, 1]
    assert all(p.reason.startswith("unreadable person record or image (") for p in report.problems)
    assert report.records[report.files[0]] == 3 and report.num_good == 1


def test_truncated_jpeg_is_found_by_decoding(person_example, image_bytes, tmp_path):
    jpeg = image_bytes((48, 64), 3)
    records = _good(person_example, 2) + [
        features.serialize_example(person_example(2, image=jpeg[: len(jpeg) // 2]))
    ]
    path = _write(tmp_path / "s.tfrecord", records)
    assert _check([path]).ok  # the header reads fine
    report = _check([path], decode_images=True)
    assert [p.record for p in report.problems] == [2]
    assert "Invalid JPEG data" in report.problems[0].reason


def test_normalizer_is_required_only_where_pck_is_computed(person_example, tmp_path):
    records = [features.serialize_example(person_example(i, normalizer=0.0)) for i in range(3)]
    path = _write(tmp_path / "valid-00000-of-00001.tfrecord", records)
    assert _check([path]).ok
    report = Split.open(str(tmp_path / "valid-*.tfrecord")).check(
        K, need_normalizer=True, max_pixels=50_000_000
    )
    assert len(report.problems) == 3
    with pytest.raises(ValueError) as error:
        validate.raise_for_problems(report)
    line = str(error.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: record 0: person/normalizer is 0, but PCK needs a positive")
    assert "without --ground_truth" in line and "3 problem(s) in 1 of 1 shard(s)" in line


def test_empty_shards_and_splits(person_example, tmp_path):
    empty = _write(tmp_path / "train-00001-of-00002.tfrecord", [])
    full = _write(tmp_path / "train-00000-of-00002.tfrecord", _good(person_example, 2))
    report = _check([full, empty])
    assert [(p.shard, p.record) for p in report.problems] == [(empty, 0)]
    # The writer leaves a shard empty when every person of its block was skipped: its manifest
    # says so, and that is no problem.
    manifest = Manifest(
        "synthetic", "train", ["j"] * K, [ShardEntry("train-00001-of-00002.tfrecord", 0, 0)]
    )
    (tmp_path / "train.manifest.json").write_text(manifest.to_json())
    assert Split.from_files([empty]).counts == [0]
    assert Split.from_files([full, empty]).check(K, need_normalizer=False, max_pixels=0).ok
    # ... but a split with no record at all is.
    report = Split.from_files([empty]).check(K, need_normalizer=False, max_pixels=0)
    assert [p.reason for p in report.problems] == ["no records in any of the 1 shard(s)"]


def test_check_split_lists_and_names(synthetic_records, tmp_path):
    report = Split.open(synthetic_records["valid"]).check(
        K, need_normalizer=True, max_pixels=50_000_000
    )
    assert report.ok and report.num_records == 16 and len(report.files) == 2
    with pytest.raises(FileNotFoundError, match="nothing-"):
        Split.open(str(tmp_path / "nothing-*"))
    (tmp_path / "x-0.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match="x-0.tfrecord: the file is empty"):
        Split.open(str(tmp_path / "x-*")).check_start(joints.get_joint_set("mpii"))
    assert Split.open(str(tmp_path / "x-*")).files == [str(tmp_path / "x-0.tfrecord")]


def test_report_format_lists_problems(person_example, tmp_path):
    records = [features.serialize_example(person_example(i, scale=-1.0)) for i in range(25)]
    report = _check([_write(tmp_path / "s.tfrecord", records)])
    text = report.format(limit=3)
    assert text.splitlines()[0] == "25 problem(s) in 1 of 1 shard(s) (25 of 25 record(s) unusable):"
    assert "record 2: person/scale" in text and "... and 22 more" in text
