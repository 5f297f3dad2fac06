"""End-to-end tests of tools/make_tfrecords.py and the inspect tool, run as programs."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf
from test_mpii import make_official_mat  # tests/ is on sys.path under pytest's default mode

REPO = pathlib.Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "make_tfrecords.py"


def _run(*args, module=False):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, *(["-m", args[0]] if module else [str(TOOL), args[0]]), *args[1:]]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def mpii_files(tmp_path):
    make_official_mat(tmp_path / "mpii.mat")
    images = tmp_path / "images"
    images.mkdir()
    jpeg = tf.io.encode_jpeg(tf.fill([400, 500, 3], tf.constant(90, tf.uint8))).numpy()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (images / name).write_bytes(jpeg)
    (tmp_path / "split.txt").write_text("a.jpg 0 1\n")
    return tmp_path


def _mpii_args(files, out, *extra):
    return (
        "--dataset=mpii", f"--annotations={files / 'mpii.mat'}", f"--images={files / 'images'}",
        f"--output_dir={out}", f"--split_file={files / 'split.txt'}", *extra,
    )  # fmt: skip


def test_cli_converts_deterministically_and_inspect_draws(mpii_files):
    out1, out2 = mpii_files / "out1", mpii_files / "out2"
    run1 = _run(*_mpii_args(mpii_files, out1, "--split=train", "--num_shards=2", "--num_workers=1"))
    assert run1.returncode == 0, run1.stderr
    assert "Wrote 3 mpii/train records" in run1.stdout
    assert "no_objpos_or_scale: 1" in run1.stdout
    run2 = _run(*_mpii_args(mpii_files, out2, "--split=train", "--num_shards=2", "--num_workers=2"))
    assert run2.returncode == 0, run2.stderr
    names = sorted(p.name for p in out1.iterdir())
    assert names == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "train.manifest.json",
    ]
    for name in names:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    manifest = json.loads((out1 / "train.manifest.json").read_text())
    assert manifest["skipped"][0]["reason"] == "no_objpos_or_scale"
    assert [s["path"] for s in manifest["sources"]] == [
        str(mpii_files / "mpii.mat"),
        str(mpii_files / "split.txt"),
    ]

    shards = [str(out1 / n) for n in names[:2]]
    drawn = mpii_files / "drawn"
    run = _run(
        "stacked_hourglass.datasets.inspect", *shards, f"--output_dir={drawn}", "--num_images=2",
        module=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Dataset mpii: 3 records" in run.stdout
    assert "head_top" in run.stdout and "Drew 2 record(s)" in run.stdout
    pngs = sorted(drawn.glob("*.png"))
    assert len(pngs) == 2 and pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_cli_missing_annotations_writes_nothing(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "images").mkdir()
    run = _run(
        "--dataset=mpii", f"--annotations={tmp_path / 'missing.mat'}",
        f"--images={tmp_path / 'images'}", f"--output_dir={out}",
    )  # fmt: skip
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "make_tfrecords" in line]
    assert len(errors) == 1 and "missing.mat" in errors[0], run.stderr
    assert not out.exists()


def test_cli_strict_fails_on_a_skip(mpii_files):
    (mpii_files / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")  # corrupt JPEG
    out = mpii_files / "out"
    run = _run(*_mpii_args(mpii_files, out, "--split=valid", "--strict"))
    assert run.returncode != 0
    assert "corrupt_image" in run.stderr and "a.jpg" in run.stderr
    assert not out.exists()


def test_cli_synthetic(tmp_path):
    pytest.importorskip("stacked_hourglass.datasets.synthetic")
    out = tmp_path / "out"
    run = _run("--dataset=synthetic", "--num_examples=3", "--seed=1", "--split=valid",
               f"--output_dir={out}")  # fmt: skip
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "valid.manifest.json").read_text())
    assert manifest["num_records"] == 3 and manifest["dataset"] == "synthetic"
    assert manifest["options"]["seed"] == 1
