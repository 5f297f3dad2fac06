"""inspect.summarize lists what is wrong with records (records/inspect_lib.py, validate.py)."""

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import inspect_lib as inspect


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def test_summary_lists_problems_by_shard_and_record(person_example, tmp_path):
    status = person_example(2)
    status.keypoint_status = np.full(15, 2)  # wrong length: not counted, listed
    status.keypoints = np.zeros((15, 2))
    records = [
        features.serialize_example(person_example(0)),
        features.serialize_example(person_example(1, scale=-1.0, normalizer=0.0)),
        features.serialize_example(status),
    ]
    path = _write(tmp_path / "a.tfrecord", records)
    with open(path, "ab") as f:
        f.write(b"garbage")
    summary = inspect.summarize([path])
    assert summary["shards"] == {path: 3} and summary["datasets"] == {"synthetic": 2}
    assert summary["no_normalizer"] == {"synthetic": 1}
    problems = [(p.record, p.reason[:30]) for p in summary["check"].problems]
    assert problems == [
        (1, "person/scale must be a positiv"),
        (2, "person/keypoints has 30 values"),
        (3, "7 byte(s) after the last recor"),
    ]
    text = inspect.format_summary(summary)
    assert "Check: 3 problem(s) in 1 of 1 shard(s) (2 of 3 record(s) unusable):" in text
    assert f"  {path}: record 1: person/scale must be a positive number, got -1" in text
    assert "Dataset synthetic: 1 of 2 records have no positive person/normalizer" in text


def test_good_records_say_so(synthetic_records):
    summary = inspect.summarize(inspect.expand_files([synthetic_records["valid"]]))
    text = inspect.format_summary(summary)
    assert "Check: No problems in 16 record(s) of 2 shard(s)." in text
    assert "have no positive person/normalizer" not in text


def test_an_image_that_does_not_decode_is_a_problem(person_example, image_bytes, tmp_path):
    jpeg = image_bytes((48, 64), 5)
    truncated = person_example(1, image=jpeg[: len(jpeg) // 2])  # its header reads fine
    records = [features.serialize_example(e) for e in (person_example(0), truncated)]
    path = _write(tmp_path / "a.tfrecord", records)
    text = inspect.format_summary(inspect.summarize([path]))
    assert "Check: 1 problem(s) in 1 of 1 shard(s) (1 of 2 record(s) unusable):" in text
    assert f"  {path}: record 1: unreadable person record or image (" in text
    assert "Invalid JPEG data" in text
    # Headers only: the truncation goes unseen.
    headers = inspect.format_summary(inspect.summarize([path], decode_images=False))
    assert "Check: No problems in 2 record(s) of 1 shard(s)." in headers
