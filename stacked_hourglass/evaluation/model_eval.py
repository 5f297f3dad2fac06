"""Scoring a network (a model directory, a SavedModel or a LiteRT model) over TFRecords.

`python -m stacked_hourglass.evaluate --model_dir=... | --saved_model=... | --litert=...
--data=...`. Every kind is opened as a `serving.predictor.Predictor`, whose `heatmaps` (crops ->
last-stack heatmaps) goes through the one prediction path (`model.inference.predict_dataset`),
so the numbers are those of training's validation and of the served model.

Before any model is loaded, the records are checked once (`data.records.split.Split.check`,
the trainer's full check of a validation split): a corrupt shard, a record that is not a person of
the joint set, or a split without PCK normalisers fails first, in one line naming the shard and
the record.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from stacked_hourglass.config import check_same_joints
from stacked_hourglass.data import images, pipeline
from stacked_hourglass.data.records import validate
from stacked_hourglass.data.records.split import Split
from stacked_hourglass.evaluation import coco_eval, coco_model_eval, formats
from stacked_hourglass.evaluation.report import report_figures
from stacked_hourglass.joints import JointSet, get_joint_set
from stacked_hourglass.model import inference
from stacked_hourglass.serving import predictor


def check_data(data: str, joint_set: JointSet, max_pixels: int) -> None:
    """The records' cheap check (one pass, no decoding): `ValueError`, one line naming the first
    bad shard and record, when a record cannot be read, is not a person of `joint_set` (the
    line then asks whether --dataset is right), holds unusable values, an image above
    `max_pixels` or no positive normaliser (PCK divides by it).

    Raises:
        FileNotFoundError: no file matches `data`.
        ValueError: see above.
    """
    report = Split.open(data).check(
        joint_set.num_joints, need_normalizer=True, max_pixels=max_pixels
    )
    validate.raise_for_problems(report)


def check_records_joints(data: str, joint_set: JointSet, what: str) -> None:
    """Refuses records whose manifests record another joint set than `joint_set` (the model's,
    named by `what`); records without a manifest are checked by `check_data`.

    Raises:
        FileNotFoundError: no file matches `data`.
        ValueError: one line naming the records' joint set and `what`'s.
    """
    records = Split.open(data).joints()
    if records is not None:
        check_same_joints(records, data, joint_set, what)


def run_model_evaluation(
    kind: str,
    path: str,
    *,
    data: str,
    flip_test: bool,
    batch_size: int,
    head: str,
    threshold: float | None,
    output_dir: str | None,
    joint_set: JointSet | None = None,
    decoder: str | None = None,
    check_records: bool = True,
    ground_truth: str | None = None,
    detections: str | None = None,
    min_box_score: float = coco_eval.MIN_BOX_SCORE,
    oks_nms: float = coco_eval.OKS_NMS_THRESHOLD,
) -> dict:
    """Runs a model over TFRecords, prints the table, writes predictions and figures.

    Args:
        kind, path: the model (`serving.predictor.KINDS`; the path as the user gave it).
        data: TFRecord glob.
        flip_test, decoder: asked for (`predictor.read_info`: a model directory runs them, an
            export must have them baked in; None: the export's decoder, or "quarter").
        joint_set: the records' joints; None: the model's.
        check_records: run `check_data` first, before the model is loaded.
        head, threshold, output_dir: see `report_figures`.
        ground_truth, detections, min_box_score, oks_nms: COCO keypoint AP of COCO-format
            records (`coco_model_eval`): the annotation file (default: the manifest's source),
            person detections instead of the records' boxes, and the post-processing settings.

    Predictions are decoded with the same code as training's validation and the SavedModel
    (argmax, quarter-pixel shift, inverse crop) and scored in original-image pixels against the
    records' keypoints and normalisers. With `output_dir`, also writes NAME.preds.h5 in pose-hg's
    layout (1-based, rows ordered by source/index then source/person, which is the row order of
    pose-hg's valid.h5) plus the JSON and curves of `report_figures`. COCO-format records are
    also scored by COCO keypoint AP (figures["coco"]; NAME.keypoints.json and NAME.coco_ap.json).

    Raises:
        ValueError / FileNotFoundError: bad paths or records (message names them).
    """
    if not data:
        raise ValueError(f"--data (a TFRecord glob) is required with --{kind}")
    info = predictor.read_info(kind, path, flip_test=flip_test, decoder=decoder)
    if joint_set is None:  # --dataset reads the records as its set: `check_data` checks them
        check_records_joints(data, info.joint_set, f"the model {path}")
    joint_set = joint_set or info.joint_set
    # A model directory's own limit; an export's limit is about requests, not records.
    max_pixels = info.max_pixels if kind == "model_dir" else images.DEFAULT_MAX_PIXELS
    if check_records:
        check_data(data, joint_set, max_pixels)
    split = Split.open(data)
    coco_setup = coco_model_eval.prepare(
        split, data, joint_set, ground_truth=ground_truth, detections=detections,
        min_box_score=min_box_score, oks_nms=oks_nms,
    )  # fmt: skip
    model = predictor.load(info)
    dataset = pipeline.make_eval_dataset(
        data, joint_set.num_joints, info.codec(), batch_size, max_pixels=max_pixels
    )
    result = _predict_records(model, dataset, split, joint_set, max_pixels)
    name, source = _name_and_sources(info, path, data)
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
        written = formats.write_predictions_h5(
            Path(output_dir) / f"{name}.preds.h5",
            result["preds"],
            coordinate_base=0,
            extra={k: result[k] for k in ("index", "person", "scores")},
        )
        print(f"Wrote {written}")
    if coco_setup is not None:
        figures["coco"] = coco_model_eval.evaluate(
            coco_setup, model, split, result, batch_size=batch_size, name=name,
            output_dir=output_dir,
        )  # fmt: skip
    return figures


def _name_and_sources(info: predictor.ModelInfo, path: str, data: str) -> tuple[str, dict]:
    """(NAME of the output files, the figures' "sources") of an evaluation of `path`."""
    name = Path(path).stem if info.kind == "litert" else Path(path).name
    source = {
        **{k: (path if k == info.kind else None) for k in predictor.KINDS},
        "decoder": info.decoder,
        "data": data,
        "flip_test": info.flip_test,
        "coordinates": "0-based original pixels for both predictions and ground truth",
    }
    return name + ("_flip" if info.flip_test else ""), source


def _predict_records(model, dataset, split: Split, joint_set: JointSet, max_pixels: int) -> dict:
    """`inference.predict_dataset` of `model.heatmaps`, rows in source order (index, person).

    Raises:
        ValueError: a record the pipeline cannot use (one line naming its shard and record: an
            image that does not decode is found by decoding the split's images again,
            `pipeline.record_error`), records that do not parse as `joint_set`, or without a
            positive normaliser.
    """
    data = split.patterns
    try:
        result = inference.predict_dataset(model.heatmaps, dataset, model.info.codec())
    except tf.errors.OpError as e:
        bad = pipeline.record_error(e, [split], joint_set.num_joints, max_pixels)
        if bad is not None:
            raise bad from None
        if not isinstance(e, tf.errors.InvalidArgumentError):
            raise
        # Records that do not parse (another joint set than --dataset, or not person records):
        # the user's to fix, so one line rather than TF's pages of graph context.
        first = ((e.message or "").strip().splitlines() or [""])[0]
        message = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", first).strip() or type(e).__name__
        raise ValueError(
            f"{data}: cannot read the records as {joint_set.name} ({joint_set.num_joints} "
            f"joints; see --dataset): {message}"
        ) from None
    order = np.lexsort((result["person"], result["index"]))
    result = {k: v[order] for k, v in result.items()}
    if not np.all(result["normalizer"] > 0):
        bad = int(np.sum(~(result["normalizer"] > 0)))
        raise ValueError(
            f"{data}: {bad} records have no positive person/normalizer (head or torso size); "
            "PCK needs it (e.g. MPII json without head boxes: convert with --ground_truth)"
        )
    return result


def evaluate_sources(
    *,
    model_dir: str | None,
    saved_model: str | None,
    litert: str | None,
    data: str | None,
    dataset: str | None,
    **options,
) -> dict:
    """The model modes of `python -m stacked_hourglass.evaluate`: checks which models were
    given (`predictor.choose_model`) and scores (`run_model_evaluation`, with `options`); the
    joint set is --dataset's, else the model's own.

    Raises:
        ValueError: a wrong combination of models or a missing --data (one line).
    """
    joint_set = get_joint_set(dataset) if dataset else None
    if litert:
        if saved_model:
            raise ValueError("--litert compares with --model_dir, not --saved_model")
        return _evaluate_litert(litert, model_dir, data, joint_set, options)
    kind, path = predictor.choose_model(
        {"model_dir": model_dir, "saved_model": saved_model},
        missing="give --predictions and --ground_truth (released predictions), or --model_dir or "
        "--saved_model with --data (a model)",
    )
    return run_model_evaluation(kind, path, data=data, joint_set=joint_set, **options)


def _evaluate_litert(litert, model_dir, data, joint_set, options) -> dict:
    """--litert [--model_dir]: the converted model's table, the float model's, and both side by
    side (what the conversion and quantisation cost)."""
    if not data:
        raise ValueError("--data (a TFRecord glob) is required with --litert")
    info = predictor.read_info("litert", litert)
    print(f"== {litert} ({info.describe()})")
    figures = run_model_evaluation("litert", litert, data=data, joint_set=joint_set, **options)
    joint_set = joint_set or info.joint_set
    rows = [(f"LiteRT {info.quantize}", figures["table"])]
    if model_dir:
        print(f"== {model_dir} (float Keras model)")
        # The LiteRT model's decoder and flip test; its records were checked above.
        reference = run_model_evaluation(
            "model_dir", model_dir, data=data, joint_set=joint_set,
            **{**options, "flip_test": info.flip_test, "decoder": info.decoder},
            check_records=False,
        )  # fmt: skip
        rows.insert(0, ("float (model_dir)", reference["table"]))
    print(comparison_table(rows))
    return figures


def comparison_table(rows) -> str:
    """Rows (label, `pck.pck_table` dict) → a plain-text table of the columns and Mean."""
    columns = [*rows[0][1]["columns"], "Mean"]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{'model':<{width}}" + "".join(f"{c:>9}" for c in columns)]
    for label, table in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{table[c]:9.2f}" for c in columns))
    return "\n".join(lines)
