"""Tests of `python -m stacked_hourglass.inspect_records`.

In-process through `inspect_records.main([...])`; one subprocess smoke test.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from stacked_hourglass import inspect_records

REPO = pathlib.Path(__file__).resolve().parents[1]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("inspect_records: error: "), lines[0]
    return lines[0]


def test_summary_and_drawings(synthetic_records, tmp_path, capsys):
    drawn = tmp_path / "drawn"
    # A quoted glob (expanded here), the separate-value flag form, and a flag after the files.
    argv = [synthetic_records["valid"], "--output_dir", str(drawn), "--num_images=2"]
    assert inspect_records.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "Dataset synthetic: 16 records" in stdout and "head_top" in stdout
    assert "valid-00001-of-00002.tfrecord" in stdout and "Drew 2 record(s)" in stdout
    pngs = sorted(drawn.glob("*.png"))
    assert len(pngs) == 2 and pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_files_as_flags():
    assert inspect_records.files_as_flags(
        ["a", "--num_images", "3", "-h", "--output_dir=x", "--", "-b"]
    ) == ["--files=a", "--num_images", "3", "-h", "--output_dir=x", "--files=-b"]


@pytest.mark.parametrize(
    "case,message",
    [
        ("nothing", "give one or more TFRecord files"),
        ("missing", "no such file: {tmp}/nope.tfrecord"),
        ("no_match", "no file matches {tmp}/valid-*"),
        ("folder", "{tmp} is a folder"),
        ("not_tfrecord", "{tmp}/notes.json: not a readable TFRecord file"),
        ("output_is_file", "output folder {tmp}/notes.json is a file, not a folder"),
        ("negative", "--num_images"),
    ],
)
def test_user_errors_are_one_line(synthetic_records, tmp_path, capsys, case, message):
    (tmp_path / "notes.json").write_text("{}")
    shards = synthetic_records["valid"]
    argv = {
        "nothing": [],
        "missing": [str(tmp_path / "nope.tfrecord")],
        "no_match": [str(tmp_path / "valid-*")],
        "folder": [str(tmp_path)],
        "not_tfrecord": [str(tmp_path / "notes.json")],
        "output_is_file": [shards, f"--output_dir={tmp_path / 'notes.json'}"],
        "negative": [shards, "--num_images=-1"],
    }[case]
    assert inspect_records.main(argv) == 1
    assert message.format(tmp=tmp_path) in _error_line(capsys)


def test_module_smoke(synthetic_records):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.inspect_records", synthetic_records["valid"]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Dataset synthetic: 16 records" in run.stdout


def test_problems_are_printed_with_shard_and_record(synthetic_records, tmp_path, capsys):
    import glob
    import shutil

    shards = sorted(pathlib.Path(p) for p in glob.glob(synthetic_records["valid"]))
    copy = tmp_path / shards[1].name
    shutil.copy(shards[1], copy)
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) - 100])  # a truncated copy
    assert inspect_records.main([str(shards[0]), str(copy)]) == 0
    out = capsys.readouterr().out
    assert "Check: 1 problem(s) in 1 of 2 shard(s)" in out
    assert f"{copy}: record 7: cannot be read (truncated record at" in out


def test_an_image_that_does_not_decode_is_listed(person_example, tmp_path, capsys):
    import tensorflow as tf

    from stacked_hourglass.data import features

    jpeg = person_example(1).image_encoded
    people = [person_example(0), person_example(1, image=jpeg[: len(jpeg) - 40])]
    path = tmp_path / "valid-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for person in people:
            writer.write(features.serialize_example(person))
    assert inspect_records.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  {path}: record 1: unreadable person record or image (" in out
    assert inspect_records.main([str(path), "--nodecode_images"]) == 0
    assert "Check: No problems in 2 record(s) of 1 shard(s)." in capsys.readouterr().out
