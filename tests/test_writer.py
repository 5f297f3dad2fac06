"""Tests of the shard writer: naming, manifest, determinism, atomicity, skips, strictness."""

import json
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards


def _jpeg(height=48, width=64, value=128) -> bytes:
    image = tf.fill([height, width, 3], tf.constant(value, tf.uint8))
    return tf.io.encode_jpeg(image).numpy()


def _example(i: int, image: bytes | None = None, **changes) -> features.PersonExample:
    keypoints = np.stack([np.arange(16) + i, np.arange(16) * 2.0], axis=1).astype(np.float64)
    status = np.full(16, features.VISIBLE)
    status[3] = features.OCCLUDED
    status[5] = features.NOT_ANNOTATED
    keypoints[5] = 0
    example = features.PersonExample(
        image_encoded=image if image is not None else _jpeg(value=i % 255),
        filename=f"img_{i:04d}.jpg",
        height=48,
        width=64,
        center=(30.0 + i, 20.5),
        scale=0.25 + 0.01 * i,
        keypoints=keypoints,
        keypoint_status=status,
        normalizer=10.0 + i,
        headbox=(1.0, 2.0, 11.0, 12.0),
        dataset="synthetic",
        index=i,
        person=0,
    )
    for key, value in changes.items():
        setattr(example, key, value)
    return example


def _read(paths, num_joints=16):
    records = []
    for path in paths:
        for raw in tf.data.TFRecordDataset(str(path)):
            records.append(features.parse_example_numpy(raw.numpy(), num_joints))
    return records


def _write(items, out, **kwargs):
    items = list(items)
    kwargs.setdefault("show_progress", False)
    return shards.write_split(items, len(items), out, "train", "synthetic", **kwargs)


def test_shards_manifest_and_round_trip(tmp_path):
    examples = [_example(i) for i in range(10)]
    result = _write(examples, tmp_path, num_shards=3, num_workers=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "train.manifest.json",
    ]
    manifest = json.loads((tmp_path / "train.manifest.json").read_text())
    assert manifest == result.manifest
    # Contiguous blocks: items 0-3, 4-6, 7-9.
    assert [s["records"] for s in manifest["shards"]] == [4, 3, 3]
    assert manifest["num_records"] == 10 and manifest["num_skipped"] == 0
    assert manifest["dataset"] == "synthetic" and manifest["split"] == "train"
    assert manifest["joint_names"][0] == "r_ankle" and len(manifest["joint_names"]) == 16
    import stacked_hourglass

    assert manifest["package_version"] == stacked_hourglass.__version__
    for shard in manifest["shards"]:
        assert shard["sha256"] == shards.file_sha256(tmp_path / shard["file"])
    records = _read(result.shard_paths)
    assert [r[features.SOURCE_INDEX] for r in records] == list(range(10))  # source order
    for record, example in zip(records, examples, strict=True):
        np.testing.assert_allclose(record[features.KEYPOINTS], example.keypoints, rtol=1e-6)
        np.testing.assert_array_equal(record[features.KEYPOINT_STATUS], example.keypoint_status)
        np.testing.assert_allclose(record[features.CENTER], example.center, rtol=1e-6)
        assert record[features.SCALE] == pytest.approx(example.scale, rel=1e-6)
        assert record[features.NORMALIZER] == pytest.approx(example.normalizer, rel=1e-6)
        assert record[features.IMAGE_ENCODED] == example.image_encoded
        assert record[features.IMAGE_FILENAME] == example.filename


