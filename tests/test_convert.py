"""Tests of `python -m stacked_hourglass.convert` (and its tools/make_tfrecords.py shim).

In-process through `convert.main([...])`: conversion, determinism, hints and every error path (one
line on stderr naming the file or flag, exit status 1, nothing written). One subprocess smoke test
per command.
"""

import json
import os
import pathlib
import runpy
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
        "verify_images": True,
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
    assert "--order" in stdout and "--shuffle_seed" in stdout and "--flic_labels" in stdout


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
        "a.jpg: not a readable image (a JPEG that is truncated: its FF 20 segment at byte 2 "
        "runs past the end of the file (11 bytes)); nothing written"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "case,message",
    [
        ("no_dataset", "--dataset is required"),
        ("bad_dataset", "flag --dataset=lsp"),
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
        ("bad_order", "flag --order=random"),
        ("negative_shuffle_seed", "flag --shuffle_seed=-1"),
        ("flic_labels_for_mpii", "--flic_labels is for --dataset=flic only, not mpii"),
        ("bad_flic_labels", "flag --flic_labels=camera"),
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
        "bad_dataset": ["--dataset=lsp", out],
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
        "bad_order": ["--dataset=synthetic", out, "--order=random"],
        "negative_shuffle_seed": ["--dataset=synthetic", out, "--shuffle_seed=-1"],
        "flic_labels_for_mpii": [*mpii, f"--annotations={tmp_path / 'empty.mat'}",
                                 "--flic_labels=person"],
        "bad_flic_labels": ["--dataset=flic", f"--annotations={tmp_path / 'empty.mat'}", images,
                            out, "--flic_labels=camera"],
    }[case]  # fmt: skip
    assert convert.main(args) == 1
    assert message.format(tmp=tmp_path) in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def _synthetic(out, *extra):
    return ["--dataset=synthetic", "--num_examples=12", "--seed=3", f"--output_dir={out}",
            "--num_shards=3", "--num_workers=2", *extra]  # fmt: skip


def _records(out, split, num_joints=16) -> list[dict]:
    import tensorflow as tf

    from stacked_hourglass.data import features

    return [
        features.parse_example_numpy(raw.numpy(), num_joints)
        for path in sorted(out.glob(f"{split}-*.tfrecord"))
        for raw in tf.data.TFRecordDataset(str(path))
    ]


def _manifest(out, split) -> dict:
    return json.loads((out / f"{split}.manifest.json").read_text())


def test_train_is_shuffled_and_valid_in_source_order_by_default(tmp_path, capsys):
    from stacked_hourglass.data import features

    assert convert.main(_synthetic(tmp_path / "train", "--split=train")) == 0
    assert (
        "Converting 12 synthetic/train people from the synthetic generator shuffled (seed 0)"
        in (capsys.readouterr().out)
    )
    order = _manifest(tmp_path / "train", "train")["order"]
    expected = shards.shuffled_order(12, 0)
    assert order["kind"] == "shuffled" and order["seed"] == 0
    assert order["permutation_sha256"] == shards.permutation_sha256(expected)
    indices = [r[features.SOURCE_INDEX] for r in _records(tmp_path / "train", "train")]
    assert indices == expected

    assert convert.main(_synthetic(tmp_path / "valid", "--split=valid")) == 0
    assert "in source order" in capsys.readouterr().out
    assert _manifest(tmp_path / "valid", "valid")["order"] == {"kind": "source"}
    assert [r[features.SOURCE_INDEX] for r in _records(tmp_path / "valid", "valid")] == list(
        range(12)
    )


def test_order_flags(tmp_path, capsys):
    from stacked_hourglass.data import features

    def indices(out, split):
        return [r[features.SOURCE_INDEX] for r in _records(out, split)]

    assert convert.main(_synthetic(tmp_path / "s5", "--split=train", "--shuffle_seed=5")) == 0
    assert indices(tmp_path / "s5", "train") == shards.shuffled_order(12, 5)
    assert _manifest(tmp_path / "s5", "train")["order"]["seed"] == 5
    assert convert.main(_synthetic(tmp_path / "src", "--split=train", "--order=source")) == 0
    assert indices(tmp_path / "src", "train") == list(range(12))
    capsys.readouterr()
    assert convert.main(_synthetic(tmp_path / "v", "--split=valid", "--order=shuffled")) == 0
    assert "Note: valid in shuffled order; predictions made on it come in that order" in (
        capsys.readouterr().out
    )
    assert indices(tmp_path / "v", "valid") == shards.shuffled_order(12, 0)


def test_valid_conversion_is_the_source_order_writer(official_mpii):
    # Validation splits are written exactly as before shuffling existed: source order.
    from stacked_hourglass.data.sources import mpii

    out = official_mpii / "cli"
    assert convert.main(_mpii_args(official_mpii, out, "--split=valid")) == 0
    items = mpii.read_annotations(official_mpii / "mpii.mat", official_mpii / "images", "valid",
                                  official_mpii / "split.txt")  # fmt: skip
    direct = shards.write_split(items, len(items), official_mpii / "lib", "valid", "mpii",
                                show_progress=False)  # fmt: skip
    for path in direct.shard_paths:
        assert (out / path.name).read_bytes() == path.read_bytes()


