"""Evaluating a network over TFRecords: a model directory and its SavedModel exports agree, and
a SavedModel exported with the flip test is used as it is (never flipped a second time)."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.evaluation import model_eval, pck
from stacked_hourglass.model import inference
from stacked_hourglass.serving import client, predictor


def evaluate(records, output_dir, model_dir=None, saved_model=None, flip_test=False):
    """(figures, preds [N, K, 2] as written to NAME.preds.h5) of `run_model_evaluation`."""
    kind, path = predictor.choose_model({"model_dir": model_dir, "saved_model": saved_model})
    figures = model_eval.run_model_evaluation(
        kind,
        path,
        data=records["valid"],
        flip_test=flip_test,
        batch_size=5,
        joint_set=joints.SYNTHETIC,
        head="head_top",
        threshold=None,
        output_dir=str(output_dir),
    )
    (path,) = output_dir.glob("*.preds.h5")
    with h5py.File(path) as f:
        return figures, f["preds"][()]


@pytest.fixture(scope="module")
def model_dir_results(synthetic_model, synthetic_records, tmp_path_factory):
    """The model directory evaluated without and with --flip_test."""
    root = tmp_path_factory.mktemp("model_dir_eval")
    model_dir = synthetic_model["model_dir"]
    return {
        "plain": evaluate(synthetic_records, root / "plain", model_dir=model_dir),
        "flip": evaluate(synthetic_records, root / "flip", model_dir=model_dir, flip_test=True),
    }


def test_flip_test_changes_the_predictions(model_dir_results):
    """Else the comparisons below could not tell a flipped evaluation from a plain one."""
    (plain, plain_preds), (flip, flip_preds) = model_dir_results["plain"], model_dir_results["flip"]
    assert plain_preds.shape == (16, 16, 2)
    assert not np.allclose(plain_preds, flip_preds, atol=0.5)
    assert plain["name"] == "run" and flip["name"] == "run_flip"
    assert plain["sources"]["flip_test"] is False and flip["sources"]["flip_test"] is True


def test_saved_model_scores_as_its_model_dir(
    synthetic_model, synthetic_records, model_dir_results, tmp_path
):
    figures, preds = evaluate(synthetic_records, tmp_path, saved_model=synthetic_model["plain"])
    expected, expected_preds = model_dir_results["plain"]
    np.testing.assert_allclose(preds, expected_preds, atol=1e-3)
    assert figures["table"]["Mean"] == pytest.approx(expected["table"]["Mean"])
    assert figures["table"]["per_joint"] == pytest.approx(expected["table"]["per_joint"])


def test_flip_export_scores_as_the_model_dir_with_flip_test(
    synthetic_flip_export, synthetic_records, model_dir_results, tmp_path, monkeypatch
):
    # Count the SavedModel's executions: one per batch, not two (a second, evaluator-side flip
    # would call it again on the mirrored crops; with the flip test already averaged in the
    # graph that result is numerically the same, so only the count can tell).
    calls = tf.Variable(0)
    load = client.load_serving_model

    def counting_load(path):
        serving = load(path)

        def serve_images(images):
            calls.assign_add(1)
            return serving.serve_images(images=images)

        return dataclasses.replace(serving, serve_images=serve_images)

    monkeypatch.setattr(client, "load_serving_model", counting_load)
    figures, preds = evaluate(
        synthetic_records, tmp_path, saved_model=synthetic_flip_export, flip_test=True
    )
    assert int(calls.numpy()) == 4  # 16 people in batches of 5
    expected, expected_preds = model_dir_results["flip"]
    np.testing.assert_allclose(preds, expected_preds, atol=1e-3)
    assert figures["table"]["Mean"] == pytest.approx(expected["table"]["Mean"])
    assert figures["table"]["per_joint"] == pytest.approx(expected["table"]["per_joint"])
    assert figures["name"] == "1_flip" and figures["sources"]["flip_test"] is True


def test_flip_export_reports_the_flip_test_even_when_not_asked(synthetic_flip_export):
    info = predictor.open_predictor("saved_model", synthetic_flip_export, flip_test=False).info
    input_size, flipped = info.input_size, info.flip_test
    assert input_size == 64 and flipped is True


def test_flip_test_on_an_export_without_it_is_an_error(synthetic_model):
    with pytest.raises(ValueError, match="was exported without the flip test"):
        predictor.read_info("saved_model", synthetic_model["plain"], flip_test=True)


def test_exactly_one_model_source(synthetic_model, synthetic_records):
    for model_dir, saved_model in ((None, None), (synthetic_model["model_dir"], "x")):
        with pytest.raises(ValueError, match="exactly one of --model_dir and --saved_model"):
            predictor.choose_model({"model_dir": model_dir, "saved_model": saved_model})
    with pytest.raises(ValueError, match="--data"):
        model_eval.run_model_evaluation(
            "model_dir", synthetic_model["model_dir"], data="", flip_test=False,
            batch_size=5, joint_set=joints.SYNTHETIC, head="head_top", threshold=None,
            output_dir=None,
        )  # fmt: skip


def test_non_finite_model_predictions_warn_and_count_as_misses(
    synthetic_model, synthetic_records, tmp_path, monkeypatch, capsys
):
    """A network gone NaN on some people: one warning line with the counts; the joints are
    misses in the table (the same figures as predictions far off), never hits."""
    predict_dataset = inference.predict_dataset
    seen = {}

    def poisoned(*args, **kwargs):
        result = predict_dataset(*args, **kwargs)
        order = np.lexsort((result["person"], result["index"]))  # the evaluation's row order
        preds = result["preds"].copy()
        preds[order[0]] = np.nan  # every joint of the first person
        preds[order[3], 2, 0] = np.inf
        seen.update({k: v[order] for k, v in result.items()}, preds=preds[order])
        return {**result, "preds": preds}

    monkeypatch.setattr(inference, "predict_dataset", poisoned)
    capsys.readouterr()
    figures, written = evaluate(synthetic_records, tmp_path, model_dir=synthetic_model["model_dir"])
    err = capsys.readouterr().err.strip().splitlines()
    annotated = ~seen["missing"]
    scored = int(annotated[0].sum() + annotated[3, 2])
    assert err == [
        "warning: run: 2 of 16 people have non-finite (NaN/inf) predictions: 17 of 256 "
        f"keypoints, {scored} of them annotated and counted as misses"
    ], err
    assert figures["non_finite_predictions"] == {"people": 2, "keypoints": 17, "scored": scored}
    assert np.isnan(written[0]).all() and np.isinf(written[3, 2, 0])  # written as they are
    far = np.where(np.isfinite(seen["preds"]), seen["preds"], 1e6)
    expected = pck.pck_table(
        far, seen["keypoints"], seen["normalizer"], seen["missing"], joints.SYNTHETIC
    )
    assert figures["table"]["per_joint"] == pytest.approx(expected["per_joint"], nan_ok=True)
    assert figures["table"]["Mean"] == pytest.approx(expected["Mean"])
