"""Several people per image: `Predictor.predict_people` (the SavedModel's `serving_people` and
the host path), `predict_lib`'s outputs, and `predict` with a detector or a detections file on a
synthetic scene of three people."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data.sources.synthetic import generate
from stacked_hourglass.data.sources.synthetic.background import render_background
from stacked_hourglass.data.sources.synthetic.body import pose_body, sample_pose
from stacked_hourglass.data.sources.synthetic.person import render_person, sample_style
from stacked_hourglass.data.sources.synthetic.raster import MAIN
from stacked_hourglass.serving import boxes, client, keras_predictor, layout, predict_lib, predictor

HEIGHT, WIDTH = 120, 240


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """street.jpg: three synthetic people side by side; {"path", "boxes" float32 [3, 4] (their
    extents, x1, y1, x2, y2 pixels), "normalized" (the same as the TF OD API's ymin, xmin, ymax,
    xmax)}."""
    rng = np.random.default_rng(23)
    canvas = render_background(rng, HEIGHT, WIDTH)
    owner = np.zeros((HEIGHT, WIDTH), np.uint8)
    extents = []
    for cx in (40.0, 120.0, 200.0):
        body = pose_body(sample_pose(rng), 90.0, (cx, 60.0))
        render_person(canvas, owner, MAIN, body, sample_style(rng))
        extents.append(body.extent())
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("scene") / "street.jpg"
    path.write_bytes(generate.encode_jpeg(image))
    # Through the detector's normalised form, so the boxes are exactly the ones predict uses.
    pixels = np.asarray(extents, np.float64)
    normalized = (pixels[:, [1, 0, 3, 2]] + 0.5) / [HEIGHT, WIDTH, HEIGHT, WIDTH]
    used = boxes.normalized_to_box(normalized.astype(np.float32), HEIGHT, WIDTH)
    return {"path": str(path), "boxes": used, "normalized": normalized.tolist()}


@pytest.fixture(scope="module")
def serving(flip_export):
    return client.load_serving_model(flip_export["path"])


@pytest.fixture(scope="module")
def host(flip_export, serving):
    """The export's Keras model as a `KerasPredictor`: the host path (one decode, N host crops)
    that LiteRT models share."""
    info = predictor.info_from_metadata("model_dir", flip_export["path"], serving.metadata)
    return keras_predictor.KerasPredictor(info, flip_export["model"])


@pytest.fixture(scope="module")
def detector(tmp_path_factory, scene, make_detector):
    """A detector SavedModel returning the three people (the middle one first), a dog and a
    person under the default score threshold."""
    normalized = scene["normalized"]
    return make_detector(
        tmp_path_factory.mktemp("detector") / "saved_model",
        boxes=[normalized[1], normalized[0], [0.1, 0.1, 0.3, 0.3], normalized[2], [0, 0, 1, 1]],
        scores=[0.9, 0.95, 0.99, 0.8, 0.3],
        classes=[1.0, 1.0, 18.0, 1.0, 1.0],
    )


@pytest.mark.parametrize("kind", ["saved_model", "host"])
def test_people_equal_single_box_calls(serving, host, scene, kind):
    model = serving if kind == "saved_model" else host
    people = model.predict_people(scene["path"], scene["boxes"], [0.9, 0.8, 0.7])
    assert people.keypoints.shape == (3, 16, 2) and people.scores.shape == (3, 16)
    assert people.image_size == (HEIGHT, WIDTH) and people.image.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(people.boxes, scene["boxes"])
    np.testing.assert_allclose(people.box_scores, [0.9, 0.8, 0.7])
    for i, box in enumerate(scene["boxes"]):
        single = model.predict_image(scene["path"], box)
        # The same crop through the same network; only the batch differs (kernels may sum in
        # another order: heatmap values move by ~1e-7, a peak's quarter shift not at all).
        np.testing.assert_allclose(people.keypoints[i], single.keypoints, rtol=0, atol=1e-4)
        np.testing.assert_allclose(people.scores[i], single.scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["saved_model", "host"])
def test_no_boxes_is_no_people(serving, host, scene, kind):
    model = serving if kind == "saved_model" else host
    data = client.read_image(scene["path"])
    people = model.predict_people(data, np.zeros((0, 4), np.float32))
    assert len(people) == 0 and people.keypoints.shape == (0, 16, 2)
    assert people.scores.shape == (0, 16) and people.boxes.shape == (0, 4)
    assert people.image_size == (HEIGHT, WIDTH)


def test_serving_people_names_bad_input(serving, scene):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] \(5 bytes\) is not"
    ):
        serving.predict_people(b"hello", np.zeros((1, 4), np.float32))
    bad = np.array([[0, 0, 0, 0], [500, 500, 600, 600]], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        serving.predict_people(scene["path"], bad)
    assert client.error_summary(info.value).startswith(
        "box[1] = [500 500 600 600] lies outside the 240x120"
    )


def test_screen_boxes_skips_and_names_what_does_not_fit():
    found = boxes.make_boxes(
        [[1, 2, 30, 40], [500, 500, 600, 600], [5, 5, 5, 9]], [0.9, 0.8, 0.7], ["a", "b", "c"]
    )
    kept, warnings = predict_lib.screen_boxes(found, (120, 240))
    np.testing.assert_array_equal(kept.boxes, [[1, 2, 30, 40]])
    assert kept.origins == ("a",) and kept.scores.tolist() == [pytest.approx(0.9)]
    assert warnings == [
        "b: box[1] = [500 500 600 600] lies outside the 240x120 (width x height) image; skipped",
        "c: box[2] = [5 5 5 9] has zero or negative area or is not finite (need x1 < x2 and "
        "y1 < y2; four zeros mean the whole image); skipped",
    ]


def test_person_score_and_coco_image_id():
    assert predict_lib.person_score(0.5, [0.1, 0.4, 0.8]) == pytest.approx(0.5 * 0.6)
    assert predict_lib.person_score(0.9, [0.1, 0.2]) == 0.0
    people = predictor.People(np.zeros((2, 2, 3), np.uint8), (2, 2), *(np.zeros(0),) * 4)

    def found(path, image_id=None):
        return predict_lib.Found(path, people, boxes.make_boxes([], [], [], image_id))

    assert predict_lib.coco_image_id(found("/a/000000397133.jpg"), 4) == 397133
    assert predict_lib.coco_image_id(found("/a/street.jpg"), 4) == 4
    assert predict_lib.coco_image_id(found("/a/street.jpg", image_id=77), 4) == 77


def keypoints_of(person) -> np.ndarray:
    return np.array([[v["x"], v["y"]] for v in person["keypoints"].values()], np.float32)


def test_predict_with_a_detector_writes_three_skeletons(
    flip_export, serving, scene, detector, run_predict, tmp_path
):
    out_dir, coco = tmp_path / "out", tmp_path / "coco.json"
    status, out, err = run_predict(
        f"--saved_model={flip_export['path']}", f"--image={scene['path']}",
        f"--detector={detector}", f"--output_dir={out_dir}", f"--coco_results={coco}",
    )  # fmt: skip
    assert status == 0 and err == [], err
    assert "street.jpg (240x120): 3 people" in out and "(detector box 1)" in out
    assert sorted(os.listdir(out_dir)) == ["street.json", "street.png"]
    record = json.loads((out_dir / "street.json").read_text())
    assert record["image_size"] == {"width": WIDTH, "height": HEIGHT}
    assert record["image_id"] == 0  # no detections file, a stem that is not a number
    people = record["people"]
    # Best box first: the detector's 0.95 (the left person), 0.9 (middle), 0.8 (right).
    assert [p["box_score"] for p in people] == pytest.approx([0.95, 0.9, 0.8])
    assert [p["box_source"] for p in people] == [f"detector box {i}" for i in (1, 0, 3)]
    for person, box in zip(people, scene["boxes"], strict=True):
        assert np.float32(person["box"]).tolist() == box.tolist()
        single = serving.predict_image(scene["path"], np.float32(person["box"]))
        np.testing.assert_allclose(keypoints_of(person), single.keypoints, rtol=0, atol=1e-4)
    results = json.loads(coco.read_text())
    assert len(results) == 3 and {r["image_id"] for r in results} == {0}
    assert results[0]["category_id"] == 1 and len(results[0]["keypoints"]) == 3 * 16
    np.testing.assert_allclose(
        np.reshape(results[0]["keypoints"], (16, 3))[:, :2], keypoints_of(people[0]), atol=1e-4
    )
    assert results[0]["score"] == pytest.approx(people[0]["score"])
    png = tf.io.decode_png((out_dir / "street.png").read_bytes()).numpy()
    assert png.shape[2] in (3, 4) and png.shape[1] == 2 * png.shape[0]


def test_predict_with_detections_file_zero_people_and_skipped_box(
    flip_export, scene, run_predict, tmp_path
):
    images = tmp_path / "images"
    images.mkdir()
    data = client.read_image(scene["path"])
    (images / "000000000001.jpg").write_bytes(data)
    (images / "000000000002.jpg").write_bytes(data)
    x1, y1, x2, y2 = (float(v) for v in scene["boxes"][0])
    detections = [
        # COCO's continuous [x, y, w, h] of our box (x1, y1, x2, y2): (x1 + 0.5, y1 + 0.5, ...).
        {"image_id": 1, "bbox": [x1 + 0.5, y1 + 0.5, x2 - x1, y2 - y1], "score": 0.9,
         "category_id": 1},
        {"image_id": 1, "bbox": [900, 900, 50, 50], "score": 0.8, "category_id": 1},
        {"image_id": 2, "bbox": [10, 10, 50, 50], "score": 0.1, "category_id": 1},
    ]  # fmt: skip
    (tmp_path / "det.json").write_text(json.dumps(detections))
    out_dir, coco = tmp_path / "out", tmp_path / "coco.json"
    status, out, err = run_predict(
        f"--saved_model={flip_export['path']}", f"--image={images}",
        f"--detections={tmp_path / 'det.json'}", f"--output_dir={out_dir}",
        f"--coco_results={coco}",
    )  # fmt: skip
    assert status == 0, err
    assert err == [
        f"predict: warning: {images / '000000000001.jpg'}: det.json entry 1: box[1] = [899.5 "
        "899.5 949.5 949.5] lies outside the 240x120 (width x height) image; skipped"
    ]
    first = json.loads((out_dir / "000000000001.json").read_text())
    (person,) = first["people"]
    assert person["box_source"] == "det.json entry 0" and first["image_id"] == 1
    np.testing.assert_allclose(person["box"], scene["boxes"][0], atol=1e-4)
    # The second image's only detection is under --min_box_score: no people, said so.
    second = json.loads((out_dir / "000000000002.json").read_text())
    assert second["people"] == [] and second["image_id"] == 2
    assert "000000000002.jpg (240x120): 0 people\n  no people found" in out
    assert (out_dir / "000000000002.png").exists()
    results = json.loads(coco.read_text())
    assert [r["image_id"] for r in results] == [1]


def test_detections_for_other_images_stop_before_any_image(
    flip_export, scene, run_predict, tmp_path
):
    (tmp_path / "det.json").write_text(
        json.dumps([{"image_id": 5, "bbox": [1, 1, 9, 9], "score": 1.0, "category_id": 1}])
    )
    status, out, err = run_predict(
        f"--saved_model={flip_export['path']}", f"--image={scene['path']}",
        f"--detections={tmp_path / 'det.json'}", f"--output_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"predict: error: {tmp_path / 'det.json'}: none of its 1 entries")
    assert not (tmp_path / "out").exists()


def test_detector_of_another_signature_stops_the_run(
    flip_export, scene, run_predict, tmp_path, make_detector
):
    other = make_detector(tmp_path / "float_detector", [[0, 0, 1, 1]], [1.0], [1.0], "float32")
    status, _, err = run_predict(
        f"--saved_model={flip_export['path']}", f"--image={scene['path']}",
        f"--detector={other}", f"--output_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(
        f"predict: error: --detector={other}: not a TF2 Object Detection API detector: its "
        "input 'input_tensor' is float32"
    ), err
    assert not (tmp_path / "out").exists()


def test_exports_list_serving_people(flip_export):
    metadata = layout.read_joints_metadata(flip_export["path"])
    assert layout.SERVING_PEOPLE in metadata["signatures"]
