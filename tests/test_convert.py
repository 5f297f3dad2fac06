"""Tests of `python -m stacked_hourglass.convert` (and its tools/make_tfrecords.py shim).

In-process through `convert.main([...])`: conversion, determinism, hints and every error path (one
line on stderr naming the file or flag, exit status 1, nothing written). One subprocess smoke test
per command.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from stacked_hourglass import convert
from stacked_hourglass.data.records import shards

REPO = pathlib.Path(__file__).resolve().parents[1]


def _mpii_args(files, out, *extra):
    return [
        "--dataset=mpii", f"--annotations={files / 'mpii.mat'}", f"--images={files / 'images'}",
        f"--output_dir={out}", f"--split_file={files / 'split.txt'}", "--num_workers=1", *extra,
    ]  # fmt: skip


def _error_line(capsys) -> str:
    """The one error line a failed command printed on stderr (progress lines may precede it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("convert: error: "), lines[0]
    return lines[0]


def test_converts_deterministically(official_mpii, capsys):
    out1, out2 = official_mpii / "out1", official_mpii / "out2"
    assert convert.main(_mpii_args(official_mpii, out1, "--split=train", "--num_shards=2")) == 0
    stdout = capsys.readouterr().out
    assert "Converting 4 mpii/train people" in stdout
    assert "Wrote 3 mpii/train records" in stdout and "no_objpos_or_scale: 1" in stdout
    args = _mpii_args(official_mpii, out2, "--split=train", "--num_shards=2", "--num_workers=2")
    assert convert.main(args) == 0
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
        str(official_mpii / "mpii.mat"),
        str(official_mpii / "split.txt"),
    ]
    assert manifest["options"] == {
        "split_file": str(official_mpii / "split.txt"),
        "verify_images": False,
    }


def test_note_without_split_file_and_orphans_reported(official_mpii, capsys):
    out = official_mpii / "out"
    out.mkdir()
    (out / ".train-00000-of-00001.tfrecord.999999999.tmp").write_bytes(b"half")
    args = [a for a in _mpii_args(official_mpii, out) if not a.startswith("--split_file")]
    assert convert.main(args) == 0
    stdout = capsys.readouterr().out
    assert "Note: no --split_file, so train includes the Tompson validation people." in stdout
    assert "Removed 1 orphaned temporary file(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "train-00000-of-00001.tfrecord",
        "train.manifest.json",
    ]


def test_help(capsys):
    assert convert.main(["--help"]) == 0
    stdout = capsys.readouterr().out
    assert "--dataset" in stdout and "--split_file" in stdout and "--num_workers" in stdout


def _json_file(tmp_path, content: str) -> list[str]:
    (tmp_path / "people.json").write_text(content)
    (tmp_path / "images").mkdir(exist_ok=True)
    return ["--dataset=mpii", f"--annotations={tmp_path / 'people.json'}",
            f"--images={tmp_path / 'images'}", f"--output_dir={tmp_path / 'out'}",
            "--split=valid"]  # fmt: skip


def test_annotation_file_without_people_fails_and_writes_no_shard(tmp_path, capsys):
    assert convert.main(_json_file(tmp_path, "[]")) == 1
    line = _error_line(capsys)
    assert "people.json has no people for split 'valid'; nothing written" in line
    assert not (tmp_path / "out").exists()


def test_everybody_skipped_names_the_first_field(tmp_path, capsys):
    row = {"image": "x.jpg", "center": [1, 2], "scale": 10**400, "joints": [[1, 1]] * 16,
           "joints_vis": [1] * 16}  # fmt: skip
    assert convert.main(_json_file(tmp_path, json.dumps([row]))) == 1
    line = _error_line(capsys)
    assert "no records: 1 person(s) skipped (nan_in_annotation: 1)" in line
    assert "people.json row 0: field 'scale'" in line and line.endswith("; nothing written")
    assert not (tmp_path / "out").exists()


