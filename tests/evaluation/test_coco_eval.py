"""COCO keypoint AP (`evaluation.coco_eval`): results round trip, rescoring, OKS-NMS, errors.

Ground truth is hand-written here (tiny COCO annotation files); scoring is pycocotools'. OKS and
rescoring figures are computed by hand in the comments.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from stacked_hourglass import evaluate
from stacked_hourglass.config import read_joint_set_file
from stacked_hourglass.evaluation import coco_eval
from stacked_hourglass.joints import COCO as COCO_JOINTS

# A 3-joint "widget" of one's own, with sigmas (the joint-set file format).
WIDGET = {
    "name": "widget",
    "joints": ["tip", "left_handle", "right_handle"],
    "flip_pairs": [["left_handle", "right_handle"]],
    "normalizer": "box",
    "oks_sigmas": [0.1, 0.1, 0.1],
}


def _person(ann_id, image_id, points, *, area=5000.0, category_id=1, iscrowd=0):
    """A COCO annotation of (x, y, v) triples; unlabelled joints (v = 0) at (0, 0)."""
    flat = [float(c) for p in points for c in p]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "keypoints": flat,
        "num_keypoints": sum(1 for p in points if p[2] > 0),
        "area": area,
        "bbox": [0.0, 0.0, 20.0, 20.0],
        "iscrowd": iscrowd,
    }


def _coco_points(offset, labelled=range(17)):
    return [(offset + 3 * j, offset + 2 * j, 2) if j in labelled else (0, 0, 0) for j in range(17)]


def _ground_truth(area=5000.0) -> dict:
    """Two images: three people of COCO's category (one with unlabelled joints), a crowd, a
    person without keypoints, and a widget (category 2) in image 2. Areas: COCO's medium range
    (32² to 96²) for `area`, large for the third person."""
    annotations = [
        _person(1, 10, _coco_points(5.0), area=area),
        _person(2, 10, _coco_points(60.0, labelled=range(5, 17)), area=area),
        _person(3, 11, _coco_points(30.5), area=max(area, 2e4)),
        _person(4, 11, _coco_points(80.0), iscrowd=1),
        _person(5, 11, [(0, 0, 0)] * 17),
        _person(6, 11, [(10, 12, 2), (4, 30, 1), (16, 30, 2)], category_id=2, area=100.0),
    ]
    return {
        "images": [
            {"id": 10, "width": 120, "height": 100},
            {"id": 11, "width": 120, "height": 100},
        ],
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(COCO_JOINTS.names)},
            {"id": 2, "name": "widget", "keypoints": WIDGET["joints"]},
        ],
    }


def _write(path, payload):
    path.write_text(json.dumps(payload))
    return str(path)


def _gt_as_results(gt, category_id=1, shift=0.0):
    """The ground truth's scored people (not crowd, some keypoints) as results, v = 1."""
    people = [
        a for a in gt["annotations"]
        if a["category_id"] == category_id and not a["iscrowd"] and a["num_keypoints"]
    ]  # fmt: skip
    k = len(people[0]["keypoints"]) // 3
    points = np.array([a["keypoints"] for a in people]).reshape(len(people), k, 3)[..., :2]
    return coco_eval.results_entries(
        np.array([a["image_id"] for a in people]), category_id, points + shift, np.ones(len(people))
    )


@pytest.fixture
def gt_file(tmp_path):
    return _write(tmp_path / "gt.json", _ground_truth())


def test_ground_truth_written_back_scores_ap_one(tmp_path, gt_file, capsys):
    """Coordinates go out unchanged: ground truth as results is AP = AR = 1.0, all ten figures;
    pycocotools' own summary is printed."""
    results = _write(tmp_path / "gt.keypoints.json", _gt_as_results(_ground_truth()))
    scored = coco_eval.run_results_evaluation(results, gt_file, output_dir=str(tmp_path))
    stats = scored["stats"]
    # pycocotools sums float64 precisions: 1.0 to a few ulps.
    assert stats == pytest.approx(dict.fromkeys(coco_eval.STAT_NAMES, 1.0), abs=1e-12)
    out = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets= 20 ] = " in out
    assert coco_eval.format_stats(stats) in out
    written = json.loads((tmp_path / "gt.keypoints.coco_ap.json").read_text())
    assert written["stats"] == stats and written["category"] == {"id": 1, "name": "person"}


