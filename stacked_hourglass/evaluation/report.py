"""Scoring predictions: released prediction files and trained models, with tables and curves.

The library behind `python -m stacked_hourglass.evaluate`. TensorFlow is imported only by the
model mode: scoring released predictions stays a quick numpy job with no TF start-up noise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from stacked_hourglass.evaluation import formats, pck, plots
from stacked_hourglass.joints import JointSet


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def report_figures(
    preds: np.ndarray,
    gt: np.ndarray,
    missing: np.ndarray,
    normalizer: np.ndarray,
    *,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    name: str,
    output_dir: str | None,
    sources: dict,
) -> dict:
    """Computes, prints and (with `output_dir`) writes the table and the curves.

    Shared by both modes: the model mode passes its decoded predictions in the same pixel
    convention as `gt`.

    Args:
        preds: [N, K, 2] predicted (x, y), same pixel origin as `gt`.
        gt: [N, K, 2] ground-truth (x, y).
        missing: [N, K] bool, True where a joint is skipped.
        normalizer: [N] reference length in pixels.
        joint_set: columns and Mean joints.
        head: "head_top" or "neck_and_top".
        threshold: PCK threshold; None → the joint set's.
        name: stem of the output files and title of the figure.
        output_dir: folder for NAME.pck.json and NAME.pck_curves.png; None writes nothing.
        sources: descriptions of the inputs (paths, digests, conventions) stored in the JSON.

    Returns:
        The figures dict (as written to the JSON).
    """
    table = pck.pck_table(preds, gt, normalizer, missing, joint_set, threshold, head)
    curves = pck.pck_curve(preds, gt, normalizer, missing, joint_set, head=head)
    n, k = missing.shape
    head_note = pck.column_note(table, "Head")
    if joint_set.name in ("mpii", "synthetic"):
        head_note += {
            "head_top": " (HRNet/mmpose/bearpaw convention)",
            "neck_and_top": " (MPII / pose-hg convention)",
        }[head]
    kind = "PCKh" if joint_set.normalizer == "head" else "PCK"
    excluded = sorted(set(range(k)) - set(joint_set.mean_indices()))
    print(
        f"{kind}@{table['threshold']:g}: correct when distance <= {table['threshold']:g} x "
        f"normalizer (ties count); {head_note}."
    )
    print(
        f"Scored {n} people, {int((~missing).sum())} of {n * k} joints "
        f"({int(missing.sum())} skipped); Mean pooled over {table['num_joints_scored']} joints"
        + (f" (excluding {', '.join(joint_set.names[i] for i in excluded)})." if excluded else ".")
    )
    print(pck.format_table(table))
    figures = {"name": name, "sources": sources, "table": table, "curves": curves}
    if output_dir:
        out = Path(output_dir)
        json_path = formats.write_json(out / f"{name}.pck.json", figures)
        title = f"{name}: {kind}@{table['threshold']:g}, {pck.column_note(table, 'Head')}"
        png_path = plots.plot_pck_curves(curves, out / f"{name}.pck_curves.png", title)
        print(f"Wrote {json_path} and {png_path}")
    return figures


def run_released_evaluation(
    predictions: str,
    ground_truth: str,
    *,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    output_dir: str | None,
    posehg_label_filter: bool = False,
) -> dict:
    """Scores a released prediction file against a ground-truth file; see the module doc.

    Raises:
        ValueError: unreadable files, missing fields, or predictions and ground truth that do
            not match in people or joints (message names both files and shapes).
    """
    gt, missing, normalizer, headboxes = formats.load_ground_truth(
        ground_truth, num_joints=joint_set.num_joints
    )
    preds = formats.load_predictions(predictions, num_joints=joint_set.num_joints)
    if preds.shape != gt.shape:
        raise ValueError(
            f"{predictions} has predictions for {preds.shape[0]} people x {preds.shape[1]} "
            f"joints but {ground_truth} has {gt.shape[0]} x {gt.shape[1]}"
        )
    if posehg_label_filter:
        missing = missing | pck.posehg_label_missing(gt)
    normalizer_source = (
        "0.6 x head-box diagonal (headboxes_src)" if headboxes is not None else "'normalize' field"
    )
    print(f"Predictions: {predictions} ({preds.shape[0]} people, {preds.shape[1]} joints)")
    print(f"Ground truth: {ground_truth} (normalizer: {normalizer_source})")
    if posehg_label_filter:
        print("Skipping labels with x <= 1 or y <= 1 (pose-hg calcDists).")
    sources = {
        "predictions": {"path": str(predictions), "sha256": _sha256(predictions)},
        "ground_truth": {"path": str(ground_truth), "sha256": _sha256(ground_truth)},
        "normalizer": normalizer_source,
        "coordinates": "as stored in both files (1-based for the released files), no offset",
        "posehg_label_filter": posehg_label_filter,
    }
    return report_figures(
        preds,
        gt,
        missing,
        normalizer,
        joint_set=joint_set,
        head=head,
        threshold=threshold,
        name=Path(predictions).stem,
        output_dir=output_dir,
        sources=sources,
    )


class _SavedModelHeatmaps:
    """Adapts an exported SavedModel's `serving_image_tensor` to the Keras-model call interface
    of `inference.predict_heatmaps` (a dict with the last stack's heatmaps)."""

    output_names = ["heatmaps_1"]

    def __init__(self, path):
        from stacked_hourglass.serving import client

        self.serving = client.load_serving_model(path)
        # The signature leaves the spatial size open (it checks it in the graph): read it from
        # the export's assets/joints.json.
        self.input_size = int(self.serving.metadata["input_size"])

    def __call__(self, images, training=False):
        del training
        return {"heatmaps_1": self.serving.serve_images(images=images)["heatmaps"]}


def load_model_for_evaluation(model_dir: str | None, saved_model: str | None):
    """(callable model, input_size) from a training directory or an exported SavedModel."""
    from stacked_hourglass.training.trainer import trainer

    if bool(model_dir) == bool(saved_model):
        raise ValueError("Give exactly one of --model_dir and --saved_model")
    if model_dir:
        model_config, _, _ = trainer.load_configs(model_dir)
        return trainer.load_trained_model(model_dir), model_config.input_size
    model = _SavedModelHeatmaps(saved_model)
    return model, model.input_size


def run_model_evaluation(
    *,
    model_dir: str | None,
    saved_model: str | None,
    data: str,
    flip_test: bool,
    batch_size: int,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    output_dir: str | None,
) -> dict:
    """Runs a model over TFRecords, prints the table, writes predictions and figures.

    Predictions are decoded with the same code as training's validation and the SavedModel
    (argmax, quarter-pixel shift, inverse crop) and scored in original-image pixels against the
    records' keypoints and normalisers. With `output_dir`, also writes NAME.preds.h5 in pose-hg's
    layout (1-based, rows ordered by source/index then source/person, which is the row order of
    pose-hg's valid.h5) plus the JSON and curves of `report_figures`.

    Raises:
        ValueError / FileNotFoundError: bad paths or records (message names them).
    """
    from stacked_hourglass.data import pipeline
    from stacked_hourglass.model import inference

    if not data:
        raise ValueError("--data (a TFRecord glob) is required with --model_dir/--saved_model")
    model, input_size = load_model_for_evaluation(model_dir, saved_model)
    config = pipeline.DataConfig(
        dataset=joint_set.name, input_size=input_size, heatmap_size=input_size // 4
    )
    dataset = pipeline.make_eval_dataset(data, config, batch_size)
    flip = joint_set.flip_permutation() if flip_test else None
    result = inference.predict_dataset(model, dataset, input_size, flip_permutation=flip)
    order = np.lexsort((result["person"], result["index"]))
    result = {k: v[order] for k, v in result.items()}
    if not np.all(result["normalizer"] > 0):
        bad = int(np.sum(~(result["normalizer"] > 0)))
        raise ValueError(
            f"{data}: {bad} records have no positive person/normalizer (head or torso size); "
            "PCK needs it (e.g. MPII json without head boxes: convert with --ground_truth)"
        )
    name = Path(model_dir or saved_model).name + ("_flip" if flip_test else "")
    source = {
        "model_dir": model_dir,
        "saved_model": saved_model,
        "data": data,
        "flip_test": flip_test,
        "coordinates": "0-based original pixels for both predictions and ground truth",
    }
    figures = report_figures(
        result["preds"],
        result["keypoints"],
        result["missing"],
        result["normalizer"],
        joint_set=joint_set,
        head=head,
        threshold=threshold,
        name=name,
        output_dir=output_dir,
        sources=source,
    )
    if output_dir:
        path = formats.write_predictions_h5(
            Path(output_dir) / f"{name}.preds.h5",
            result["preds"],
            coordinate_base=0,
            extra={
                "index": result["index"],
                "person": result["person"],
                "scores": result["scores"],
            },
        )
        print(f"Wrote {path}")
    return figures
