"""`python -m stacked_hourglass.evaluate`: one model evaluation in a subprocess; released
predictions and the error paths in-process (those on the released MPII files need
../shared/data)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from stacked_hourglass import evaluate
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import synthetic
from stacked_hourglass.evaluation import formats
from stacked_hourglass.serving import predictor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DETECTIONS_GT = DATA / "pytorch-pose/evaluation/data/detections_our_format.mat"
POSEHG_GT = DATA / "pose-hg-train/data/mpii/annot/valid.h5"
BEARPAW_S8 = DATA / "eval-mpii-pose/preds/reference/bearpaw-hg_s8_b1.mat"
VALID_OURS = DATA / "pose-hg-demo/preds/valid-ours.h5"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"{DATA} is absent (released MPII predictions and ground truth)"
)


def test_model_evaluation_command_line(synthetic_model, synthetic_records, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.evaluate",
            f"--model_dir={synthetic_model['model_dir']}", f"--data={synthetic_records['valid']}",
            f"--output_dir={tmp_path}",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # --dataset defaults to the model directory's: synthetic, head-normalised.
    assert "PCKh@0.5" in result.stdout and "Scored 16 people" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["run.pck.json", "run.pck_curves.png", "run.preds.h5"]
    figures = json.loads((tmp_path / "run.pck.json").read_text())
    assert figures["sources"]["model_dir"] == synthetic_model["model_dir"]
    with h5py.File(tmp_path / "run.preds.h5") as f:
        assert f["preds"].shape == (16, 16, 2)


@pytest.fixture
def run_evaluate(capsys):
    """`run(*argv)` → (exit status, stdout, stderr lines) of an in-process `evaluate.main`."""

    def run(*argv):
        status = evaluate.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err.strip().splitlines()

    return run


def test_released_predictions_in_process(run_evaluate, small_pck_files, tmp_path):
    preds, gt = small_pck_files
    status, out, err = run_evaluate(
        f"--predictions={preds}", f"--ground_truth={gt}", f"--output_dir={tmp_path / 'out'}"
    )
    assert status == 0 and err == []
    assert "Scored 4 people, 63 of 64 joints (1 skipped)" in out
    assert sorted(os.listdir(tmp_path / "out")) == ["my-preds.pck.json", "my-preds.pck_curves.png"]


def test_flip_test_on_an_export_without_it_is_one_line(
    run_evaluate, synthetic_model, synthetic_records
):
    status, _, err = run_evaluate(
        f"--saved_model={synthetic_model['plain']}",
        f"--data={synthetic_records['valid']}",
        "--flip_test",
    )
    assert status == 1
    assert err == [
        f"evaluate: error: {synthetic_model['plain']} was exported without the flip test; "
        "export it with --flip_test (the flip test runs inside the graph) or evaluate without "
        "--flip_test"
    ]


def test_model_mode_bad_model_dir_is_one_line_error(run_evaluate):
    status, _, err = run_evaluate("--model_dir=/nonexistent", "--data=/nonexistent/*.tfrecord")
    assert status != 0
    assert len(err) == 1 and "/nonexistent" in err[0], err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--predictions=p.h5"], "--ground_truth is required"),
        ([], "give --predictions and --ground_truth (released predictions), or --model_dir"),
        (["--data=x"], "or --model_dir or --saved_model with --data"),
        (["--model_dir=a", "--saved_model=b", "--data=c"], "exactly one of"),
        (["--saved_model=b"], "--data (a TFRecord glob) is required"),
        (["--saved_model=b", "--data=c"], "b: not a SavedModel (no saved_model.pb)"),
        (["--predictions=p.h5", "--head=neck"], "head"),
        (["--predictions=p.h5", "--batch_size=0"], "batch_size"),
    ],
)
def test_usage_errors_are_one_line(run_evaluate, argv, message):
    status, out, err = run_evaluate(*argv)
    assert status == 1 and out == ""
    assert len(err) == 1 and err[0].startswith("evaluate: error: ") and message in err[0], err


def test_saved_model_evaluation_defaults_to_the_exported_dataset(
    run_evaluate, synthetic_model, synthetic_records
):
    status, out, err = run_evaluate(
        f"--saved_model={synthetic_model['plain']}", f"--data={synthetic_records['valid']}"
    )
    assert status == 0, err
    assert "Scored 16 people" in out and "PCKh@0.5" in out
    status, _, err = run_evaluate(
        f"--saved_model={synthetic_model['plain']}",
        f"--data={synthetic_records['valid']}",
        "--dataset=flic",  # 11 joints: the records hold 16
    )
    # The record check runs before the model: it names the first shard and record.
    first_shard = sorted(glob.glob(synthetic_records["valid"]))[0]
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(
        f"evaluate: error: {first_shard}: record 0: person/keypoints has 32 values, expected 22 "
        "(11 joints: is --dataset right?)"
    ), err
    assert "{{" not in err[0] and "assertion failed" not in err[0], err


def test_no_records_is_one_line(run_evaluate, synthetic_model, tmp_path):
    status, _, err = run_evaluate(
        f"--model_dir={synthetic_model['model_dir']}", f"--data={tmp_path}/*.tfrecord"
    )
    assert status == 1
    assert err == [f"evaluate: error: No TFRecord files match '{tmp_path}/*.tfrecord'"]


@needs_data
def test_cli_prints_table_and_writes_figures(run_evaluate, tmp_path):
    status, out, err = run_evaluate(
        f"--predictions={BEARPAW_S8}", f"--ground_truth={DETECTIONS_GT}", f"--output_dir={tmp_path}"
    )
    assert status == 0, err
    assert "Head = head_top" in out and "PCKh@0.5" in out
    assert "Scored 2958 people" in out and "38430" in out
    header, values = next(
        (line, nxt)
        for line, nxt in zip(out.splitlines(), out.splitlines()[1:], strict=False)
        if line.split()[:1] == ["Head"]
    )
    row = dict(zip(header.split(), values.split(), strict=True))
    assert row["Mean"] == "89.09" and row["Head"] == "96.79" and row["Ankle"] == "80.73"
    figures = json.loads((tmp_path / "bearpaw-hg_s8_b1.pck.json").read_text())
    assert abs(figures["table"]["Mean"] - 89.092) <= 0.0005 + 1e-9
    assert len(figures["curves"]["Mean"]) == 51
    png = (tmp_path / "bearpaw-hg_s8_b1.pck_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@needs_data
def test_cli_without_output_dir_writes_nothing(run_evaluate, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_evaluate(
        f"--predictions={VALID_OURS}",
        f"--ground_truth={POSEHG_GT}",
        "--head=neck_and_top",
        "--posehg_label_filter",
    )
    assert status == 0, err
    assert "'normalize' field" in out and "mean(upper_neck, head_top)" in out
    assert "96.67" in out
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_cli_mismatched_people_is_a_one_line_error(run_evaluate, tmp_path):
    short = tmp_path / "short.h5"
    with h5py.File(VALID_OURS, "r") as f:
        preds = f["preds"][:100]
    formats.write_predictions_h5(short, preds, coordinate_base=1)
    status, _, lines = run_evaluate(f"--predictions={short}", f"--ground_truth={DETECTIONS_GT}")
    assert status != 0
    assert len(lines) == 1 and "100 people" in lines[0] and "2958" in lines[0], lines
    assert "short.h5" in lines[0]


# --- problems in the records, found before any inference --------------------------------------


@pytest.fixture
def no_inference(monkeypatch):
    """Makes loading a model fail the test: the record check must stop the run first."""

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the records were checked")

    monkeypatch.setattr(predictor, "load", load)


def _copy_split(pattern, folder):
    """Copies the shards of `pattern` and their manifest into `folder`; returns the new glob and
    the shards."""
    folder.mkdir()
    source = os.path.dirname(pattern)
    for name in os.listdir(source):
        if name.startswith("valid"):
            shutil.copy(os.path.join(source, name), folder / name)
    copied = str(folder / os.path.basename(pattern))
    return copied, sorted(glob.glob(copied))


@pytest.mark.parametrize("source", ["model_dir", "plain"])
def test_corrupt_shard_fails_before_any_inference(
    run_evaluate, synthetic_model, synthetic_records, tmp_path, no_inference, source
):
    data, files = _copy_split(synthetic_records["valid"], tmp_path / "records")
    damaged = bytearray(Path(files[1]).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # inside a record: its CRC no longer matches
    Path(files[1]).write_bytes(bytes(damaged))
    flag = "model_dir" if source == "model_dir" else "saved_model"
    status, out, err = run_evaluate(f"--{flag}={synthetic_model[source]}", f"--data={data}")
    assert status == 1 and "PCKh" not in out
    assert len(err) == 1, err
    assert err[0].startswith(f"evaluate: error: {files[1]}: record "), err
    assert "cannot be read" in err[0] and "1 of 2 shard(s)" in err[0], err


def test_split_without_normalisers_fails_before_any_inference(
    run_evaluate, synthetic_model, tmp_path, no_inference
):
    people = []
    for person in synthetic.generate_examples("valid", 3, seed=5):
        person.normalizer = 0.0  # e.g. an HRNet json converted without --ground_truth
        people.append(person)
    shards.write_split(people, 3, tmp_path, "valid", "synthetic", num_shards=1,
                       show_progress=False)  # fmt: skip
    status, _, err = run_evaluate(
        f"--model_dir={synthetic_model['model_dir']}", f"--data={tmp_path}/valid-*.tfrecord"
    )
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(
        f"evaluate: error: {tmp_path}/valid-00000-of-00001.tfrecord: record 0: "
        "person/normalizer is 0, but PCK needs a positive head or torso size"
    ), err
    assert "3 problem(s) in 1 of 1 shard(s)" in err[0], err


def test_image_that_does_not_decode_is_one_line_naming_shard_and_record(
    run_evaluate, synthetic_model, tmp_path
):
    people = list(synthetic.generate_examples("valid", 3, seed=5))
    jpeg = people[1].image_encoded
    people[1].image_encoded = jpeg[: len(jpeg) * 2 // 3]  # the header check passes it
    shards.write_split(people, 3, tmp_path, "valid", "synthetic", num_shards=1,
                       show_progress=False)  # fmt: skip
    shard = f"{tmp_path}/valid-00000-of-00001.tfrecord"
    status, out, err = run_evaluate(
        f"--model_dir={synthetic_model['model_dir']}", f"--data={tmp_path}/valid-*.tfrecord"
    )
    assert status == 1 and "PCKh" not in out
    assert err == [
        f"evaluate: error: {shard}: record 1: unreadable person record or image "
        "(jpeg::Uncompress failed. Invalid JPEG data or crop window.)"
    ], err


# --- non-finite predictions: a warning with the counts, and misses -----------------------------


def test_non_finite_released_predictions_warn_and_count_as_misses(
    run_evaluate, small_pck_files, tmp_path
):
    preds_path, gt_path = small_pck_files
    with h5py.File(preds_path) as f:
        preds = f["preds"][()]
    preds[0, 0] = np.nan  # annotated: a miss
    preds[3, 1, 1] = -np.inf  # annotated: a miss
    preds[2, 3] = np.inf  # person 2's joint 3 is not annotated: skipped, as before
    bad = formats.write_predictions_h5(tmp_path / "bad.h5", preds, coordinate_base=1)
    far = preds.copy()
    far[~np.isfinite(far)] = 1e6  # the same joints, finite and surely wrong
    ref = formats.write_predictions_h5(tmp_path / "far.h5", far, coordinate_base=1)

    status, out, err = run_evaluate(
        f"--predictions={bad}", f"--ground_truth={gt_path}", f"--output_dir={tmp_path / 'out'}"
    )
    assert status == 0
    assert err == [
        "warning: bad: 3 of 4 people have non-finite (NaN/inf) predictions: 3 of 64 keypoints, "
        "2 of them annotated and counted as misses"
    ]
    figures = json.loads((tmp_path / "out" / "bad.pck.json").read_text())
    assert figures["non_finite_predictions"] == {"people": 3, "keypoints": 3, "scored": 2}
    status, expected_out, err = run_evaluate(f"--predictions={ref}", f"--ground_truth={gt_path}")
    assert status == 0 and err == []
    table = figures["table"]
    # Person 1 was all wrong already; the two annotated non-finite joints are two more misses.
    assert table["Mean"] == pytest.approx(100 * 39 / 55)
    assert _pck_table_lines(out) == _pck_table_lines(expected_out)


def _pck_table_lines(out: str) -> list[str]:
    """The printed PCK table: its header ("Head ..."), values and note lines."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["Head"])
    return lines[start : start + 3]