def test_strict_fails_on_a_skip(official_mpii, capsys):
    (official_mpii / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")  # corrupt JPEG
    out = official_mpii / "out"
    assert convert.main(_mpii_args(official_mpii, out, "--split=valid", "--strict")) == 1
    line = _error_line(capsys)
    assert "--strict" in line and "corrupt_image" in line and "a.jpg" in line
    assert line.endswith(
        "a.jpg: not a readable image (Invalid JPEG data, size 11); nothing written"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "case,message",
    [
        ("no_dataset", "--dataset is required"),
        ("bad_dataset", "flag --dataset=coco"),
        ("no_images", "--dataset=mpii needs --annotations and --images"),
        ("positional", "unexpected arguments: extra"),
        ("missing_annotations", "annotations file {tmp}/missing.mat does not exist"),
        ("annotations_folder", "annotations file {tmp}/images is a folder, not a file"),
        ("missing_images", "images folder {tmp}/nope does not exist"),
        ("output_is_file", "output folder {tmp}/file.txt is a file, not a folder"),
        ("empty_mat", "{tmp}/empty.mat: not a readable MPII annotation file"),
        ("huge_json", "{tmp}/huge.json: expected a json list of people, got int"),
        ("invalid_json", "{tmp}/bad.json: not a valid MPII annotation file"),
        ("missing_split_file", "--split_file {tmp}/nope.txt does not exist"),
        ("bad_split_line", "{tmp}/split.txt:1: expected 'imgname index person'"),
        ("ground_truth_for_mat", "{tmp}/empty.mat: a ground truth file goes with a .json only"),
        ("synthetic_with_files", "synthetic takes no annotations"),
        ("flic_test", "flic has splits train, valid; got 'test'"),
        ("num_shards_zero", "--num_shards"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, case, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "empty.mat").write_bytes(b"")
    (tmp_path / "file.txt").write_text("")
    (tmp_path / "huge.json").write_text(str(10**400))
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "split.txt").write_text("a.jpg zero 1\n")
    images, out = f"--images={tmp_path / 'images'}", f"--output_dir={tmp_path / 'out'}"
    mpii = ["--dataset=mpii", images, out]
    args = {
        "no_dataset": [out],
        "bad_dataset": ["--dataset=coco", out],
        "no_images": ["--dataset=mpii", f"--annotations={tmp_path / 'empty.mat'}", out],
        "positional": ["--dataset=synthetic", out, "extra"],
        "missing_annotations": [*mpii, f"--annotations={tmp_path / 'missing.mat'}"],
        "annotations_folder": [*mpii, f"--annotations={tmp_path / 'images'}"],
        "missing_images": ["--dataset=mpii", f"--annotations={tmp_path / 'empty.mat'}",
                           f"--images={tmp_path / 'nope'}", out],
        "output_is_file": ["--dataset=synthetic", f"--output_dir={tmp_path / 'file.txt'}"],
        "empty_mat": [*mpii, f"--annotations={tmp_path / 'empty.mat'}"],
        "huge_json": [*mpii, f"--annotations={tmp_path / 'huge.json'}"],
        "invalid_json": [*mpii, f"--annotations={tmp_path / 'bad.json'}"],
        "missing_split_file": [*mpii, f"--annotations={tmp_path / 'empty.mat'}",
                               f"--split_file={tmp_path / 'nope.txt'}"],
        "bad_split_line": [*mpii, f"--annotations={tmp_path / 'empty.mat'}",
                           f"--split_file={tmp_path / 'split.txt'}"],
        "ground_truth_for_mat": [*mpii, f"--annotations={tmp_path / 'empty.mat'}",
                                 f"--ground_truth={tmp_path / 'empty.mat'}"],
        "synthetic_with_files": ["--dataset=synthetic", out, images],
        "flic_test": ["--dataset=flic", f"--annotations={tmp_path / 'empty.mat'}", images, out,
                      "--split=test"],
        "num_shards_zero": ["--dataset=synthetic", out, "--num_shards=0"],
    }[case]  # fmt: skip
    assert convert.main(args) == 1
    assert message.format(tmp=tmp_path) in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def _run(*command):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_module_smoke(tmp_path):
    out = tmp_path / "out"
    run = _run("-m", "stacked_hourglass.convert", "--dataset=synthetic", "--num_examples=3",
               "--seed=1", "--split=valid", f"--output_dir={out}")  # fmt: skip
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "valid.manifest.json").read_text())
    assert manifest["num_records"] == 3 and manifest["dataset"] == "synthetic"
    assert manifest["options"] == {"num_examples": 3, "seed": 1, "split_file": None,
                                   "verify_images": False}  # fmt: skip


def test_tools_shim_smoke(tmp_path):
    run = _run(str(REPO / "tools" / "make_tfrecords.py"), "--dataset=mpii",
               f"--annotations={tmp_path / 'missing.mat'}", f"--images={tmp_path}",
               f"--output_dir={tmp_path / 'out'}")  # fmt: skip
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert errors == [f"convert: error: annotations file {tmp_path / 'missing.mat'} does not exist"]
    assert not (tmp_path / "out").exists()
    assert shards.manifest_name("valid") == "valid.manifest.json"
