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
        results, gt_file, joint_set=coco_eval.read_joint_set(joints)
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
