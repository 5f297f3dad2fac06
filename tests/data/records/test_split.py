"""Tests of the split on disk (data/records/split.py): the manifest the writer writes and the
readers parse, what it vouches for, the start check and how much it reads, `ram://`."""

import json
import shutil
import uuid

import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.config import DataConfig
from stacked_hourglass.data import features, pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.records.split import Manifest, Split, manifest_name, split_of
from stacked_hourglass.utils import files

MPII = joints.get_joint_set("mpii")


def _write_split(person_example, out, split="train", n=6, num_shards=3):
    examples = [person_example(i) for i in range(n)]
    return shards.write_split(
        examples, n, out, split, "synthetic", num_shards=num_shards, show_progress=False
    )


def _write_plain(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.fixture
def count_reads(monkeypatch):
    """Counts the records read through `tf.data.TFRecordDataset` (per path) from now on."""
    reads = {}
    original = tf.data.TFRecordDataset

    def counting(filenames, *args, **kwargs):
        path = filenames if isinstance(filenames, str) else "<tensor>"

        def count(serialized):
            reads[path] = reads.get(path, 0) + 1
            return serialized

        # No prefetching after the count: it counts what the reader takes, not what tf.data
        # would fetch ahead.
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        options.autotune.enabled = False
        ds = original(filenames, *args, **kwargs)
        return ds.map(lambda s: tf.py_function(count, [s], tf.string)).with_options(options)

    monkeypatch.setattr(tf.data, "TFRecordDataset", counting)
    return reads


def test_manifest_round_trip_and_names(person_example, tmp_path):
    result = _write_split(person_example, tmp_path)
    text = (tmp_path / "train.manifest.json").read_text()
    manifest = Manifest.read(str(tmp_path / manifest_name("train")))
    assert manifest == result.manifest and manifest.to_json() == text
    assert manifest.num_records == 6 and [s.records for s in manifest.shards] == [2, 2, 2]
    assert split_of("train-00001-of-00003.tfrecord") == "train"
    assert split_of("valid.manifest.json") == "valid"
    assert split_of(".train-00001-of-00003.tfrecord.12.tmp") is None
    assert split_of("my-train-00001-of-00003.tfrecord") is None


@pytest.mark.parametrize(
    "change,message",
    [
        ({"shards": None}, "manifest field 'shards' is missing or not a list"),
        ({"joint_names": "r_ankle"}, "manifest field 'joint_names' is missing or not a list"),
        ({"num_records": 5}, "manifest num_records 5 is not the sum of its shards' records (6)"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_it(person_example, tmp_path, change, message):
    _write_split(person_example, tmp_path)
    path = tmp_path / "train.manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError) as error:
        Split.open(str(tmp_path / "train-*.tfrecord"))
    assert str(error.value).startswith(f"{path}: {message}")
    payload = json.loads(path.read_text())
    payload["shards"] = [{"file": "x", "records": "2", "bytes": 1}]
    with pytest.raises(
        ValueError, match=r"field shards\[0\]\.'records' is missing or not an integer \(got '2'\)"
    ):
        Manifest.from_dict(payload, "m")


def test_manifest_vouches_for_the_shards_of_its_size(person_example, tmp_path, count_reads):
    result = _write_split(person_example, tmp_path)
    glob = str(tmp_path / "train-*.tfrecord")
    split = Split.open(glob)
    assert split.vouched and split.counts == [2, 2, 2] and split.num_records == 6
    assert list(split.manifests) == [str(tmp_path / "train.manifest.json")]
    assert count_reads == {}  # the count is the manifest's
    # A shard copied short (or replaced) is no longer the writer's: counted by reading.
    damaged = result.shard_paths[1]
    data = damaged.read_bytes()
    damaged.write_bytes(data + b"junk after the records")
    split = Split.open(glob)
    assert not split.vouched and split.counts == [2, None, 2]
    with pytest.raises(ValueError, match=r"train-00001-of-00003.tfrecord: cannot be read"):
        split.num_records  # noqa: B018
    damaged.write_bytes(data)
    (tmp_path / "train.manifest.json").unlink()
    split = Split.open([glob])
    assert split.counts == [None] * 3 and split.manifests == {} and split.num_records == 6


def test_count_records_names_a_damaged_shard(person_example, tmp_path):
    # (moved from test_pipeline_bad_records: `pipeline.count_records` is `Split.num_records`)
    path = _write_plain(
        tmp_path / "s.tfrecord", [features.serialize_example(person_example(i)) for i in range(2)]
    )
    assert Split.open(path).num_records == 2
    with open(path, "ab") as f:
        f.write(b"junk after the records")
    with pytest.raises(ValueError, match=r"s.tfrecord: cannot be read \(corrupted record"):
        Split.open(path).num_records  # noqa: B018


def _data_config(train, valid, **changes):
    return DataConfig(dataset="synthetic", train_files=train, valid_files=valid, **changes)


def test_training_start_reads_one_record_per_shard_with_a_manifest(
    person_example, tmp_path, count_reads
):
    _write_split(person_example, tmp_path, "train", n=12, num_shards=3)
    _write_split(person_example, tmp_path, "valid", n=8, num_shards=2)
    config = _data_config(str(tmp_path / "train-*"), str(tmp_path / "valid-*"))
    data = pipeline.open_splits(config, batch_size=2, steps_per_epoch=0)
    assert data.steps_per_epoch == 6 and data.train.vouched and data.valid.vouched
    train_reads = {p: n for p, n in count_reads.items() if "train-" in p}
    valid_reads = {p: n for p, n in count_reads.items() if "valid-" in p}
    # One record per shard (the first shard's twice: once as a person of the run's joints, once
    # through the record check); nothing else.
    assert sorted(train_reads.values()) == [1, 1, 2] and len(train_reads) == 3
    assert sorted(valid_reads.values()) == [1, 2] and len(valid_reads) == 2
    # Building every epoch's dataset from the opened split lists nothing and reads nothing.
    count_reads.clear()
    codec = HeatmapCodec(64, 16)
    for epoch in range(2):
        pipeline.make_train_dataset(config, codec, 2, ["h"], seed=epoch, split=data.train)
    assert count_reads == {}


def test_training_start_reads_what_no_manifest_vouches_for(person_example, tmp_path, count_reads):
    records = [features.serialize_example(person_example(i)) for i in range(4)]
    for i in range(3):
        _write_plain(tmp_path / f"train-{i}.tfrecord", records)
    for i in range(2):
        _write_plain(tmp_path / f"valid-{i}.tfrecord", records)
    config = _data_config(str(tmp_path / "train-*"), str(tmp_path / "valid-*"))
    data = pipeline.open_splits(config, batch_size=2, steps_per_epoch=0)
    assert data.steps_per_epoch == 6 and not data.train.vouched and not data.valid.vouched
    # Training shards: the first record (plus the first shard's person check), then the count.
    train_reads = sorted(n for p, n in count_reads.items() if "train-" in p)
    assert train_reads == [1 + 4, 1 + 4, 2 + 4]
    # Validation shards: the start check, then the full check of every record.
    valid_reads = sorted(n for p, n in count_reads.items() if "valid-" in p)
    assert valid_reads == [1 + 4, 2 + 4]
    # With --steps_per_epoch, no training shard is counted.
    count_reads.clear()
    assert pipeline.open_splits(config, 2, steps_per_epoch=5).steps_per_epoch == 5
    assert sorted(n for p, n in count_reads.items() if "train-" in p) == [1, 1, 2]


def test_start_check_compares_the_manifest_joints(person_example, tmp_path):
    _write_split(person_example, tmp_path)
    split = Split.open(str(tmp_path / "train-*"))
    split.check_start(MPII)
    manifest = json.loads((tmp_path / "train.manifest.json").read_text())
    manifest["joint_names"] = [f"j{i}" for i in range(16)]
    (tmp_path / "train.manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError) as error:
        Split.open(str(tmp_path / "train-*")).check_start(MPII)
    line = str(error.value)
    assert line.startswith(f"{tmp_path / 'train.manifest.json'}: the split holds synthetic")
    assert "not mpii's 16 (see --dataset)" in line and "\n" not in line


def test_start_check_with_skip_needs_one_usable_first_record(person_example, tmp_path):
    good = [features.serialize_example(person_example(i)) for i in range(2)]
    bad = [features.serialize_example(person_example(9, scale=-1.0))] + good
    _write_plain(tmp_path / "train-0.tfrecord", bad)
    _write_plain(tmp_path / "train-1.tfrecord", good)
    split = Split.open(str(tmp_path / "train-*"))
    split.check_start(MPII, on_bad_record="skip")
    with pytest.raises(ValueError, match=r"train-0.tfrecord: record 0: person/scale .*fail;"):
        split.check_start(MPII)
    _write_plain(tmp_path / "train-1.tfrecord", bad)
    with pytest.raises(ValueError, match="no shard of .* starts with a usable record"):
        Split.open(str(tmp_path / "train-*")).check_start(MPII, on_bad_record="skip")


def test_write_and_open_a_split_on_ram(person_example):
    root = f"ram://split-{uuid.uuid4().hex}/records"
    try:
        result = _write_split(person_example, root, n=7, num_shards=2)
        assert [str(p) for p in result.shard_paths] == [
            f"{root}/train-00000-of-00002.tfrecord",
            f"{root}/train-00001-of-00002.tfrecord",
        ]
        assert files.listdir(root) == [
            "train-00000-of-00002.tfrecord",
            "train-00001-of-00002.tfrecord",
            "train.manifest.json",
        ]
        assert "Manifest: ram://" in shards.format_summary(result)
        split = Split.open(f"{root}/train-*.tfrecord")
        assert split.vouched and split.num_records == 7 and split.counts == [4, 3]
        split.check_start(MPII)
        assert split.check(16, need_normalizer=True, max_pixels=0).num_good == 7
        # Written again with another shard count: the stale shards go, no temporary is left.
        _write_split(person_example, root, n=7, num_shards=1)
        assert files.listdir(root) == ["train-00000-of-00001.tfrecord", "train.manifest.json"]
    finally:
        files.rmtree(root.rsplit("/", 1)[0])


def test_open_copies_nothing_and_lists_once(person_example, tmp_path, monkeypatch):
    _write_split(person_example, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    listed = []
    original = files.glob
    monkeypatch.setattr(files, "glob", lambda pattern: listed.append(pattern) or original(pattern))
    split = Split.open(f"{tmp_path / 'a'}/train-*, {tmp_path / 'b'}/train-*")
    assert len(split.files) == 6 and split.vouched and split.num_records == 12
    assert listed == [f"{tmp_path / 'a'}/train-*", f"{tmp_path / 'b'}/train-*"]
    assert len(split.manifests) == 2


def test_manifest_joint_set_round_trips_and_old_manifests_use_the_builtin_set():
    from stacked_hourglass import joints
    from stacked_hourglass.data.records.split import Manifest

    hand = joints.JointSet.from_dict({"name": "hand", "joints": ["a", "b"]})
    manifest = Manifest("coco", "train", ["a", "b"], [], joint_set=hand.to_dict())
    assert Manifest.from_dict(manifest.to_dict()).joints() == hand
    old = Manifest("mpii", "train", list(joints.MPII.names), [])
    assert "joint_set" not in old.to_dict()
    assert Manifest.from_dict(old.to_dict()).joints() is joints.MPII
    wrong = Manifest("coco", "train", ["a", "c"], [], joint_set=hand.to_dict())
    with pytest.raises(ValueError, match=r"^m.json: joint_names \['a', 'c'\] are not the joints"):
        wrong.joints("m.json")
