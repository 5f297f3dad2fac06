"""COCO keypoint AP (OKS) through pycocotools: results files, rescoring, OKS-NMS and scoring.

The matching of predictions to people and the AP/AR figures are pycocotools' own
(`COCOeval(gt, dt, "keypoints")`), the implementation every published COCO number comes from;
nothing here re-implements them. This module prepares what pycocotools is given and checks it
first, so that a bad file is one line naming the file and the entry, not an assert.

Coordinates: COCO keypoints are pixel indices (Detectron2's reading of the format), which is
our convention (0-based, pixel (0, 0)'s centre at (0.0, 0.0), (x, y)); results are written with
our coordinates unchanged, so ground truth converted to records and written back as results
scores AP 1.0.

Results format (COCO's): a JSON list of {"image_id": int, "category_id": int, "keypoints":
[x1, y1, v1, ..., xK, yK, vK], "score": float}; v is the joint's score (pycocotools reads only
x and y of a result).

Top-down post-processing, as HRNet (`lib/dataset/coco.py` evaluate, `lib/nms/nms.py`) and mmpose
(`CocoMetric`, score_mode "bbox_keypoint", nms_mode "oks_nms") do:
  * rescoring: person score = box score × mean of the joint scores above 0.2 (HRNet's
    `in_vis_thre`, mmpose's `keypoint_score_thr`), 0 when no joint score is above it;
  * OKS-NMS per image at OKS 0.9 (HRNet's `oks_thre`, mmpose's `nms_thr`): greedy by score, a
    pose is dropped when its OKS with a kept one exceeds the threshold; the OKS between two
    predictions uses the mean of their two areas (the crop's area, 200 × scale squared) and the
    joint set's sigmas (mmpose's; HRNet uses COCO's 17 always). Neither reference passes a
    visibility threshold to the NMS; `oks_nms(vis_threshold=...)` offers mmpose's reading of it.

Pure numpy + pycocotools: no TensorFlow (an import-linter contract keeps it so).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import flags
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from stacked_hourglass.config import read_joint_set_file
from stacked_hourglass.joints import (
    JointSet,
    canonical_name,
    from_coco_category,
    get_joint_set,
)
from stacked_hourglass.utils import files
from stacked_hourglass.utils.digest import sha256_file

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
KEYPOINT_SCORE_THRESHOLD = 0.2  # HRNet TEST.IN_VIS_THRE, mmpose keypoint_score_thr
OKS_NMS_THRESHOLD = 0.9  # HRNet TEST.OKS_THRE, mmpose nms_thr
MIN_BOX_SCORE = 0.0  # HRNet TEST.IMAGE_THRE (0.0 in its COCO configs); mmpose keeps all boxes
RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")


def define_flags(fv: flags.FlagValues) -> None:
    """evaluate's COCO flags: --joints (scoring a results file), --detections, --min_box_score
    and --oks_nms (scoring a model on COCO-format records)."""
    flags.DEFINE_string(
        "joints", None,
        "--predictions=RESULTS.json: joint-set JSON file (with oks_sigmas) of the scored "
        "category; default: the ground truth's category (COCO's 17 have pycocotools' sigmas).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string(
        "detections", None,
        "COCO detection results (image_id, category_id, bbox [x, y, w, h], score): evaluate a "
        "model on COCO-format records with these person boxes instead of the ground-truth ones.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_float(
        "min_box_score", MIN_BOX_SCORE,
        "--detections: boxes scoring below this are not cropped (HRNet's IMAGE_THRE, 0.0).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_float(
        "oks_nms", OKS_NMS_THRESHOLD,
        "COCO model evaluation: OKS-NMS threshold per image (HRNet/mmpose 0.9; 1 keeps all).",
        lower_bound=0.0, upper_bound=1.0, flag_values=fv,
    )  # fmt: skip


def read_json_any(path: str, what: str):
    """A JSON file's value (any type); one line naming the file when it is missing or invalid.

    Raises:
        FileNotFoundError, ValueError: see above.
    """
    if not files.exists(path):
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        with files.open_file(path, "r") as f:
            return json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid {what} ({e})") from None


_GT_ANNOTATION_KEYS = ("id", "image_id", "category_id")
_GT_KEYPOINT_KEYS = ("keypoints", "num_keypoints", "area", "bbox", "iscrowd")


def load_ground_truth(path: str) -> COCO:
    """A COCO annotation file as pycocotools' `COCO` (its index-building output captured).

    Raises:
        FileNotFoundError / ValueError: one line naming the file (and the annotation) when it is
            not a COCO keypoint annotation file: no images/annotations/categories lists, an
            image without "id", a keypoint annotation without the fields COCOeval reads.
    """
    payload = read_json_any(path, "COCO annotation file")
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: a COCO annotation file is a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(payload.get(key), list):
            raise ValueError(f"{path}: no {key!r} list (not a COCO annotation file)")
    for i, image in enumerate(payload["images"]):
        if not isinstance(image, dict) or "id" not in image:
            raise ValueError(f"{path}: images[{i}] has no 'id'")
    for i, ann in enumerate(payload["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotations[{i}] is not an object")
        keys = _GT_ANNOTATION_KEYS + (_GT_KEYPOINT_KEYS if "keypoints" in ann else ())
        missing = [k for k in keys if k not in ann]
        if missing:
            raise ValueError(f"{path}: annotations[{i}] has no {missing[0]!r}")
    coco = COCO()
    coco.dataset = payload
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index...": nothing to show
        coco.createIndex()
    return coco


def keypoint_category(
    coco: COCO, path: str, joint_set: JointSet | None = None, category_ids=()
) -> tuple[dict, JointSet]:
    """The ground truth's category to score, and its joint set.

    Args:
        coco, path: the ground truth and its file (named in the messages).
        joint_set: the joints scored (the records', or --joints); the category is the one whose
            keypoint names are these joints (side spellings equal: "r_knee" = "right_knee").
            None: the category with keypoints, or the one `category_ids` name; its joint set
            from the category (`joints.from_coco_category`).
        category_ids: the results' category ids (narrow the choice when `joint_set` is None).

    Raises:
        ValueError: one line: no such category, several, or a joint set without OKS sigmas.
    """
    keyed = [c for c in coco.dataset["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if joint_set is not None:
        wanted = tuple(canonical_name(n) for n in joint_set.names)
        found = [c for c in keyed if tuple(canonical_name(n) for n in c["keypoints"]) == wanted]
        what = f"whose keypoints are the joints of {joint_set.name!r} ({', '.join(wanted)})"
    else:
        found = [c for c in keyed if not category_ids or c.get("id") in set(category_ids)]
        what = "with keypoints" + (
            f" among ids {sorted(set(category_ids))}" if category_ids else ""
        )
    if len(found) != 1:
        many = f"{len(found)} categories" if found else "no category"
        hint = "; give --joints=FILE.json to choose" if len(found) > 1 else ""
        raise ValueError(f"{path}: {many} {what}{hint}")
    category = found[0]
    if joint_set is None:
        joint_set, _ = from_coco_category(category, f"{path} category {category.get('id')}")
    if joint_set.oks_sigmas is None:
        raise ValueError(
            f"joint set {joint_set.name!r} has no OKS sigmas, which COCO keypoint AP needs: give "
            "a joint-set file with oks_sigmas (--joints=FILE.json)"
        )
    _check_keypoint_lengths(coco, path, category["id"], joint_set.num_joints)
    return category, joint_set


def _check_keypoint_lengths(coco: COCO, path: str, category_id, num_joints: int) -> None:
    """`ValueError` naming the first annotation of the category whose keypoints are not 3K
    numbers (pycocotools would fail on it with a broadcasting error)."""
    for i, ann in enumerate(coco.dataset["annotations"]):
        if ann["category_id"] != category_id or "keypoints" not in ann:
            continue
        points = ann["keypoints"]
        if not (isinstance(points, list) and len(points) == 3 * num_joints):
            raise ValueError(
                f"{path}: annotations[{i}] 'keypoints' is not {3 * num_joints} numbers "
                f"({num_joints} x, y, v)"
            )
        if not all(is_number(v) for v in points):
            raise ValueError(f"{path}: annotations[{i}] 'keypoints' holds a non-number")


def person_scores(
    box_scores: np.ndarray, joint_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THRESHOLD
) -> np.ndarray:
    """HRNet's / mmpose's rescoring: box score × mean of the joint scores above `threshold`.

    Args:
        box_scores: float [N] (1 for ground-truth boxes).
        joint_scores: float [N, K] (heatmap maxima).
        threshold: joint scores strictly above it count.

    Returns:
        float64 [N]; 0 for a person without any joint score above `threshold`.
    """
    joint_scores = np.asarray(joint_scores, np.float64)
    above = joint_scores > threshold
    count = above.sum(axis=1)
    total = np.where(above, joint_scores, 0.0).sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return np.asarray(box_scores, np.float64) * mean


def oks_to_others(
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float],
    first: int,
    others: np.ndarray,
    joint_scores: np.ndarray | None = None,
    vis_threshold: float | None = None,
) -> np.ndarray:
    """OKS between prediction `first` and predictions `others`, as HRNet's and mmpose's `oks_iou`.

    Per joint exp(-d² / (2 · ((a_first + a_other) / 2) · (2σ)²)), averaged over the joints (with
    `vis_threshold`: over those whose scores are above it in both; none → 0).

    Args:
        keypoints: float [N, K, 2]; areas: float [N]; sigmas: K values.
        first: index into N; others: int [M] indices into N.
        joint_scores: float [N, K], needed with `vis_threshold`.

    Returns:
        float64 [M].
    """
    variances = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    d2 = np.sum((keypoints[others] - keypoints[first]) ** 2, axis=-1)  # [M, K]
    mean_area = (areas[first] + areas[others]) / 2.0 + np.spacing(1)
    similarity = np.exp(-d2 / variances / mean_area[:, None] / 2.0)
    if vis_threshold is None:
        return similarity.mean(axis=1)
    used = (joint_scores[others] > vis_threshold) & (joint_scores[first] > vis_threshold)
    count = used.sum(axis=1)
    return np.where(count > 0, np.where(used, similarity, 0).sum(1) / np.maximum(count, 1), 0.0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float],
    threshold: float = OKS_NMS_THRESHOLD,
    joint_scores: np.ndarray | None = None,
    vis_threshold: float | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of one image's poses (HRNet's `oks_nms`).

    The best-scoring pose is kept, the poses whose OKS with it (`oks_to_others`) exceeds
    `threshold` are dropped, and so on with the best of the rest. Equal scores keep the earlier
    pose first.

    Args:
        keypoints: float [N, K, 2] (x, y); scores: float [N]; areas: float [N] (crop areas);
        sigmas: the joint set's K OKS sigmas; threshold: OKS above it suppresses (1 keeps all);
        joint_scores, vis_threshold: see `oks_to_others`.

    Returns:
        int64 [kept] indices into N, by decreasing score.
    """
    keypoints = np.asarray(keypoints, np.float64)
    areas = np.asarray(areas, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep = []
    while order.size:
        first, order = order[0], order[1:]
        keep.append(first)
        if order.size:
            oks = oks_to_others(keypoints, areas, sigmas, first, order, joint_scores, vis_threshold)
            order = order[oks <= threshold]
    return np.asarray(keep, np.int64)


def rescore_and_suppress(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float],
    *,
    oks_threshold: float = OKS_NMS_THRESHOLD,
    keypoint_threshold: float = KEYPOINT_SCORE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-down post-processing: `person_scores`, then `oks_nms` within each image.

    Args:
        image_ids: int [N]; keypoints: float [N, K, 2]; joint_scores: float [N, K];
        box_scores: float [N]; areas: float [N]; sigmas: K OKS sigmas.

    Returns:
        (kept int64 [M] indices into N in increasing order, scores float64 [N] rescored).
    """
    scores = person_scores(box_scores, joint_scores, keypoint_threshold)
    image_ids = np.asarray(image_ids)
    kept = []
    for image_id in np.unique(image_ids):
        rows = np.flatnonzero(image_ids == image_id)
        keep = oks_nms(keypoints[rows], scores[rows], areas[rows], sigmas, oks_threshold)
        kept.append(rows[keep])
    kept = np.sort(np.concatenate(kept)) if kept else np.zeros([0], np.int64)
    return kept, scores


def results_entries(
    image_ids: np.ndarray,
    category_id: int,
    keypoints: np.ndarray,
    scores: np.ndarray,
    joint_scores: np.ndarray | None = None,
) -> list[dict]:
    """People as COCO keypoint results, coordinates unchanged (see the module doc).

    Args:
        image_ids: int [N]; category_id: the ground truth's category.
        keypoints: float [N, K, 2] (x, y) in our pixel convention.
        scores: float [N] person scores.
        joint_scores: float [N, K], written as each joint's v; None → v = 1.

    Returns:
        [N'] entries {"image_id", "category_id", "keypoints" [3K], "score"}, in input order;
        people with a non-finite coordinate or score are left out (JSON has no NaN).
    """
    keypoints = np.asarray(keypoints, np.float64)
    n, k = keypoints.shape[:2]
    v = np.ones([n, k]) if joint_scores is None else np.asarray(joint_scores, np.float64)
    triples = np.concatenate([keypoints, v[..., None]], axis=-1).reshape(n, 3 * k)
    scores = np.asarray(scores, np.float64)
    finite = np.all(np.isfinite(triples), axis=1) & np.isfinite(scores)
    return [
        {
            "image_id": int(image_ids[i]),
            "category_id": int(category_id),
            "keypoints": [float(x) for x in triples[i]],
            "score": float(scores[i]),
        }
        for i in np.flatnonzero(finite)
    ]


def write_results(path, entries: list[dict]) -> str:
    """Writes COCO results (compact JSON, atomically); returns the path."""
    return files.write_text(path, json.dumps(entries, allow_nan=False, separators=(",", ":")))


def is_number(value) -> bool:
    """A JSON number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _entry_problem(entry, num_joints: int) -> str | None:
    """What is wrong with one results entry's form, or None."""
    if not isinstance(entry, dict):
        return f"is a {type(entry).__name__}, not an object"
    missing = [k for k in RESULT_KEYS if k not in entry]
    if missing:
        return f"has no {missing[0]!r} (a result has {', '.join(RESULT_KEYS)})"
    for key in ("image_id", "category_id"):
        if not isinstance(entry[key], int) or isinstance(entry[key], bool):
            return f"{key} {entry[key]!r} is not an integer"
    points = entry["keypoints"]
    if not isinstance(points, list) or len(points) != 3 * num_joints:
        length = len(points) if isinstance(points, list) else type(points).__name__
        return f"'keypoints' has {length} values, expected {3 * num_joints} ({num_joints} x, y, v)"
    if not all(is_number(x) and math.isfinite(x) for x in points):
        return "'keypoints' holds a value that is not a finite number"
    if not (is_number(entry["score"]) and math.isfinite(entry["score"])):
        return f"score {entry['score']!r} is not a finite number"
    return None


def check_results_list(results, path: str) -> None:
    """`ValueError`, one line naming `path`, when `results` is not a non-empty list."""
    if not isinstance(results, list):
        raise ValueError(
            f"{path}: COCO results are a JSON list of {{{', '.join(RESULT_KEYS)}}} objects, "
            f"not a {type(results).__name__}"
        )
    if not results:
        raise ValueError(f"{path}: no results (an empty list); nothing to score")


def check_results(
    results, path: str, coco: COCO, gt_path: str, category_id: int, num_joints: int
) -> list[dict]:
    """A results list checked against the ground truth; copies holding `RESULT_KEYS` only.

    Raises:
        ValueError: one line naming `path` and the first bad entry's index: not a list, empty,
            an entry that is not {image_id, category_id, keypoints [3K finite], score finite},
            an image or category not in the ground truth, or another category than the scored.
    """
    check_results_list(results, path)
    images, categories = set(coco.imgs), set(coco.cats)
    clean = []
    for i, entry in enumerate(results):
        problem = _entry_problem(entry, num_joints)
        if problem is None and entry["image_id"] not in images:
            problem = f"image_id {entry['image_id']} is not an image of {gt_path}"
        elif problem is None and entry["category_id"] not in categories:
            problem = f"category_id {entry['category_id']} is not a category of {gt_path}"
        elif problem is None and entry["category_id"] != category_id:
            problem = f"category_id {entry['category_id']} is not the scored one ({category_id})"
        if problem:
            raise ValueError(f"{path}: entry {i}: {problem}")
        clean.append({k: entry[k] for k in RESULT_KEYS})
    return clean


def score_results(coco: COCO, results: list[dict], category_id: int, sigmas) -> dict:
    """pycocotools' keypoint evaluation of checked results (`check_results`).

    Returns:
        {"stats": {name: value} for `STAT_NAMES` (-1 where pycocotools has no people in a
        range), "summary": pycocotools' summary lines, "log": all it printed}.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        detections = coco.loadRes([dict(r) for r in results])  # loadRes adds fields in place
        evaluator = COCOeval(coco, detections, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        evaluator.params.catIds = [category_id]
        evaluator.evaluate()
        evaluator.accumulate()
        start = out.tell()
        evaluator.summarize()
        summary = out.getvalue()[start:]
    stats = {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)}
    return {"stats": stats, "summary": summary.rstrip("\n"), "log": out.getvalue()}


def format_stats(stats: dict) -> str:
    """The 10 figures as a two-line table (header, values to 3 decimals)."""
    return "\n".join(
        ["".join(f"{n:>7}" for n in STAT_NAMES), "".join(f"{stats[n]:7.3f}" for n in STAT_NAMES)]
    )


def print_scores(scored: dict, title: str) -> None:
    """Prints pycocotools' summary and the table of `score_results`."""
    print(f"COCO keypoint AP (pycocotools, OKS) of {title}:")
    print(scored["summary"])
    print(format_stats(scored["stats"]))


def file_source(path: str) -> dict:
    """{"path", "sha256"} of a file read (recorded with the figures)."""
    return {"path": str(path), "sha256": sha256_file(path, files.open_file)}


def results_joint_set(joints_file: str | None, dataset: str | None) -> JointSet | None:
    """The joints a results file is scored on: evaluate's --joints (a joint-set file), else the
    built-in set --dataset names, else None (the ground truth's category decides)."""
    if joints_file:
        return read_joint_set_file(joints_file)
    return get_joint_set(dataset) if dataset else None


def run_results_evaluation(
    predictions: str,
    ground_truth: str,
    *,
    joint_set: JointSet | None = None,
    output_dir: str | None = None,
) -> dict:
    """Scores a COCO keypoint results file against a COCO annotation file.

    Args:
        predictions: the results JSON (anyone's, in COCO's results format).
        ground_truth: the COCO annotation file.
        joint_set: the scored joints (with OKS sigmas); None: the ground truth's category with
            keypoints (the results' category).
        output_dir: when given, NAME.coco_ap.json (stats, pycocotools' summary, sources) is
            written there, NAME being the results file's stem.

    Returns:
        `score_results`' dict, plus "category" and "sources".

    Raises:
        ValueError / FileNotFoundError: one line naming the file (and entry) at fault.
    """
    coco = load_ground_truth(ground_truth)
    results = read_json_any(predictions, "COCO results file")
    check_results_list(results, predictions)
    ids = [r.get("category_id") for r in results if isinstance(r, dict)]
    ids = {i for i in ids if isinstance(i, int)}
    category, joint_set = keypoint_category(coco, ground_truth, joint_set, ids)
    checked = check_results(
        results, predictions, coco, ground_truth, category["id"], joint_set.num_joints
    )
    scored = score_results(coco, checked, category["id"], joint_set.oks_sigmas)
    print_scores(scored, f"{predictions} ({len(checked)} results, category {category['id']})")
    scored["category"] = {"id": category["id"], "name": category.get("name")}
    scored["sources"] = {
        "predictions": file_source(predictions),
        "ground_truth": file_source(ground_truth),
        "joint_set": joint_set.to_dict(),
    }
    if output_dir:
        name = Path(predictions).stem
        written = files.write_json(files.join(output_dir, f"{name}.coco_ap.json"), scored)
        print(f"Wrote {written}")
    return scored
