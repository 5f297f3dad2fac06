"""The tf.data pipelines on records they cannot use: empty shards, damaged shards, bad fields,
decompression bombs; `on_bad_record` "fail" names the record, "skip" drops it."""

import pathlib
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.config import DataConfig
from stacked_hourglass.data import features, pipeline
from stacked_hourglass.data.codec import HeatmapCodec

CODEC = HeatmapCodec(64, 16)


def _bomb() -> bytes:
    """A ~60-byte PNG whose header claims 20000 x 20000 pixels."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _records(person_example, n, bad=None, start=0):
    """n good records (index start...), record `bad[0]` replaced by person_example(**bad[1])."""
    out = []
    for i in range(start, start + n):
        change = bad[1] if bad and i - start == bad[0] else {}
        out.append(features.serialize_example(person_example(i, **change)))
    return out


def _config(pattern, **changes):
    return DataConfig(dataset="synthetic", train_files=pattern, **changes)


def _train(config, batch_size=2):
    return pipeline.make_train_dataset(config, CODEC, batch_size, ["heatmaps_1"], seed=3)


# --- 1: no record means no training, and it says so before anything is built ------------------


def test_zero_byte_shard_is_an_error_naming_it(person_example, tmp_path):
    _write(tmp_path / "train-0.tfrecord", _records(person_example, 4))
    (tmp_path / "train-1.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match=r"train-1.tfrecord: the file is empty \(0 bytes\)"):
        _train(_config(str(tmp_path / "train-*.tfrecord")))


def test_shards_without_records_are_an_error_not_a_hang(tmp_path):
    (tmp_path / "train-0.tfrecord").write_bytes(b"{}\n")  # bytes TF reads as no record
    for policy in ("fail", "skip"):
        with pytest.raises(ValueError, match="train-0.tfrecord: record 0: holds no record"):
            _train(_config(str(tmp_path / "train-*.tfrecord"), on_bad_record=policy))


# --- 3, 4: bad records in the middle of a shard ----------------------------------------------


@pytest.mark.parametrize(
    "change,message",
    [
        ({"scale": -2.0}, "person/scale must be a positive number, got -2"),
        ({"center": (np.nan, 4.0)}, "person/center is not finite"),
        ({"image_encoded": b"Not Found"}, "image/encoded is not a JPEG, PNG, GIF, BMP or WebP"),
        (
            {"image_encoded": _bomb()},
            "image/encoded is 20000x20000 (width x height) = 400000000 pixels, above the limit "
            "max_pixels = 50000000",
        ),
    ],
)
def test_fail_names_shard_record_and_problem(person_example, tmp_path, change, message):
    shard = _write(tmp_path / "train-0.tfrecord", _records(person_example, 6, (3, change)))
    config = _config(shard, shuffle_buffer=1)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in _train(config).take(3):
            pass
    assert f"{shard}: record 3: {message}" in error.value.message


def test_a_bad_first_record_fails_before_building(person_example, tmp_path):
    shard = _write(tmp_path / "train-0.tfrecord", _records(person_example, 3, (0, {"scale": 0.0})))
    with pytest.raises(ValueError, match=r"train-0.tfrecord: record 0: person/scale .*got 0"):
        _train(_config(shard))


def test_skip_drops_bad_records_with_one_warning_per_shard(person_example, tmp_path, capfd):
    bad = {"image_encoded": _bomb()}
    shard_a = _write(tmp_path / "train-0.tfrecord", _records(person_example, 4, (1, bad)))
    records = _records(person_example, 4, (2, {"scale": -1.0}), start=10)
    records[3] = features.serialize_example(person_example(13, scale=-3.0))
    shard_b = _write(tmp_path / "train-1.tfrecord", records)
    config = _config(str(tmp_path / "train-*.tfrecord"), on_bad_record="skip", shuffle_buffer=1)
    images = [b[0] for b in _train(config, batch_size=1).take(30)]  # 5 good records, 6 passes
    assert len(images) == 30 and all(np.isfinite(i.numpy()).all() for i in images)
    err = capfd.readouterr().err
    assert err.count("on_bad_record=skip: skipping") == 2, err  # once per shard, not per epoch
    assert f"{shard_a}: record 1: image/encoded is 20000x20000" in err
    assert f"{shard_b}: record 2: person/scale must be a positive number, got -1" in err


def test_skip_reads_what_it_can_of_a_damaged_shard(person_example, tmp_path, capfd):
    path = _write(tmp_path / "train-0.tfrecord", _records(person_example, 4))
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data + b"garbage appended by a bad copy")
    config = _config(path, on_bad_record="skip", shuffle_buffer=1)
    assert len(list(_train(config, batch_size=4).take(2))) == 2
    err = capfd.readouterr().err
    assert f"{path}: record 4: cannot be read ({len(data)} of {len(data) + 30} bytes" in err
    # With "fail", the end of the shard stops training, naming it.
    with pytest.raises(tf.errors.InvalidArgumentError, match="record 4: cannot be read"):
        list(_train(_config(path, shuffle_buffer=1), batch_size=4).take(2))


def test_skip_drops_an_image_that_does_not_decode(person_example, image_bytes, tmp_path):
    jpeg = image_bytes((48, 64), 5)
    truncated = {"image_encoded": jpeg[: len(jpeg) // 2]}
    path = _write(tmp_path / "train-0.tfrecord", _records(person_example, 3, (1, truncated)))
    config = _config(path, on_bad_record="skip", shuffle_buffer=1)
    assert len(list(_train(config, batch_size=1).take(6))) == 6  # 2 good records, 3 passes
    with pytest.raises(tf.errors.InvalidArgumentError, match="Invalid JPEG data"):
        list(_train(_config(path, shuffle_buffer=1), batch_size=1).take(6))


def test_unknown_policy(person_example, tmp_path):
    shard = _write(tmp_path / "train-0.tfrecord", _records(person_example, 2))
    with pytest.raises(ValueError, match="on_bad_record must be one of fail, skip"):
        _train(_config(shard, on_bad_record="ignore"))


# --- 5 and evaluation: every record, in order, or an error naming the bad one -----------------


def test_eval_dataset_checks_records_and_normalizers(person_example, tmp_path):
    path = _write(tmp_path / "valid-0.tfrecord", _records(person_example, 5))
    ds = pipeline.make_eval_dataset(path, 16, CODEC, 2, need_normalizer=True)
    index = np.concatenate([info["index"].numpy() for _, info in ds])
    np.testing.assert_array_equal(index, np.arange(5))
    _write(tmp_path / "valid-0.tfrecord", _records(person_example, 5, (4, {"normalizer": 0.0})))
    assert len(list(pipeline.make_eval_dataset(path, 16, CODEC, 2))) == 3
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pipeline.make_eval_dataset(path, 16, CODEC, 2, need_normalizer=True))
    assert f"{path}: record 4: person/normalizer is 0, but PCK needs" in error.value.message