def test_half_pixel_offset_does_not_score_one(tmp_path):
    """The round trip is exact, not merely tolerant: on small people (area 100) the half-pixel
    offset of the other convention (COCO as continuous coordinates) costs AP. Per joint, σ =
    0.025 (eyes): exp(-0.5² / (2 · 100 · (2σ)²)) = exp(-0.5) ≈ 0.61 < 0.95."""
    gt = _ground_truth(area=100.0)
    gt_path = _write(tmp_path / "gt.json", gt)
    exact = _write(tmp_path / "exact.json", _gt_as_results(gt))
    shifted = _write(tmp_path / "shifted.json", _gt_as_results(gt, shift=0.5))
    assert coco_eval.run_results_evaluation(exact, gt_path)["stats"]["AP"] == pytest.approx(1.0)
    assert coco_eval.run_results_evaluation(shifted, gt_path)["stats"]["AP"] < 0.9


def test_results_entries_format():
    """COCO's results format: v = the joint score (1 without scores); non-finite people left out."""
    points = np.array([[[1.0, 2.0], [3.0, 4.0]], [[np.nan, 0.0], [0.0, 0.0]]])
    entries = coco_eval.results_entries(
        np.array([7, 8]), 3, points, np.array([0.5, 0.6]), np.array([[0.9, 0.1], [1.0, 1.0]])
    )
    assert entries == [
        {"image_id": 7, "category_id": 3, "keypoints": [1.0, 2.0, 0.9, 3.0, 4.0, 0.1], "score": 0.5}
    ]
    assert coco_eval.results_entries(np.array([7]), 1, points[:1], [1.0])[0]["keypoints"][2] == 1.0


def test_person_scores_hand_computed():
    """box × mean of the joint scores strictly above 0.2; none above → 0."""
    joint_scores = np.array([[0.1, 0.3, 0.5], [0.2, 0.1, 0.0], [0.9, 0.9, 0.6]])
    scores = coco_eval.person_scores(np.array([0.5, 1.0, 1.0]), joint_scores)
    np.testing.assert_allclose(scores, [0.5 * 0.4, 0.0, 0.8], rtol=1e-12)


# Three joints, σ = 0.1: (2σ)² = 0.04; equal areas 100, so OKS per joint = exp(-d² / 8) for a
# shift d of the whole pose.
SIGMAS = (0.1, 0.1, 0.1)
POSE = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])


