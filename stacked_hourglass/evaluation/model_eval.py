"""Scoring a network (a model directory or an exported SavedModel) over TFRecords.

`python -m stacked_hourglass.evaluate --model_dir=... | --saved_model=... --data=...`. Both
sources become a heatmaps function (crops -> last-stack heatmaps) and go through the one
prediction path (`model.inference.predict_dataset`), so the numbers are those of training's
validation and of the served model.

Before any model is loaded, the records are checked once (`data.records.split.Split.check`,
the trainer's full check of a validation split): a corrupt shard, a record that is not a person of
the joint set, or a split without PCK normalisers fails first, in one line naming the shard and
the record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from stacked_hourglass import run_dir
from stacked_hourglass.data import images, pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.records import validate
from stacked_hourglass.data.records.split import Split
from stacked_hourglass.evaluation import formats
from stacked_hourglass.evaluation.report import report_figures
from stacked_hourglass.joints import JointSet, get_joint_set
from stacked_hourglass.model import inference


def load_heatmaps_fn(
    model_dir: str | None,
    saved_model: str | None,
    flip_test: bool,
    joint_set: JointSet,
    litert: str | None = None,
) -> tuple[inference.HeatmapsFn, int, bool]:
    """(heatmaps function, input size, flip test applied) of a model directory or a SavedModel.

    A SavedModel exported with the flip test already averages with the mirrored crop in its
    graph: it is used as it is (never flipped twice), and `flip_test` only says whether the
    caller asked for it. A LiteRT model (`litert`, FILE.tflite) is run through its interpreter
    (one crop per call), the same way.
    """
    if litert:
        from stacked_hourglass.serving.litert import LiteRTModel

        converted = LiteRTModel(litert)
        baked = bool(converted.metadata.get("flip_test", False))
        if flip_test and not baked:
            raise ValueError(
                f"{litert} was converted without the flip test; convert it with --flip_test or "
                "evaluate without --flip_test"
            )
        return converted.heatmaps_fn(), converted.input_size, baked
    if bool(model_dir) == bool(saved_model):
        raise ValueError("Give exactly one of --model_dir and --saved_model")
    if model_dir:
        config = run_dir.load_config(model_dir)
        model = run_dir.load_model(model_dir)
        flip = joint_set.flip_permutation() if flip_test else None
        return inference.heatmaps_fn(model, flip), config.model.input_size, flip_test
    from stacked_hourglass.serving import client

    serving = client.load_serving_model(saved_model)
    baked = bool(serving.metadata.get("flip_test", False))
    if flip_test and not baked:
        raise ValueError(
            f"{saved_model} was exported without the flip test; export it with --flip_test "
            "(the flip test runs inside the graph) or evaluate without --flip_test"
        )

    def heatmaps(images):
        return serving.serve_images(images=images)["heatmaps"]

    # The signature leaves the spatial size open (it checks it in the graph): read it from the
    # export's assets/joints.json.
    return heatmaps, int(serving.metadata["input_size"]), baked


def exported_metadata(saved_model: str | None, litert: str | None) -> dict | None:
    """joints.json of a SavedModel or FILE.json of a LiteRT model; None for a model_dir."""
    if litert:
        from stacked_hourglass.serving.litert import metadata_path

        path = metadata_path(litert)
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: missing; was {litert} written by export?")
        return json.loads(Path(path).read_text())
    if saved_model:
        from stacked_hourglass.serving import layout

        return layout.read_joints_metadata(saved_model)
    return None


def resolve_decoder(
    model_dir: str | None, saved_model: str | None, litert: str | None, decoder: str | None
) -> tuple[str, float]:
    """(decoder, sigma) for the evaluation: --decoder (default "quarter") for a model_dir; an
    export's own (asking for another one is an error: it is baked into the export)."""
    metadata = exported_metadata(saved_model, litert)
    if metadata is None:
        return decoder or "quarter", run_dir.load_config(model_dir).data.sigma
    baked = metadata.get("decoder", "quarter")
    if decoder and decoder != baked:
        raise ValueError(
            f"{saved_model or litert} was exported with decoder={baked}; evaluate it without "
            f"--decoder or export it again with --decoder={decoder}"
        )
    return baked, float(metadata.get("sigma", 1.0))


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