def test_deterministic_whatever_the_workers(tmp_path):
    examples = [_example(i) for i in range(12)]
    a = _write(examples, tmp_path / "a", num_shards=2, num_workers=1)
    b = _write(examples, tmp_path / "b", num_shards=2, num_workers=3)
    for pa, pb in zip(a.shard_paths, b.shard_paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    assert (tmp_path / "a" / "train.manifest.json").read_bytes() == (
        tmp_path / "b" / "train.manifest.json"
    ).read_bytes()


def test_bad_records_are_skipped_and_listed(tmp_path):
    nan_keypoints = _example(0).keypoints.copy()
    nan_keypoints[2, 0] = np.nan
    far = _example(0).keypoints.copy()
    far[1] = (500.0, 10.0)  # image is 64 wide: > 1 image width outside
    missing = shards.PendingExample(_example(4), tmp_path / "nope.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    corrupt = shards.PendingExample(_example(5), tmp_path / "corrupt.jpg")
    items = [
        _example(0),
        _example(1, keypoints=nan_keypoints),
        _example(2, scale=0.0),
        _example(3, keypoints=far),
        missing,
        corrupt,
        shards.Skipped("x.jpg", 7, 1, shards.NO_CENTER, "annorect has no objpos"),
        _example(8),
    ]
    result = _write(items, tmp_path / "out", num_shards=2, num_workers=2)
    manifest = result.manifest
    assert manifest["num_records"] == 2
    assert manifest["skipped_by_reason"] == {
        shards.CORRUPT_IMAGE: 1,
        shards.FAR_OUTSIDE: 1,
        shards.MISSING_IMAGE: 1,
        shards.NAN_ANNOTATION: 1,
        shards.NO_CENTER: 1,
        shards.BAD_SCALE: 1,
    }
    by_index = {s["index"]: s for s in manifest["skipped"]}
    assert "person/keypoints" in by_index[1]["detail"]
    assert "joint 1" in by_index[3]["detail"]
    assert "nope.jpg" in by_index[4]["detail"]
    assert "corrupt.jpg" in by_index[5]["detail"]
    assert [r[features.SOURCE_INDEX] for r in _read(result.shard_paths)] == [0, 8]
    summary = shards.format_summary(result)
    assert "Skipped 6 person(s)" in summary and "corrupt_image: 1" in summary


def test_pending_example_reads_image_size(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 40))
    png = tf.io.encode_png(tf.zeros([7, 9, 3], tf.uint8)).numpy()
    (tmp_path / "b.png").write_bytes(png)
    for name, size in (("a.jpg", (30, 40)), ("b.png", (7, 9))):
        pending = shards.PendingExample(
            _example(0, image=b"", height=0, width=0, center=(5.0, 5.0)), tmp_path / name
        )
        pending.example.keypoints[:] = 1.0
        loaded = shards.complete_item(pending, verify_images=True)
        assert isinstance(loaded, features.PersonExample), loaded
        assert (loaded.height, loaded.width) == size
        assert loaded.image_encoded == (tmp_path / name).read_bytes()


class _Boom(RuntimeError):
    pass


def _exploding(items, after):
    for i, item in enumerate(items):
        if i == after:
            raise _Boom("killed midway")
        yield item


def test_interrupted_run_leaves_no_final_names(tmp_path):
    examples = [_example(i) for i in range(10)]
    with pytest.raises(_Boom):
        shards.write_split(
            _exploding(examples, 6), 10, tmp_path / "fresh", "train", "synthetic",
            num_shards=2, num_workers=2, show_progress=False,
        )  # fmt: skip
    assert not (tmp_path / "fresh").exists()  # created by the run, removed again

    # An earlier complete run is left intact (bytes unchanged, no temporaries).
    good = _write(examples, tmp_path / "out", num_shards=2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(_Boom):
        shards.write_split(
            _exploding([_example(i + 100) for i in range(10)], 3), 10, tmp_path / "out",
            "train", "synthetic", num_shards=2, num_workers=2, show_progress=False,
        )  # fmt: skip
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before
    assert len(_read(good.shard_paths)) == 10


def test_strict_and_empty_write_nothing(tmp_path):
    items = [_example(0), _example(1, scale=-1.0)]
    with pytest.raises(shards.StrictError, match="non_positive_scale"):
        _write(items, tmp_path / "strict", num_shards=1, strict=True)
    assert not (tmp_path / "strict").exists()
    with pytest.raises(shards.EmptySplitError):
        _write([_example(1, scale=-1.0)], tmp_path / "empty", num_shards=1)
    assert not (tmp_path / "empty").exists()


def test_stale_shards_of_a_previous_count_are_removed(tmp_path):
    examples = [_example(i) for i in range(4)]
    _write(examples, tmp_path, num_shards=4)
    result = _write(examples, tmp_path, num_shards=2)
    assert len(result.removed_stale) == 4
    assert sorted(p.name for p in tmp_path.glob("train-*")) == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]


def test_default_shard_count_and_too_many_items(tmp_path):
    assert shards.default_num_shards(1) == 1
    assert shards.default_num_shards(shards.DEFAULT_RECORDS_PER_SHARD + 1) == 2
    with pytest.raises(ValueError, match="more than num_items"):
        shards.write_split(
            [_example(0), _example(1)], 1, tmp_path, "train", "synthetic", show_progress=False
        )
    assert not list(tmp_path.iterdir())


def test_synthetic_items_use_generate_examples(monkeypatch):
    calls = []

    def fake_generate_examples(split, num_examples, seed=0):
        calls.append((split, num_examples, seed))
        return (_example(i) for i in range(num_examples))

    fake = types.ModuleType("stacked_hourglass.datasets.synthetic")
    fake.generate_examples = fake_generate_examples
    monkeypatch.setitem(sys.modules, "stacked_hourglass.datasets.synthetic", fake)
    import stacked_hourglass.datasets as package

    monkeypatch.setattr(package, "synthetic", fake, raising=False)
    items, count, sources = shards.read_items("synthetic", "valid", num_examples=3, seed=7)
    assert count == 3 and sources == [] and len(list(items)) == 3
    assert calls == [("valid", 3, 7)]


def test_progress_bar_is_quiet_when_not_a_terminal():
    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    stream = Stream()
    progress = shards.Progress(100, "x", stream=stream)
    for i in range(1, 101):
        progress.update(i)
    progress.update(100, force=True)
    assert len(stream) == 11 and stream[-1].startswith("x: 100/100")


def test_bad_split_name(tmp_path):
    with pytest.raises(ValueError, match="simple name"):
        shards.write_split([], 0, tmp_path, "../x", "synthetic")
