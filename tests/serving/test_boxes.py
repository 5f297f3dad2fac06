"""`serving.boxes`: person boxes from --box, COCO detection files and detector SavedModels, and
their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from absl import flags

from stacked_hourglass.serving import boxes

RESULTS = [
    # 397133: two people and a dog, one person under the default score threshold.
    {"image_id": 397133, "bbox": [10.0, 20.0, 30.0, 60.0], "score": 0.9, "category_id": 1},
    {"image_id": 397133, "bbox": [50.5, 5.0, 20.0, 40.0], "score": 0.95, "category_id": 1},
    {"image_id": 397133, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.99, "category_id": 18},
    {"image_id": 397133, "bbox": [1.0, 1.0, 9.0, 9.0], "score": 0.2, "category_id": 1},
    {"file_name": "dir/beach.png", "bbox": [2.0, 3.0, 4.0, 5.0], "score": 0.7, "category_id": 1},
    {"image_id": "frame_7", "bbox": [2.0, 3.0, 4.0, 5.0], "score": 0.6, "category_id": 1},
]


def write(tmp_path, payload, name="detections.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def test_coco_and_detector_boxes_to_pixel_centres():
    # COCO's continuous [x, y, w, h]: pixel (0, 0) covers [0, 1]², its centre 0.5 → our 0.0.
    assert boxes.coco_bbox_to_box([0, 0, 1, 1]) == [-0.5, -0.5, 0.5, 0.5]
    assert boxes.coco_bbox_to_box([10, 20, 30, 60]) == [9.5, 19.5, 39.5, 79.5]
    # The TF OD API's normalised box of the whole 40x30 (W x H) image is our whole-image box.
    whole = boxes.normalized_to_box([[0.0, 0.0, 1.0, 1.0]], height=30, width=40)
    np.testing.assert_array_equal(whole, [[-0.5, -0.5, 39.5, 29.5]])
    half = boxes.normalized_to_box([0.5, 0.25, 1.0, 0.75], height=30, width=40)
    np.testing.assert_array_equal(half, [9.5, 14.5, 29.5, 29.5])


def test_detections_file_by_image_id_file_name_and_stem(tmp_path):
    source = boxes.DetectionsFile(write(tmp_path, RESULTS))
    found = source.boxes("/photos/000000397133.jpg")
    # Persons above 0.5 only, best first; the entries' indices name them.
    np.testing.assert_array_equal(found.boxes, [[50.0, 4.5, 70.0, 44.5], [9.5, 19.5, 39.5, 79.5]])
    np.testing.assert_allclose(found.scores, [0.95, 0.9])
    assert found.origins == ("detections.json entry 1", "detections.json entry 0")
    assert found.image_id == 397133
    assert source.boxes(397133).image_id == 397133  # an int key (a frame index) is an image_id
    beach = source.boxes("elsewhere/beach.png")
    np.testing.assert_array_equal(beach.boxes, [[1.5, 2.5, 5.5, 7.5]])
    assert beach.image_id is None
    assert len(source.boxes("frame_7.jpg")) == 1  # a string image_id is the file's stem
    empty = source.boxes("other.jpg")
    assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,)
    source.check_keys(["other.jpg", "000000397133.jpg"])
    # The thresholds and the category are the caller's.
    low = boxes.DetectionsFile(write(tmp_path, RESULTS), min_score=0.1, max_people=2)
    np.testing.assert_allclose(low.boxes(397133).scores, [0.95, 0.9])
    dogs = boxes.DetectionsFile(write(tmp_path, RESULTS), category=18)
    np.testing.assert_allclose(dogs.boxes(397133).scores, [0.99])


def test_coco_annotations_file_gives_file_names_and_skips_crowds(tmp_path):
    payload = {
        "images": [{"id": 5, "file_name": "street.jpg"}],
        "annotations": [
            {"image_id": 5, "bbox": [1, 1, 10, 10], "category_id": 1, "iscrowd": 1},
            {"image_id": 5, "bbox": [2, 2, 10, 20], "category_id": 1},
        ],
    }
    source = boxes.DetectionsFile(write(tmp_path, payload))
    found = source.boxes("street.jpg")
    np.testing.assert_array_equal(found.boxes, [[1.5, 1.5, 11.5, 21.5]])
    assert found.scores.tolist() == [1.0] and found.origins == ("detections.json entry 1",)


def test_detections_for_other_images_is_one_line(tmp_path):
    source = boxes.DetectionsFile(write(tmp_path, RESULTS))
    with pytest.raises(ValueError) as info:
        source.check_keys(["/x/a.jpg", "/x/b.jpg"])
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'detections.json'}: none of its 6 entries names one ")
    assert "of the 2 image(s) of this run (e.g. a.jpg)" in message and "\n" not in message


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"a": 1}, "not COCO detection results"),
        ([{"image_id": 1, "bbox": [1, 2, 3]}], r'entry 0: "bbox" must be \[x, y, w, h\]'),
        ([RESULTS[0], {"image_id": 1, "bbox": [1, 2, 0, 3]}], "entry 1: .* not positive"),
        ([{"image_id": 1, "bbox": [1, 2, "a", 3]}], 'entry 0: "bbox" must be a finite number'),
        ([{"bbox": [1, 2, 3, 4]}], 'entry 0: has neither "image_id" nor "file_name"'),
        ([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": None}], 'entry 0: "score" must be'),
        ([{"image_id": 1.5, "bbox": [1, 2, 3, 4]}], 'entry 0: "image_id" must be an integer'),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, 4], "category_id": "person"}],
            'entry 0: "category_id"',
        ),
        ([7], "entry 0: must be an object, got int"),
    ],
)
def test_malformed_detections_name_the_entry(tmp_path, payload, message):
    path = write(tmp_path, payload)
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        boxes.DetectionsFile(path)


def test_unreadable_detections(tmp_path):
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(ValueError, match=r"bad.json: not a valid JSON file \("):
        boxes.DetectionsFile(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="--detections=.*missing.json: no such file"):
        boxes.DetectionsFile(str(tmp_path / "missing.json"))


def test_detector_keeps_confident_people(tmp_path, make_detector):
    path = make_detector(
        tmp_path / "detector",
        boxes=[[0.1, 0.2, 0.9, 0.6], [0.0, 0.0, 0.5, 0.5], [0.2, 0.5, 0.8, 1.0], [0, 0, 1, 1]],
        scores=[0.8, 0.9, 0.95, 0.3],
        classes=[1.0, 3.0, 1.0, 1.0],  # a car, and a person under the threshold
    )
    image = np.zeros((50, 40, 3), np.uint8)
    found = boxes.DetectorModel(path).boxes("a.jpg", image)
    # Best first; (ymin, xmin, ymax, xmax) * (H, W, H, W) - 0.5.
    np.testing.assert_allclose(
        found.boxes, [[19.5, 9.5, 39.5, 39.5], [7.5, 4.5, 23.5, 44.5]], atol=1e-5
    )
    np.testing.assert_allclose(found.scores, [0.95, 0.8])
    assert found.origins == ("detector box 2", "detector box 0")
    one = boxes.DetectorModel(path, max_people=1, min_score=0.1).boxes("a.jpg", image)
    np.testing.assert_allclose(one.scores, [0.95])
    cars = boxes.DetectorModel(path, person_class=3).boxes("a.jpg", image)
    np.testing.assert_allclose(cars.scores, [0.9])
    none = boxes.DetectorModel(path, min_score=0.99).boxes("a.jpg", image)
    assert none.boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_dtype": "float32"}, "its input 'input_tensor' is float32"),
        (
            {"outputs": ["detection_boxes", "detection_scores"]},
            r"it lacks the output\(s\) detection_classes \(need",
        ),
    ],
)
def test_detector_of_another_signature_is_one_line(tmp_path, make_detector, kwargs, message):
    path = make_detector(tmp_path / "other", [[0, 0, 1, 1]], [1.0], [1.0], **kwargs)
    with pytest.raises(ValueError, match=f"^--detector={path}: not a TF2 Object Detection API "
                       f"detector: {message}") as info:  # fmt: skip
        boxes.DetectorModel(path)
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        boxes.DetectorModel(str(tmp_path))


def source_of(argv):
    fv = flags.FlagValues()
    boxes.define_flags(fv)
    fv(["prog", *argv])
    return boxes.from_flags(fv)


def test_from_flags(tmp_path):
    assert isinstance(source_of([]), boxes.WholeImage)
    whole = source_of([]).boxes("a.jpg")
    np.testing.assert_array_equal(whole.boxes, np.zeros((1, 4)))
    fixed = source_of(["--box=1,2,30,40"]).boxes("a.jpg")
    np.testing.assert_array_equal(fixed.boxes, [[1, 2, 30, 40]])
    assert fixed.scores.tolist() == [1.0]
    path = write(tmp_path, RESULTS)
    source = source_of([f"--detections={path}", "--min_box_score=0.1", "--max_people=3"])
    assert len(source.boxes(397133)) == 3
    with pytest.raises(ValueError, match="give at most one of --box, --detections and --detector"):
        source_of([f"--detections={path}", "--box=1,2,3,4"])
    with pytest.raises(ValueError, match="--box='1,2': expected four numbers"):
        source_of(["--box=1,2"])