def _flic_examples_mat(path) -> None:
    """Two FLIC people in a 480x720 frame: one facing the camera, one seen from the back."""
    import numpy as np
    import scipy.io

    from stacked_hourglass.data.sources import flic

    def coords(l_x, r_x):
        c = np.full((2, 29), np.nan)
        for name, modec in flic.MODEC_IDS.items():
            side = l_x if name.startswith("l_") else r_x if name.startswith("r_") else 360.0
            c[:, modec - 1] = (side + modec, 150.0 + 10 * modec)
        return c

    fields = ("coords", "torsobox", "filepath", "imgdims", "istrain", "istest")
    examples = np.zeros((1, 2), dtype=[(f, object) for f in fields])
    box, dims = np.array([[300.0, 100.0, 420.0, 300.0]]), np.array([[480, 720, 3]])
    examples[0, 0] = (coords(400.0, 300.0), box, "front.jpg", dims, 1, 0)
    examples[0, 1] = (coords(300.0, 400.0), box, "back.jpg", dims, 1, 0)
    scipy.io.savemat(path, {"examples": examples})


def test_flic_labels_default_to_observer_and_are_in_the_manifest(tmp_path, image_bytes):
    from stacked_hourglass import joints
    from stacked_hourglass.data import features

    _flic_examples_mat(tmp_path / "examples.mat")
    (tmp_path / "images").mkdir()
    for name in ("front.jpg", "back.jpg"):
        (tmp_path / "images" / name).write_bytes(image_bytes((480, 720), 0))
    args = ["--dataset=flic", f"--annotations={tmp_path / 'examples.mat'}",
            f"--images={tmp_path / 'images'}", "--split=train", "--order=source"]  # fmt: skip
    ls, rs = joints.FLIC.indices(("l_shoulder", "r_shoulder"))
    keypoints = {}
    for labels in ("observer", "person", None):
        out = tmp_path / str(labels)
        flag = [] if labels is None else [f"--flic_labels={labels}"]
        assert convert.main([*args, f"--output_dir={out}", *flag]) == 0
        assert _manifest(out, "train")["options"]["flic_labels"] == (labels or "observer")
        keypoints[labels] = [r[features.KEYPOINTS] for r in _records(out, "train", num_joints=11)]
    front_o, back_o = keypoints["observer"]
    front_p, back_p = keypoints["person"]
    assert (front_o == front_p).all()  # facing the camera: the same labels
    assert back_p[ls, 0] < back_p[rs, 0] and back_o[ls, 0] > back_o[rs, 0]  # swapped
    assert all((a == b).all() for a, b in zip(keypoints[None], keypoints["observer"], strict=True))


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
                                   "verify_images": True}  # fmt: skip


def test_tools_shim_runs_convert(tmp_path, capsys, monkeypatch):
    """`python tools/make_tfrecords.py` is `python -m stacked_hourglass.convert` (whose own
    process is `test_module_smoke`'s): run as a script in this process, an error path."""
    missing = tmp_path / "missing.mat"
    argv = ["--dataset=mpii", f"--annotations={missing}", f"--images={tmp_path}",
            f"--output_dir={tmp_path / 'out'}"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [str(REPO / "tools" / "make_tfrecords.py"), *argv])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(sys.argv[0], run_name="__main__")
    assert exited.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [f"convert: error: annotations file {missing} does not exist"]
    assert not (tmp_path / "out").exists()


def test_a_truncated_image_is_skipped_by_default(official_mpii, capsys):
    """A truncated JPEG passes every header check; convert decodes each image to its end by
    default and skips its people (`corrupt_image`); --noverify_images reads headers only."""
    import numpy as np
    import tensorflow as tf

    noise = np.random.default_rng(0).integers(0, 256, (400, 500, 3), np.uint8)
    whole = tf.io.encode_jpeg(noise, quality=90).numpy()
    (official_mpii / "images" / "b.jpg").write_bytes(whole[: len(whole) // 2])
    out = official_mpii / "out"
    assert convert.main(_mpii_args(official_mpii, out, "--split=train")) == 0
    manifest = json.loads((out / "train.manifest.json").read_text())
    corrupt = [s for s in manifest["skipped"] if s["reason"] == "corrupt_image"]
    assert [s["filename"] for s in corrupt] == ["b.jpg", "b.jpg"], manifest["skipped"]
    unchecked = official_mpii / "unchecked"
    assert convert.main(_mpii_args(official_mpii, unchecked, "--split=train",
                                   "--noverify_images")) == 0  # fmt: skip
    manifest = json.loads((unchecked / "train.manifest.json").read_text())
    assert not [s for s in manifest["skipped"] if s["reason"] == "corrupt_image"]
