"""Tests of the shard writer: naming, manifest, determinism, atomicity, skips, strictness,
temporary files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import source_items
from stacked_hourglass.utils import digest


def _read(paths, num_joints=16):
    records = []
    for path in paths:
        for raw in tf.data.TFRecordDataset(str(path)):
            records.append(features.parse_example_numpy(raw.numpy(), num_joints))
    return records


def _write(examples, out, **kwargs):
    examples = list(examples)
    kwargs.setdefault("show_progress", False)
    return shards.write_split(examples, len(examples), out, "train", "synthetic", **kwargs)


def test_shards_manifest_and_round_trip(tmp_path, person_example):
    examples = [person_example(i) for i in range(10)]
    result = _write(examples, tmp_path, num_shards=3, num_workers=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "train.manifest.json",
    ]
    manifest = json.loads((tmp_path / "train.manifest.json").read_text())
    assert manifest == result.manifest.to_dict()
    # Contiguous blocks: items 0-3, 4-6, 7-9.
    assert [s["records"] for s in manifest["shards"]] == [4, 3, 3]
    assert manifest["num_records"] == 10 and manifest["num_skipped"] == 0
    assert manifest["dataset"] == "synthetic" and manifest["split"] == "train"
    assert manifest["joint_names"][0] == "r_ankle" and len(manifest["joint_names"]) == 16
    assert manifest["joint_set"] == joints.SYNTHETIC.to_dict()  # built-in sets recorded too
    assert manifest["package_version"] == stacked_hourglass.__version__
    for shard in manifest["shards"]:
        assert shard["sha256"] == digest.sha256_file(tmp_path / shard["file"])
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


def test_deterministic_whatever_the_workers(tmp_path, person_example):
    examples = [person_example(i) for i in range(12)]
    a = _write(examples, tmp_path / "a", num_shards=2, num_workers=1)
    b = _write(examples, tmp_path / "b", num_shards=2, num_workers=3)
    for pa, pb in zip(a.shard_paths, b.shard_paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    assert (tmp_path / "a" / "train.manifest.json").read_bytes() == (
        tmp_path / "b" / "train.manifest.json"
    ).read_bytes()


def test_bad_records_are_skipped_and_listed(tmp_path, person_example):
    nan_keypoints = person_example(0).keypoints.copy()
    nan_keypoints[2, 0] = np.nan
    far = person_example(0).keypoints.copy()
    far[1] = (500.0, 10.0)  # image is 64 wide: > 1 image width outside
    missing = source_items.PendingExample(person_example(4), tmp_path / "nope.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    corrupt = source_items.PendingExample(person_example(5), tmp_path / "corrupt.jpg")
    examples = [
        person_example(0),
        person_example(1, keypoints=nan_keypoints),
        person_example(2, scale=0.0),
        person_example(3, keypoints=far),
        missing,
        corrupt,
        source_items.Skipped("x.jpg", 7, 1, source_items.NO_CENTER, "annorect has no objpos"),
        person_example(8),
    ]
    result = _write(examples, tmp_path / "out", num_shards=2, num_workers=2)
    manifest = result.manifest.to_dict()
    assert manifest["num_records"] == 2
    assert manifest["skipped_by_reason"] == {
        source_items.CORRUPT_IMAGE: 1,
        source_items.FAR_OUTSIDE: 1,
        source_items.MISSING_IMAGE: 1,
        source_items.NAN_ANNOTATION: 1,
        source_items.NO_CENTER: 1,
        source_items.BAD_SCALE: 1,
    }
    by_index = {s["index"]: s for s in manifest["skipped"]}
    assert "person/keypoints" in by_index[1]["detail"]
    assert "joint 1" in by_index[3]["detail"]
    assert "nope.jpg" in by_index[4]["detail"]
    assert "corrupt.jpg" in by_index[5]["detail"]
    assert [r[features.SOURCE_INDEX] for r in _read(result.shard_paths)] == [0, 8]
    summary = shards.format_summary(result)
    assert "Skipped 6 person(s)" in summary and "corrupt_image: 1" in summary


class _Boom(RuntimeError):
    pass


def _exploding(examples, after):
    for i, example in enumerate(examples):
        if i == after:
            raise _Boom("killed midway")
        yield example


def test_interrupted_run_leaves_no_final_names(tmp_path, person_example):
    examples = [person_example(i) for i in range(10)]
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
            _exploding([person_example(i + 100) for i in range(10)], 3), 10, tmp_path / "out",
            "train", "synthetic", num_shards=2, num_workers=2, show_progress=False,
        )  # fmt: skip
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before
    assert len(_read(good.shard_paths)) == 10


def test_temporaries_are_hidden_from_the_documented_globs(tmp_path, person_example):
    seen = []

    def spying(examples):
        for i, example in enumerate(examples):
            if i == 3:  # mid-run: only temporaries exist
                seen.extend(sorted(p.name for p in tmp_path.iterdir()))
                assert not list(tmp_path.glob("train-*")) and not list(tmp_path.glob("*.json"))
            yield example

    examples = [person_example(i) for i in range(6)]
    shards.write_split(spying(examples), 6, tmp_path, "train", "synthetic", num_shards=2,
                       show_progress=False)  # fmt: skip
    pid = os.getpid()
    assert seen == [
        f".train-00000-of-00002.tfrecord.{pid}.tmp",
        f".train-00001-of-00002.tfrecord.{pid}.tmp",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # all renamed


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphaned_temporaries_of_killed_runs_are_removed(tmp_path, person_example):
    dead, alive = _dead_pid(), os.getppid()
    orphans = [
        f".train-00000-of-00002.tfrecord.{dead}.tmp",
        f".train.manifest.json.{dead}.tmp",
        f"train-00001-of-00002.tfrecord.tmp{dead}",  # older versions' name, matched by train-*
    ]
    kept = [
        f".train-00000-of-00002.tfrecord.{alive}.tmp",  # a run still going: not ours to remove
        f".valid-00000-of-00001.tfrecord.{dead}.tmp",  # another split
        "notes.txt",
    ]
    for name in orphans + kept:
        (tmp_path / name).write_bytes(b"x")
    result = _write([person_example(i) for i in range(4)], tmp_path, num_shards=2)
    assert sorted(p.name for p in result.removed_temporaries) == sorted(orphans)
    assert all((tmp_path / name).exists() for name in kept)
    assert not any((tmp_path / name).exists() for name in orphans)
    assert "Removed 3 orphaned temporary file(s)" in shards.format_summary(result)


def test_strict_and_empty_write_nothing(tmp_path, person_example):
    examples = [person_example(0), person_example(1, scale=-1.0)]
    with pytest.raises(shards.StrictError, match="non_positive_scale"):
        _write(examples, tmp_path / "strict", num_shards=1, strict=True)
    assert not (tmp_path / "strict").exists()
    with pytest.raises(shards.EmptySplitError):
        _write([person_example(1, scale=-1.0)], tmp_path / "empty", num_shards=1)
    assert not (tmp_path / "empty").exists()


def test_no_people_is_an_error_and_writes_no_empty_shard(tmp_path):
    with pytest.raises(shards.EmptySplitError, match="no people"):
        shards.write_split([], 0, tmp_path / "out", "valid", "mpii", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_stale_shards_of_a_previous_count_are_removed(tmp_path, person_example):
    examples = [person_example(i) for i in range(4)]
    _write(examples, tmp_path, num_shards=4)
    result = _write(examples, tmp_path, num_shards=2)
    assert len(result.removed_stale) == 4
    assert sorted(p.name for p in tmp_path.glob("train-*")) == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]


def test_item_count_must_match(tmp_path, person_example):
    assert shards.default_num_shards(1) == 1
    assert shards.default_num_shards(shards.DEFAULT_RECORDS_PER_SHARD + 1) == 2
    with pytest.raises(ValueError, match="more than num_items"):
        shards.write_split([person_example(0), person_example(1)], 1, tmp_path, "train",
                           "synthetic", show_progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="fewer than num_items"):
        shards.write_split([person_example(0)], 2, tmp_path, "train", "synthetic",
                           show_progress=False)  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_output_dir_that_is_a_file(tmp_path, person_example):
    (tmp_path / "out").write_text("")
    with pytest.raises(NotADirectoryError, match="out is a file"):
        _write([person_example(0)], tmp_path / "out")
    with pytest.raises(OSError, match="cannot create output folder"):
        _write([person_example(0)], tmp_path / "out" / "sub")


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


def test_a_given_joint_set_names_the_manifest_joints(tmp_path, person_example):
    hand = joints.JointSet.from_dict({"name": "hand", "joints": [f"j{i}" for i in range(16)]})
    result = _write([person_example(0)], tmp_path, joint_set=hand)
    assert result.manifest.joint_set == hand.to_dict()
    assert result.manifest.joint_names == list(hand.names) and result.manifest.joints() == hand


def test_bad_split_name_and_dataset(tmp_path, person_example):
    with pytest.raises(ValueError, match="simple name"):
        shards.write_split([], 0, tmp_path, "../x", "synthetic")
    with pytest.raises(ValueError, match="Unknown dataset"):
        shards.write_split([person_example(0)], 1, tmp_path / "o", "train", "lsp",
                           show_progress=False)  # fmt: skip
    assert not (tmp_path / "o").exists()


# --- record order: source (default) or seeded shuffled ------------------------------------------


def test_shuffled_order_is_a_fixed_uniform_permutation():
    order = shards.shuffled_order(10, 0)
    assert sorted(order) == list(range(10))
    # Fixed by its definition (sha256 keys), not by a numpy/Python version: a change of this
    # value changes every shuffled conversion, and must be deliberate.
    assert order == [4, 1, 7, 0, 2, 6, 8, 3, 5, 9]
    assert shards.shuffled_order(10, 0) == order and shards.shuffled_order(10, 1) != order
    assert shards.shuffled_order(0, 5) == []
    # Uniform: each of the 6 orders of 3 items comes up about 1/6 of the time over many seeds.
    counts = {}
    for seed in range(3000):
        key = tuple(shards.shuffled_order(3, seed))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and all(400 < n < 600 for n in counts.values()), counts
    for bad in (-1, 2**63, 1.5, True, "0"):
        with pytest.raises(ValueError, match="shuffle seed"):
            shards.shuffled_order(3, bad)


def test_shuffled_split_is_a_seeded_permutation_of_the_items(tmp_path, person_example):
    examples = [person_example(i) for i in range(20)]
    result = _write(examples, tmp_path, num_shards=3, order="shuffled", shuffle_seed=7)
    expected = shards.shuffled_order(20, 7)
    records = _read(result.shard_paths)
    assert [r[features.SOURCE_INDEX] for r in records] == expected  # source/index kept
    assert [r[features.IMAGE_FILENAME] for r in records] == [f"img_{i:04d}.jpg" for i in expected]
    for record in records:
        example = examples[record[features.SOURCE_INDEX]]
        np.testing.assert_allclose(record[features.KEYPOINTS], example.keypoints, rtol=1e-6)
    # Position p goes to shard p * 3 // 20, as in source order.
    assert [s["records"] for s in result.manifest.to_dict()["shards"]] == [7, 7, 6]
    assert result.manifest.order == {
        "kind": "shuffled",
        "seed": 7,
        "method": shards.SHUFFLE_METHOD,
        "permutation_sha256": shards.permutation_sha256(expected),
    }
    assert "shuffled order (seed 7)" in shards.format_summary(result)
    source = _write(examples, tmp_path / "source", num_shards=3)
    assert source.manifest.order == {"kind": "source"}
    assert "shuffled order" not in shards.format_summary(source)


def test_shuffled_is_deterministic_and_depends_on_the_seed(tmp_path, person_example):
    examples = [person_example(i) for i in range(16)]
    a = _write(examples, tmp_path / "a", num_shards=2, order="shuffled", num_workers=1)
    _write(examples, tmp_path / "b", num_shards=2, order="shuffled", num_workers=3)
    c = _write(examples, tmp_path / "c", num_shards=2, order="shuffled", shuffle_seed=1)
    for name in [p.name for p in a.shard_paths] + ["train.manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.manifest.order["seed"] == 0
    assert a.shard_paths[0].read_bytes() != c.shard_paths[0].read_bytes()
    assert a.manifest.order["permutation_sha256"] != c.manifest.order["permutation_sha256"]


def test_shuffled_skips_are_listed_in_source_order(tmp_path, person_example):
    examples = [person_example(i, scale=-1.0 if i % 3 == 0 else 0.5) for i in range(12)]
    result = _write(examples, tmp_path, num_shards=2, order="shuffled", shuffle_seed=3)
    assert [s["index"] for s in result.manifest.skipped] == [0, 3, 6, 9]
    kept = [i for i in shards.shuffled_order(12, 3) if i % 3]
    assert [r[features.SOURCE_INDEX] for r in _read(result.shard_paths)] == kept
    assert result.num_records == 8


def test_shuffled_checks_and_failures_write_nothing(tmp_path, person_example):
    examples = [person_example(i) for i in range(4)]
    with pytest.raises(ValueError, match="order must be one of shuffled, source"):
        _write(examples, tmp_path / "o", order="random")
    with pytest.raises(ValueError, match="shuffle seed"):
        _write(examples, tmp_path / "o", order="shuffled", shuffle_seed=-1)
    with pytest.raises(ValueError, match="more than num_items"):
        shards.write_split(examples, 3, tmp_path / "o", "train", "synthetic", order="shuffled",
                           show_progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="fewer than num_items"):
        shards.write_split(examples, 5, tmp_path / "o", "train", "synthetic", order="shuffled",
                           show_progress=False)  # fmt: skip
    with pytest.raises(_Boom):
        shards.write_split(_exploding(examples, 2), 4, tmp_path / "o", "train", "synthetic",
                           order="shuffled", show_progress=False)  # fmt: skip
    assert not (tmp_path / "o").exists()