def records_max_pixels(model_dir: str | None) -> int:
    """The pixel limit records are read with: the model directory's `--max_pixels`, else the
    package default (an export's own limit is about requests, not records)."""
    if model_dir:
        return run_dir.load_config(model_dir).data.max_pixels
    return images.DEFAULT_MAX_PIXELS


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
    decoder: str | None = None,
    litert: str | None = None,
    check_records: bool = True,
) -> dict:
    """Runs a model over TFRecords, prints the table, writes predictions and figures.

    With `check_records` (the default), `check_data` runs first, before the model is loaded.

    Predictions are decoded with the same code as training's validation and the SavedModel
    (argmax, quarter-pixel shift, inverse crop) and scored in original-image pixels against the
    records' keypoints and normalisers. With `output_dir`, also writes NAME.preds.h5 in pose-hg's
    layout (1-based, rows ordered by source/index then source/person, which is the row order of
    pose-hg's valid.h5) plus the JSON and curves of `report_figures`.

    Raises:
        ValueError / FileNotFoundError: bad paths or records (message names them).
    """
    if not data:
        raise ValueError("--data (a TFRecord glob) is required with --model_dir/--saved_model")
    if litert:
        model_dir = saved_model = None
    decoder, sigma = resolve_decoder(model_dir, saved_model, litert, decoder)
    max_pixels = records_max_pixels(model_dir)
    if check_records:
        check_data(data, joint_set, max_pixels)
    heatmaps, input_size, flip_test = load_heatmaps_fn(
        model_dir, saved_model, flip_test, joint_set, litert=litert
    )
    codec = HeatmapCodec.for_model(input_size, sigma=sigma, decoder=decoder)
    dataset = pipeline.make_eval_dataset(
        data, joint_set.num_joints, codec, batch_size, max_pixels=max_pixels
    )
    try:
        result = inference.predict_dataset(heatmaps, dataset, codec)
    except tf.errors.InvalidArgumentError as e:
        # Records that do not parse (another joint set than --dataset, or not person records):
        # the user's to fix, so one line rather than TF's pages of graph context.
        first = ((e.message or "").strip().splitlines() or [""])[0]
        checked = re.search(r"assertion failed: \[(.*)\]", first)  # the pipeline's own check
        message = checked.group(1) if checked else re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", first)
        message = message.strip() or type(e).__name__
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
    name = (Path(litert).stem if litert else Path(model_dir or saved_model).name) + (
        "_flip" if flip_test else ""
    )
    source = {
        "model_dir": model_dir,
        "saved_model": saved_model,
        "litert": litert,
        "decoder": decoder,
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


def evaluate_sources(
    *,
    model_dir: str | None,
    saved_model: str | None,
    litert: str | None,
    data: str | None,
    dataset: str | None,
    flip_test: bool,
    batch_size: int,
    decoder: str | None,
    **common,
) -> dict:
    """The model modes of `python -m stacked_hourglass.evaluate`: checks which sources were
    given, resolves the joint set (default: the model's own dataset) and scores.

    Raises:
        ValueError: a wrong combination of sources or a missing --data (one line).
    """

    if litert:
        return _evaluate_litert(litert, model_dir, saved_model, data, dataset, flip_test,
                                batch_size, decoder, common)  # fmt: skip
    if not (model_dir or saved_model):
        raise ValueError(
            "give --predictions and --ground_truth (released predictions), or --model_dir or "
            "--saved_model with --data (a model)"
        )
    if model_dir and saved_model:
        raise ValueError("Give exactly one of --model_dir and --saved_model")
    if not data:
        raise ValueError("--data (a TFRecord glob) is required with --model_dir/--saved_model")
    if dataset is None and model_dir:
        dataset = run_dir.load_config(model_dir).data.dataset
    elif dataset is None:
        from stacked_hourglass.serving import layout

        dataset = layout.read_joints_metadata(saved_model)["dataset"]
    return run_model_evaluation(
        model_dir=model_dir,
        saved_model=saved_model,
        data=data,
        flip_test=flip_test,
        batch_size=batch_size,
        joint_set=get_joint_set(dataset),
        decoder=decoder,
        **common,
    )


def _evaluate_litert(
    litert, model_dir, saved_model, data, dataset, flip_test, batch_size, decoder, common
) -> dict:
    """--litert [--model_dir]: the converted model's table, the float model's, and both side by
    side (what the conversion and quantisation cost)."""

    if saved_model:
        raise ValueError("--litert compares with --model_dir, not --saved_model")
    if not data:
        raise ValueError("--data (a TFRecord glob) is required with --litert")
    metadata = exported_metadata(None, litert)
    run = {
        "data": data,
        "batch_size": batch_size,
        "joint_set": get_joint_set(dataset or metadata["dataset"]),
        **common,
    }
    quantize = metadata.get("quantize", "none")
    print(f"== {litert} (LiteRT, quantize={quantize})")
    figures = run_model_evaluation(
        model_dir=None, saved_model=None, litert=litert, flip_test=flip_test, decoder=decoder,
        **run,
    )  # fmt: skip
    rows = [(f"LiteRT {quantize}", figures["table"])]
    if model_dir:
        print(f"== {model_dir} (float Keras model)")
        reference = run_model_evaluation(
            model_dir=model_dir,
            saved_model=None,
            flip_test=bool(metadata.get("flip_test", False)),
            decoder=metadata.get("decoder", "quarter"),
            check_records=False,  # checked for the LiteRT model's run above
            **run,
        )
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