def _damage_b_tree(path, tree: int) -> None:
    """Flips one bit of the `tree`-th B-tree node's signature ("TREE") of an HDF5 file."""
    data = bytearray(Path(path).read_bytes())
    at = [i for i in range(len(data) - 3) if data[i : i + 4] == b"TREE"][tree]
    data[at] ^= 1
    Path(path).write_bytes(bytes(data))


@pytest.mark.parametrize("damaged", ["ground_truth", "predictions"])
@pytest.mark.parametrize("tree", [0, 1])  # the root group's links (RuntimeError), the chunks
def test_damaged_h5_is_one_line_naming_it(run_evaluate, tmp_path, damaged, tree):
    gt = np.arange(4 * 16 * 2, dtype=np.float64).reshape(4, 16, 2) + 10.0
    paths = {"ground_truth": tmp_path / "gt.h5", "predictions": tmp_path / "preds.h5"}
    with h5py.File(paths["ground_truth"], "w") as f:
        f.create_dataset("part", data=gt, chunks=(1, 16, 2))
        f["normalize"] = np.full(4, 10.0)
    with h5py.File(paths["predictions"], "w") as f:
        f.create_dataset("preds", data=gt, chunks=(1, 16, 2))
    _damage_b_tree(paths[damaged], tree)
    status, _, err = run_evaluate(
        f"--predictions={paths['predictions']}", f"--ground_truth={paths['ground_truth']}"
    )
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"evaluate: error: {paths[damaged]}: a damaged HDF5 file ("), err
    assert "wrong B-tree signature" in err[0], err