def test_oks_hand_computed():
    keypoints = np.stack([POSE, POSE + [0.5, 0.0], POSE + [2.0, 0.0]])
    areas = np.array([100.0, 100.0, 100.0])
    oks = coco_eval.oks_to_others(keypoints, areas, SIGMAS, 0, np.array([1, 2]))
    np.testing.assert_allclose(oks, [math.exp(-0.25 / 8), math.exp(-4 / 8)], rtol=1e-12)
    # Areas 100 and 300: their mean, 200, is the scale: exp(-0.25 / 0.04 / 200 / 2).
    oks = coco_eval.oks_to_others(keypoints, np.array([100.0, 300.0, 1.0]), SIGMAS, 0, [1])
    np.testing.assert_allclose(oks, [math.exp(-0.25 / 16)], rtol=1e-12)
    # One joint moved by 4 px: exp(-16 / 8) for it, 1 for the two others.
    moved = np.stack([POSE, POSE + [[4.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    oks = coco_eval.oks_to_others(moved, areas[:2], SIGMAS, 0, np.array([1]))
    np.testing.assert_allclose(oks, [(math.exp(-2.0) + 2) / 3], rtol=1e-12)
    # With a visibility threshold, only joints scored above it in both poses count.
    scores = np.array([[0.9, 0.9, 0.9], [0.1, 0.9, 0.9]])
    oks = coco_eval.oks_to_others(moved, areas[:2], SIGMAS, 0, np.array([1]), scores, 0.2)
    np.testing.assert_allclose(oks, [1.0], rtol=1e-12)
    none = coco_eval.oks_to_others(moved, areas[:2], SIGMAS, 0, [1], np.zeros([2, 3]), 0.2)
    np.testing.assert_array_equal(none, [0.0])


def test_oks_nms_hand_computed():
    """C (0.95) is kept; A (0.9): OKS with C exp(-4/8) ≈ 0.61, kept; B (0.8): OKS with C
    exp(-2.25/8) ≈ 0.75, with A exp(-0.25/8) ≈ 0.97 > 0.9, dropped."""
    keypoints = np.stack([POSE, POSE + [0.5, 0.0], POSE + [2.0, 0.0]])
    scores = np.array([0.9, 0.8, 0.95])
    areas = np.full(3, 100.0)
    np.testing.assert_array_equal(coco_eval.oks_nms(keypoints, scores, areas, SIGMAS), [2, 0])
    # At 0.97 B's OKS with A (0.9692) is under the threshold: all kept, by score.
    np.testing.assert_array_equal(
        coco_eval.oks_nms(keypoints, scores, areas, SIGMAS, threshold=0.97), [2, 0, 1]
    )
    # At 0.5 A is dropped by C too; equal scores keep the earlier pose.
    np.testing.assert_array_equal(
        coco_eval.oks_nms(keypoints, scores, areas, SIGMAS, threshold=0.5), [2]
    )
    same = np.stack([POSE, POSE])
    np.testing.assert_array_equal(coco_eval.oks_nms(same, [0.5, 0.5], areas[:2], SIGMAS), [0])
    assert coco_eval.oks_nms(np.zeros([0, 3, 2]), [], [], SIGMAS).size == 0


def test_rescore_and_suppress_per_image():
    """A duplicate is suppressed within its image only; the kept rows keep the input order."""
    keypoints = np.stack([POSE, POSE + [0.5, 0.0], POSE + [0.5, 0.0], POSE])
    joint_scores = np.array([[0.9, 0.9, 0.1], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [1, 1, 1.0]])
    kept, scores = coco_eval.rescore_and_suppress(
        np.array([1, 1, 2, 3]), keypoints, joint_scores, np.array([1.0, 1.0, 1.0, 0.5]),
        np.full(4, 100.0), SIGMAS,
    )  # fmt: skip
    np.testing.assert_allclose(scores, [0.9, 0.5, 0.5, 0.5], rtol=1e-12)
    np.testing.assert_array_equal(kept, [0, 2, 3])


def test_custom_category_with_joint_set_file(tmp_path, gt_file):
    """A category of one's own (multi-category file): scored with the joint-set file's sigmas;
    without them, one line asking for a joint-set file with oks_sigmas."""
    widget = [{"image_id": 11, "category_id": 2, "keypoints": [10, 12, 1, 4, 30, 1, 16, 30, 1],
               "score": 0.7}]  # fmt: skip
    results = _write(tmp_path / "widget.json", widget)
    joints = _write(tmp_path / "widget_joints.json", WIDGET)
    assert evaluate.main([f"--predictions={results}", f"--ground_truth={gt_file}",
                          f"--joints={joints}"]) == 0  # fmt: skip
    scored = coco_eval.run_results_evaluation(
        results, gt_file, joint_set=read_joint_set_file(joints)
    )
    assert scored["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert scored["category"]["id"] == 2
    with pytest.raises(ValueError, match="has no OKS sigmas.*oks_sigmas"):
        coco_eval.run_results_evaluation(results, gt_file)


def _one_line_error(tmp_path, gt_file, results, match, **kwargs):
    path = _write(tmp_path / "results.json", results) if not isinstance(results, str) else results
    with pytest.raises(ValueError, match=match) as raised:
        coco_eval.run_results_evaluation(path, gt_file, **kwargs)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def test_results_errors_are_one_line_naming_the_entry(tmp_path, gt_file):
    good = _gt_as_results(_ground_truth())
    cases = [
        ({"image_id": 1}, r"results.json: COCO results are a JSON list"),
        ([], r"results.json: no results \(an empty list\)"),
        ([*good, {"image_id": 10, "category_id": 1, "keypoints": [0] * 51}],
         r"results.json: entry 3: has no 'score'"),
        ([good[0], {**good[1], "keypoints": [0.0] * 48}],
         r"entry 1: 'keypoints' has 48 values, expected 51"),
        ([good[0], {**good[1], "keypoints": [float("nan")] * 51}],
         r"entry 1: 'keypoints' holds a value that is not a finite number"),
        ([{**good[0], "score": float("inf")}], r"entry 0: score inf is not a finite number"),
        ([good[0], {**good[1], "image_id": 99}], r"entry 1: image_id 99 is not an image of .*gt"),
        ([good[0], {**good[1], "image_id": "10"}], r"entry 1: image_id '10' is not an integer"),
        ([good[0], {**good[1], "category_id": 7}], r"entry 1: category_id 7 is not a category"),
        ([good[0], [1, 2]], r"entry 1: is a list, not an object"),
    ]  # fmt: skip
    for results, match in cases:
        _one_line_error(tmp_path, gt_file, results, match, joint_set=COCO_JOINTS)
    # Without a joint set, the results' category decides; a mix of two is a choice to make.
    mixed = [good[0], {**good[1], "category_id": 2}]
    _one_line_error(tmp_path, gt_file, mixed, r"2 categories with keypoints .*--joints")
    # With COCO's joints, results of the widget category are not the scored category.
    _one_line_error(tmp_path, gt_file, mixed, r"entry 1: category_id 2 is not the scored one \(1\)",
                    joint_set=COCO_JOINTS)  # fmt: skip
    (tmp_path / "bad.json").write_text("[{")
    _one_line_error(tmp_path, gt_file, str(tmp_path / "bad.json"), r"bad.json: not a valid COCO")


def test_ground_truth_errors_are_one_line(tmp_path):
    results = _write(tmp_path / "r.json", _gt_as_results(_ground_truth()))
    gt = _ground_truth()
    del gt["annotations"][2]["num_keypoints"]
    _one_line_error(tmp_path, _write(tmp_path / "gt.json", gt), results,
                    r"gt.json: annotations\[2\] has no 'num_keypoints'")  # fmt: skip
    gt = _ground_truth()
    gt["annotations"][1]["keypoints"] = gt["annotations"][1]["keypoints"][:-3]
    _one_line_error(tmp_path, _write(tmp_path / "gt.json", gt), results,
                    r"gt.json: annotations\[1\] 'keypoints' is not 51 numbers")  # fmt: skip
    _one_line_error(tmp_path, _write(tmp_path / "gt.json", {"images": []}), results,
                    r"gt.json: no 'annotations' list")  # fmt: skip
    with pytest.raises(FileNotFoundError, match="missing.json: COCO annotation file not found"):
        coco_eval.run_results_evaluation(results, str(tmp_path / "missing.json"))
    # No category whose keypoints are the joint set's.
    _one_line_error(tmp_path, _write(tmp_path / "gt.json", _ground_truth()), results,
                    r"no category whose keypoints are the joints of 'mpii'",
                    joint_set=__import__("stacked_hourglass.joints").joints.MPII)  # fmt: skip


def test_command_prints_one_line_for_bad_results(tmp_path, gt_file, capsys):
    results = _write(tmp_path / "r.json", [])
    code = evaluate.main([f"--predictions={results}", f"--ground_truth={gt_file}"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "no results" in err


def test_results_scoring_runs_without_tensorflow(tmp_path, gt_file):
    """`evaluate --predictions=RESULTS.json` imports neither TensorFlow nor Keras."""
    results = _write(tmp_path / "r.json", _gt_as_results(_ground_truth()))
    code = (
        "import sys\n"
        "from stacked_hourglass import evaluate\n"
        f"assert evaluate.main(['--predictions={results}', '--ground_truth={gt_file}']) == 0\n"
        "loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AP50" in result.stdout


# --- a model on COCO-format records: ground-truth boxes and detections ------------------------

# Image 102's boxes shrunk about their centres, so that no two people of the two images have
# crops alike (the oracle below tells them apart by the crop alone).
_SHRINK_102 = 0.75
_MATCH_PX = 8.0  # a crop within this (centre + side, original pixels) of a person's is theirs


def _shrunk(bbox, factor):
    x, y, w, h = bbox
    return [x + (1 - factor) * w / 2, y + (1 - factor) * h / 2, factor * w, factor * h]


@pytest.fixture(scope="module")
def coco_records(tmp_path_factory, write_coco_dataset):
    """Two images of two synthetic people (COCO's 17 joints), converted; and their people
    (crop centre, crop side, keypoints, labelled) by the box rule."""
    from stacked_hourglass import convert
    from stacked_hourglass.data import geometry
    from stacked_hourglass.data.sources.coco import coco_box

    root = tmp_path_factory.mktemp("coco_eval")
    annotations, images = write_coco_dataset(root / "src", num_images=2, people_per_image=2)
    payload = json.loads(annotations.read_text())
    for ann in payload["annotations"]:
        if ann["image_id"] == 102:
            ann["bbox"] = _shrunk(ann["bbox"], _SHRINK_102)
    annotations.write_text(json.dumps(payload))
    assert convert.main([
        "--dataset=coco", f"--annotations={annotations}", f"--images={images}",
        f"--output_dir={root / 'records'}", "--split=valid",
    ]) == 0  # fmt: skip
    people = []
    for ann in payload["annotations"]:
        if ann["iscrowd"] or not ann["num_keypoints"]:
            continue
        centre, scale = geometry.box_to_center_scale(np.array(coco_box(ann["bbox"])))
        points = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        people.append((ann["image_id"], centre, 200 * scale, points[:, :2], points[:, 2] > 0))
    gaps = [
        np.hypot(*(a[1] - b[1])) + abs(a[2] - b[2]) for a in people for b in people if a is not b
    ]
    assert min(gaps) > 3 * _MATCH_PX, "the people's crops must be told apart"
    return {"annotations": str(annotations), "data": str(root / "records" / "valid-*"),
            "payload": payload, "people": people, "root": root}  # fmt: skip


def _oracle_step(people, matched):
    """`inference.predict_step` of a model that returns the ground truth: a crop within
    `_MATCH_PX` of a person's crop gets their keypoints (score 0.9 where labelled, 0.1 where not);
    any other crop all joints at its centre (score 0.9). The model's heatmaps still run. Each
    crop's distance to the nearest person is appended to `matched`."""
    import tensorflow as tf

    def make(heatmaps, codec):
        size = codec.input_size

        def step(images, matrices, targets, annotated=None):
            heatmaps(images)
            preds, scores = [], []
            for matrix in matrices.numpy().astype(np.float64):
                centre = (np.linalg.inv(matrix) @ [size / 2 - 0.5, size / 2 - 0.5, 1.0])[:2]
                side = size / matrix[0, 0]
                gaps = [np.hypot(*(centre - c)) + abs(side - s) for _, c, s, _, _ in people]
                best = int(np.argmin(gaps))
                matched.append(gaps[best])
                if gaps[best] < _MATCH_PX:
                    preds.append(people[best][3])
                    scores.append(np.where(people[best][4], 0.9, 0.1))
                else:
                    preds.append(np.tile(centre, (17, 1)))
                    scores.append(np.full(17, 0.9))
            n = len(preds)
            return (
                tf.constant(np.array(preds), tf.float32),
                tf.constant(scores, tf.float32),
                tf.zeros([n]),
            )

        return step

    return make


@pytest.fixture(scope="module")
def coco_model(coco_records, make_model_dir):
    path = coco_records["root"] / "run"
    make_model_dir(str(path), num_stacks=1, dataset="coco")
    return str(path)


def _direct_ap(annotations, results_path):
    """pycocotools on the written file, as anyone would run it (COCO's default sigmas)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(annotations)
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def _printed_stats(out):
    lines = out.splitlines()
    row = lines[lines.index("".join(f"{n:>7}" for n in coco_eval.STAT_NAMES)) + 1]
    return [float(v) for v in row.split()]


def test_model_on_coco_records_with_ground_truth_boxes(
    coco_records, coco_model, tmp_path, monkeypatch, capsys
):
    """One result per record, image_id = source/index, box score 1: a model returning the ground
    truth scores AP 1.0, and the AP printed is pycocotools' on the written NAME.keypoints.json."""
    from stacked_hourglass.model import inference

    matched = []
    monkeypatch.setattr(inference, "predict_step", _oracle_step(coco_records["people"], matched))
    out_dir = tmp_path / "out"
    assert evaluate.main([f"--model_dir={coco_model}", f"--data={coco_records['data']}",
                          f"--output_dir={out_dir}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert max(matched) < 0.01 and len(matched) == 4  # every record's crop is its person's box
    results = json.loads((out_dir / "run.keypoints.json").read_text())
    assert sorted(r["image_id"] for r in results) == [101, 101, 102, 102]
    assert {r["category_id"] for r in results} == {1}
    assert [r["score"] for r in results] == pytest.approx([0.9] * 4)  # 1 × mean of the 0.9s
    printed = _printed_stats(out)
    direct = _direct_ap(coco_records["annotations"], out_dir / "run.keypoints.json")
    np.testing.assert_allclose(printed, direct, atol=5e-4)  # printed to 3 decimals
    assert printed[0] == pytest.approx(1.0)
    assert "PCK@0.05" in out or "PCK@" in out  # the per-joint PCK table as well
    figures = json.loads((out_dir / "run.coco_ap.json").read_text())
    assert figures["settings"]["boxes"] == "ground-truth"
    assert figures["ground_truth"]["path"] == coco_records["annotations"]


def _detections(coco_records):
    """The ground-truth boxes (score 0.9), each also shifted by 3 px (0.8: duplicates for
    OKS-NMS), a false positive in a corner (0.99), one under --min_box_score (0.05) and one of
    another category."""
    found = []
    for ann in coco_records["payload"]["annotations"]:
        if ann["iscrowd"] or not ann["num_keypoints"]:
            continue
        x, y, w, h = ann["bbox"]
        found.append({"image_id": ann["image_id"], "category_id": 1, "bbox": [x, y, w, h],
                      "score": 0.9})  # fmt: skip
        found.append({"image_id": ann["image_id"], "category_id": 1,
                      "bbox": [x + 3, y - 3, w, h], "score": 0.8})  # fmt: skip
    # Image 101's corner is its crowd region: a pose there would be ignored, not a false positive.
    found.append({"image_id": 102, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.99})
    found.append({"image_id": 101, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.05})
    found.append({"image_id": 101, "category_id": 2, "bbox": [0, 0, 20, 20], "score": 0.9})
    return found


class _StubModel:
    """A `Predictor` of the model directory's info whose heatmaps are zeros (the oracle step
    decides the keypoints), so that the detections' path runs without loading a model."""

    def __init__(self, info):
        self.info = info

    def heatmaps(self, crops):
        import tensorflow as tf

        size = self.info.codec().heatmap_size
        return tf.zeros([tf.shape(crops)[0], size, size, self.info.joint_set.num_joints])


def test_model_on_coco_records_with_detections(
    coco_records, coco_model, tmp_path, monkeypatch, capsys
):
    """One crop per detection: rescoring (box × mean joint score above 0.2), OKS-NMS removes the
    shifted duplicates, the false positive ranked first costs precision: AP = 4/5 at every
    recall, and the AP printed is pycocotools' on the written file."""
    from stacked_hourglass.data.records.split import Split
    from stacked_hourglass.evaluation import coco_model_eval
    from stacked_hourglass.model import inference
    from stacked_hourglass.serving import predictor

    matched = []
    monkeypatch.setattr(inference, "predict_step", _oracle_step(coco_records["people"], matched))
    detections = _write(tmp_path / "detections.json", _detections(coco_records))
    split = Split.open(coco_records["data"])
    setup = coco_model_eval.prepare(
        split, coco_records["data"], COCO_JOINTS, detections=detections, min_box_score=0.1
    )
    model = _StubModel(predictor.read_info("model_dir", coco_model))
    figures = coco_model_eval.evaluate(
        setup, model, split, {}, batch_size=4, name="run", output_dir=str(tmp_path)
    )
    out = capsys.readouterr().out
    assert ("Detections: 11 read, 9 cropped; not cropped: 1 of another category, 1 below "
            "--min_box_score=0.1, 0 on images without records") in out  # fmt: skip
    # The 4 exact boxes' crops match their people to float32 precision: the converter's box
    # rule (and COCO bbox reading) is the detections'.
    assert len(matched) == 9 and sorted(matched)[3] < 0.01
    results = json.loads((tmp_path / "run.keypoints.json").read_text())
    assert len(results) == 5  # 4 people + the false positive; the 4 shifted copies suppressed
    assert sorted(r["score"] for r in results) == pytest.approx([0.81] * 4 + [0.99 * 0.9])
    printed = _printed_stats(out)
    direct = _direct_ap(coco_records["annotations"], tmp_path / "run.keypoints.json")
    np.testing.assert_allclose(printed, direct, atol=5e-4)
    assert printed[0] == pytest.approx(0.8, abs=1e-3) == figures["stats"]["AP"]
    assert figures["people"] == {"predicted": 9, "after_oks_nms": 5}
    written = json.loads((tmp_path / "run.coco_ap.json").read_text())
    assert written["settings"]["min_box_score"] == 0.1 and written["stats"] == figures["stats"]


def test_evaluate_passes_the_coco_flags(coco_records, coco_model, monkeypatch, capsys):
    """`evaluate --detections --min_box_score --oks_nms --ground_truth` reach the COCO setup,
    which runs before the model is loaded."""
    from stacked_hourglass.evaluation import coco_model_eval

    given = {}

    def capture(split, data, joint_set, **kwargs):
        given.update(kwargs, joint_set=joint_set)
        raise ValueError("stop here")

    monkeypatch.setattr(coco_model_eval, "prepare", capture)
    assert evaluate.main([f"--model_dir={coco_model}", f"--data={coco_records['data']}",
                          "--detections=d.json", "--min_box_score=0.3", "--oks_nms=0.8",
                          "--ground_truth=gt.json"]) == 1  # fmt: skip
    assert "stop here" in capsys.readouterr().err
    assert given == {"ground_truth": "gt.json", "detections": "d.json", "min_box_score": 0.3,
                     "oks_nms": 0.8, "joint_set": COCO_JOINTS}  # fmt: skip


def test_model_on_coco_records_errors(coco_records, coco_model, tmp_path):
    """The manifest's annotation file changed since conversion, detections naming an unknown
    image: one line each, before the model runs."""
    from stacked_hourglass.data.records.split import Split
    from stacked_hourglass.evaluation import coco_model_eval

    split = Split.open(coco_records["data"])
    data, gt = coco_records["data"], coco_records["annotations"]
    changed = tmp_path / "annotations.json"
    changed.write_text(json.dumps({**coco_records["payload"], "info": {}}))
    manifest = next(iter(split.manifests.values()))
    manifest.sources[0] = {**manifest.sources[0], "path": str(changed)}
    with pytest.raises(ValueError, match="annotations.json: sha256 .* is not the .* recorded"):
        coco_model_eval.prepare(split, coco_records["data"], COCO_JOINTS)
    with pytest.raises(FileNotFoundError, match="nowhere.json: COCO annotation file not found"):
        coco_model_eval.prepare(
            split, data, COCO_JOINTS, ground_truth=str(tmp_path / "nowhere.json")
        )
    manifest.sources.clear()
    with pytest.raises(ValueError, match="names no annotation file; give --ground_truth"):
        coco_model_eval.prepare(split, coco_records["data"], COCO_JOINTS)
    bad = _write(tmp_path / "d.json", [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5],
                                        "score": 1.0}])  # fmt: skip
    with pytest.raises(ValueError, match=r"d.json: entry 0: image_id 7 is not an image of"):
        coco_model_eval.prepare(split, data, COCO_JOINTS, ground_truth=gt, detections=bad)
    bad = _write(tmp_path / "d.json", [{"image_id": 101, "category_id": 1, "bbox": [0, 0, 0, 5],
                                        "score": 1.0}])  # fmt: skip
    with pytest.raises(ValueError, match=r"entry 0: bbox \[0, 0, 0, 5\] is not \[x, y, w, h\]"):
        coco_model_eval.prepare(split, data, COCO_JOINTS, ground_truth=gt, detections=bad)


def test_records_of_a_joint_set_without_sigmas(tmp_path, write_coco_dataset, capsys):
    """A set of one's own without OKS sigmas: PCK only, after one note; with --detections (AP
    only) one line asking for a joint-set file with oks_sigmas."""
    from stacked_hourglass import convert
    from stacked_hourglass.data.records.split import Split
    from stacked_hourglass.evaluation import coco_model_eval

    annotations, images = write_coco_dataset(tmp_path / "src", num_images=1, people_per_image=1,
                                             kind="shapes")  # fmt: skip
    assert convert.main(["--dataset=coco", f"--annotations={annotations}", f"--images={images}",
                         f"--output_dir={tmp_path}", "--split=valid"]) == 0  # fmt: skip
    data = str(tmp_path / "valid-*")
    split = Split.open(data)
    assert coco_model_eval.prepare(split, data, split.joints()) is None
    assert "has no OKS sigmas: COCO keypoint AP skipped" in capsys.readouterr().out
    detections = _write(tmp_path / "d.json", [{"image_id": 101, "category_id": 3,
                                                "bbox": [0, 0, 9, 9], "score": 1.0}])  # fmt: skip
    with pytest.raises(ValueError, match="has no OKS sigmas.*oks_sigmas"):
        coco_model_eval.prepare(split, data, split.joints(), detections=detections)


def test_records_written_back_as_results_score_ap_one(coco_records, tmp_path):
    """Ground truth → records (`convert --dataset=coco`) → COCO results: AP 1.0 against the
    annotation file (the converter's keypoints, image ids and joint order are COCO's)."""
    import tensorflow as tf

    from stacked_hourglass.data import features
    from stacked_hourglass.data.records.split import Split

    records = tf.data.TFRecordDataset(Split.open(coco_records["data"]).files).map(
        lambda s: features.parse_example(s, COCO_JOINTS.num_joints)
    )
    index, keypoints = [], []
    for record in records.as_numpy_iterator():
        index.append(record[features.SOURCE_INDEX])
        keypoints.append(record[features.KEYPOINTS])
    entries = coco_eval.results_entries(
        np.array(index), 1, np.array(keypoints), np.ones(len(index))
    )
    results = _write(tmp_path / "records.json", entries)
    stats = coco_eval.run_results_evaluation(results, coco_records["annotations"])["stats"]
    assert len(entries) == 4 and stats["AP"] == pytest.approx(1.0, abs=1e-12)
