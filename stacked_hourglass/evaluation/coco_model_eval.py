"""COCO keypoint AP of a model on COCO-format records (`evaluate --model_dir=... --data=...`).

Records converted from a COCO-format file (`convert --dataset=coco`, manifest dataset "coco")
are scored twice: the PCK table (`model_eval`, as for every dataset) and COCO keypoint AP
(`coco_eval`, pycocotools), in one of the two top-down modes of HRNet and mmpose:

  * ground-truth boxes (default): one result per record, from the record's own crop (its box by
    the package's box rule), image_id = source/index, box score 1;
  * `--detections=FILE.json` (COCO detection results: image_id, category_id, bbox [x, y, w, h]
    in COCO's continuous pixels, score): one crop per detection of the scored category with
    score >= `--min_box_score`, the box read as `sources.coco.coco_box` and cropped by the box
    rule (`serving.box_crop.box_to_center_scale`); the images are the records' (each image
    decoded once), so detections on images without records are skipped (counted).

Either way the person score is rescored and the poses of an image OKS-NMS'd (`coco_eval`), the
results written as NAME.keypoints.json (COCO's results format, our pixel coordinates unchanged)
and scored against the annotation file the records came from: the manifest's source (its sha256
checked), or `--ground_truth`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO

from stacked_hourglass.data import features, geometry
from stacked_hourglass.data.records.split import Split
from stacked_hourglass.data.sources.coco import DATASET, coco_box
from stacked_hourglass.evaluation import coco_eval
from stacked_hourglass.joints import JointSet
from stacked_hourglass.model import inference
from stacked_hourglass.serving import box_crop
from stacked_hourglass.utils import files


@dataclasses.dataclass(frozen=True)
class CocoSetup:
    """What COCO scoring needs, read and checked before the model is loaded.

    Attributes:
        coco: the ground truth (pycocotools). ground_truth: its {"path", "sha256"}.
        category: the scored category (keypoints = the records' joints).
        joint_set: the records' joints, with OKS sigmas.
        detections: `read_detections`' arrays, or None for ground-truth boxes.
        settings: the post-processing settings (recorded with the figures).
    """

    coco: COCO
    ground_truth: dict
    category: dict
    joint_set: JointSet
    detections: dict | None
    settings: dict


def is_coco_split(split: Split) -> bool:
    """Whether a manifest of the split says its records are COCO-format conversions."""
    return any(m.dataset == DATASET for m in split.manifests.values())


def ground_truth_file(split: Split, data: str, override: str | None) -> dict:
    """The COCO annotation file to score against: `override`, else the manifest's source.

    Returns:
        {"path", "sha256"} (the sha256 of the file as it is now).

    Raises:
        ValueError: one line: no manifest source (give --ground_truth), several different ones,
            the file missing, or its sha256 not the one the manifest recorded.
    """
    if override:
        if not files.exists(override):
            raise FileNotFoundError(f"{override}: COCO annotation file not found")
        return coco_eval.file_source(override)
    recorded = {}
    for where, manifest in split.manifests.items():
        joints_file = (manifest.options or {}).get("joints_file")
        for source in manifest.sources:
            if isinstance(source, dict) and source.get("path") not in (None, joints_file):
                recorded.setdefault(str(source["path"]), (str(source.get("sha256", "")), where))
    if len(recorded) != 1:
        what = "names no annotation file" if not recorded else f"name {len(recorded)} files"
        raise ValueError(
            f"{data}: the records' manifests {what}; give --ground_truth=ANNOTATIONS.json"
        )
    ((path, (sha256, where)),) = recorded.items()
    if not files.exists(path):
        raise FileNotFoundError(
            f"{path} (the annotation file {where} records) not found; give --ground_truth=FILE"
        )
    found = coco_eval.file_source(path)
    if sha256 and found["sha256"] != sha256:
        raise ValueError(
            f"{path}: sha256 {found['sha256'][:12]}... is not the {sha256[:12]}... that {where} "
            "recorded (the file changed since the conversion); give --ground_truth=FILE to score "
            "against it as it is"
        )
    return found


def prepare(
    split: Split,
    data: str,
    joint_set: JointSet,
    *,
    ground_truth: str | None = None,
    detections: str | None = None,
    min_box_score: float = coco_eval.MIN_BOX_SCORE,
    oks_nms: float = coco_eval.OKS_NMS_THRESHOLD,
) -> CocoSetup | None:
    """Reads and checks what COCO scoring of `split` needs; None when there is none to do.

    None for records that are not COCO-format (nor --detections/--ground_truth asked for AP),
    and, after one note line, for a joint set without OKS sigmas (PCK only).

    Raises:
        ValueError / FileNotFoundError: one line (see `ground_truth_file`, `read_detections`,
            `coco_eval.keypoint_category`); --detections on records without OKS sigmas.
    """
    if not (is_coco_split(split) or detections or ground_truth):
        return None
    if joint_set.oks_sigmas is None and not detections:
        print(
            f"note: joint set {joint_set.name!r} has no OKS sigmas: COCO keypoint AP skipped (give "
            "the converter a joint-set file with oks_sigmas, --joints=FILE.json)"
        )
        return None
    source = ground_truth_file(split, data, ground_truth)
    coco = coco_eval.load_ground_truth(source["path"])
    category, joint_set = coco_eval.keypoint_category(coco, source["path"], joint_set)
    settings = {
        "boxes": "detection" if detections else "ground-truth",
        "keypoint_score_threshold": coco_eval.KEYPOINT_SCORE_THRESHOLD,
        "oks_nms": oks_nms,
    }
    found = None
    if detections:
        found = read_detections(detections, coco, source["path"], category["id"], min_box_score)
        settings.update(detections=coco_eval.file_source(detections), min_box_score=min_box_score)
    return CocoSetup(coco, source, category, joint_set, found, settings)


def _detection_problem(entry) -> str | None:
    """What is wrong with one detection entry's form, or None."""
    if not isinstance(entry, dict):
        return f"is a {type(entry).__name__}, not an object"
    for key in ("image_id", "category_id", "bbox", "score"):
        if key not in entry:
            return f"has no {key!r} (a detection has image_id, category_id, bbox, score)"
    if not all(isinstance(entry[k], int) for k in ("image_id", "category_id")):
        return "image_id and category_id must be integers"
    box = entry["bbox"]
    numbers = isinstance(box, list) and len(box) == 4 and all(coco_eval.is_number(v) for v in box)
    if not (numbers and all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0):
        return f"bbox {box!r} is not [x, y, w, h] finite numbers with w, h > 0"
    if not (coco_eval.is_number(entry["score"]) and math.isfinite(entry["score"])):
        return f"score {entry['score']!r} is not a finite number"
    return None


def read_detections(
    path: str, coco: COCO, gt_path: str, category_id: int, min_box_score: float
) -> dict:
    """A COCO detection results file: the scored category's boxes scoring >= `min_box_score`.

    Returns:
        {"image_id" int64 [D], "box" float64 [D, 4] (x1, y1, x2, y2) in our pixel convention
        (`coco_box`), "score" float64 [D], "counts": {"read", "other_category", "below_score"}}.

    Raises:
        ValueError: one line naming `path` and the first bad entry: not a non-empty list, an
            entry not {image_id, category_id, bbox [x, y, w, h], score}, an image not in the
            ground truth; or no detection left to crop.
    """
    entries = coco_eval.read_json_any(path, "COCO detection results file")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: COCO detection results are a non-empty JSON list")
    kept, other, low = [], 0, 0
    for i, entry in enumerate(entries):
        problem = _detection_problem(entry)
        if problem is None and entry["image_id"] not in coco.imgs:
            problem = f"image_id {entry['image_id']} is not an image of {gt_path}"
        if problem:
            raise ValueError(f"{path}: entry {i}: {problem}")
        if entry["category_id"] != category_id:
            other += 1
        elif entry["score"] < min_box_score:
            low += 1
        else:
            kept.append(entry)
    if not kept:
        raise ValueError(
            f"{path}: no detection of category {category_id} with score >= {min_box_score} "
            f"({other} of another category, {low} below the score)"
        )
    return {
        "image_id": np.array([e["image_id"] for e in kept], np.int64),
        "box": np.array([coco_box(e["bbox"]) for e in kept], np.float64),
        "score": np.array([float(e["score"]) for e in kept], np.float64),
        "counts": {"read": len(entries), "other_category": other, "below_score": low},
    }


def _record_images(split: Split, wanted: set[int]):
    """(image id, encoded bytes) of the first record of each image id in `wanted`, in record
    order: one image per id (the records of one image share source/index and its bytes)."""
    spec = {
        features.SOURCE_INDEX: tf.io.FixedLenFeature([], tf.int64),
        features.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    }
    records = tf.data.TFRecordDataset(split.files).map(
        lambda s: tf.io.parse_single_example(s, spec), num_parallel_calls=tf.data.AUTOTUNE
    )
    seen = set()
    for record in records.as_numpy_iterator():
        index = int(record[features.SOURCE_INDEX])
        if index in wanted and index not in seen:
            seen.add(index)
            yield index, record[features.IMAGE_ENCODED]


def _crop_boxes(encoded, boxes, rows, input_size: int):
    """One decoded image's crops of `boxes` [M, 4] by the box rule: (crops [M, S, S, 3],
    matrices [M, 3, 3] original → crop, rows [M], scales [M])."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    center, scale = box_crop.box_to_center_scale(boxes)
    matrices = geometry.crop_matrix(center, scale, input_size)
    crops = tf.map_fn(
        lambda m: geometry.crop_image(image, m, input_size),
        matrices,
        fn_output_signature=tf.TensorSpec([input_size, input_size, 3], tf.float32),
    )
    return crops, matrices, rows, scale


def predict_detections(model, split: Split, detections: dict, batch_size: int) -> dict:
    """Runs `model` on one crop per detection, over the records' images.

    Args:
        model: a `serving.predictor.Predictor`.
        split: the records (their images, by source/index = the COCO image id).
        detections: `read_detections`' arrays.
        batch_size: crops per model call.

    Returns:
        {"rows" [M] (the detections predicted, the others are on images without records),
        "preds" [M, K, 2] original pixels, "scores" [M, K], "scale" [M] crop scales}, numpy.

    Raises:
        ValueError: no detection is on an image of the records.
    """
    by_image = {}
    for row, image_id in enumerate(detections["image_id"]):
        by_image.setdefault(int(image_id), []).append(row)

    def generate():
        for image_id, encoded in _record_images(split, set(by_image)):
            rows = np.asarray(by_image[image_id], np.int64)
            yield encoded, detections["box"][rows].astype(np.float32), rows

    signature = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([None, 4], tf.float32),
        tf.TensorSpec([None], tf.int64),
    )
    size = model.info.input_size
    batches = (
        tf.data.Dataset.from_generator(generate, output_signature=signature)
        .map(
            tf.autograph.experimental.do_not_convert(lambda e, b, r: _crop_boxes(e, b, r, size)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .unbatch()
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    step = inference.predict_step(model.heatmaps, model.info.codec())
    parts = {"rows": [], "preds": [], "scores": [], "scale": []}
    for crops, matrices, rows, scale in batches:
        # No targets for a detection's crop: the step's MSE (third output) is not used.
        preds, scores, _ = step(crops, matrices, tf.zeros([1, 1, 1, 1]), tf.ones([1, 1], tf.bool))
        for key, value in zip(parts, (rows, preds, scores, scale), strict=True):
            parts[key].append(value.numpy())
    if not parts["rows"]:
        raise ValueError("no detection is on an image of the records (source/index = image_id)")
    return {k: np.concatenate(v) for k, v in parts.items()}


def _people(setup: CocoSetup, model, split: Split, records: dict, batch_size: int) -> dict:
    """The poses to post-process: the records' (ground-truth boxes, box score 1) or the
    detections'. Returns {"image_id", "preds", "scores", "box_score", "scale"}, numpy."""
    if setup.detections is None:
        people = {k: records[k] for k in ("preds", "scores", "scale")}
        return {**people, "image_id": records["index"], "box_score": np.ones(len(records["index"]))}
    found = predict_detections(model, split, setup.detections, batch_size)
    rows = found["rows"]
    counts = setup.detections["counts"]
    print(
        f"Detections: {counts['read']} read, {len(rows)} cropped; not cropped: "
        f"{counts['other_category']} of another category, {counts['below_score']} below "
        f"--min_box_score={setup.settings['min_box_score']:g}, "
        f"{len(setup.detections['image_id']) - len(rows)} on images without records"
    )
    people = {k: found[k] for k in ("preds", "scores", "scale")}
    return {
        **people,
        "image_id": setup.detections["image_id"][rows],
        "box_score": setup.detections["score"][rows],
    }


def evaluate(
    setup: CocoSetup,
    model,
    split: Split,
    records: dict,
    *,
    batch_size: int,
    name: str,
    output_dir: str | None,
) -> dict:
    """COCO keypoint AP of `model` (see the module doc); prints and (with `output_dir`) writes
    NAME.keypoints.json (the results scored) and NAME.coco_ap.json (figures and settings).

    Args:
        setup: `prepare`'s. model: the loaded `Predictor`. split: the records.
        records: `inference.predict_dataset`'s result over the records (ground-truth boxes).

    Returns:
        `coco_eval.score_results`' dict, plus "category", "settings", "ground_truth", "people".
    """
    people = _people(setup, model, split, records, batch_size)
    areas = (features.PIXELS_PER_SCALE * people["scale"].astype(np.float64)) ** 2
    sigmas = setup.joint_set.oks_sigmas
    kept, scores = coco_eval.rescore_and_suppress(
        people["image_id"], people["preds"], people["scores"], people["box_score"], areas,
        sigmas, oks_threshold=setup.settings["oks_nms"],
    )  # fmt: skip
    category_id = setup.category["id"]
    entries = coco_eval.results_entries(
        people["image_id"][kept], category_id, people["preds"][kept], scores[kept],
        people["scores"][kept],
    )  # fmt: skip
    if len(entries) < len(kept):
        print(f"warning: {len(kept) - len(entries)} people with non-finite predictions left out")
    where = files.join(output_dir, f"{name}.keypoints.json") if output_dir else name
    gt_path = setup.ground_truth["path"]
    checked = coco_eval.check_results(
        entries, where, setup.coco, gt_path, category_id, setup.joint_set.num_joints
    )
    if output_dir:
        print(f"Wrote {coco_eval.write_results(where, entries)}")
    scored = coco_eval.score_results(setup.coco, checked, category_id, sigmas)
    title = f"{name}, {setup.settings['boxes']} boxes, {len(entries)} results against {gt_path}"
    coco_eval.print_scores(scored, title)
    scored.update(
        category={"id": category_id, "name": setup.category.get("name")},
        settings=setup.settings,
        ground_truth=setup.ground_truth,
        people={"predicted": len(people["image_id"]), "after_oks_nms": len(kept)},
    )
    if output_dir:
        written = files.write_json(files.join(output_dir, f"{name}.coco_ap.json"), scored)
        print(f"Wrote {written}")
    return scored
