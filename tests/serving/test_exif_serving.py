"""Phone photos end to end: a picture stored in each of the 8 EXIF orientations gives the
keypoints of the same picture stored upright, in the upright image's pixels, through the
SavedModel's signatures (turned in the graph: a REST client sends the bytes as they are) and
through the host path of the Keras and LiteRT predictors (`client.predict_on_host`)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.serving import client, keras_predictor

HEIGHT, WIDTH = 48, 64  # upright; the whole-image crop (side 80) shrinks it 1.25x
BOX = np.array([10.0, 4.0, 42.0, 40.0], np.float32)  # x1, y1, x2, y2 in upright pixels
# The stored JPEGs hold exactly the upright picture's pixels (lossless grey blocks), so the
# crops differ by float32 rounding only (~1e-5, tests/data/test_exif.py); heatmaps then move
# by far less than a quarter decoder's choice needs. 0.5 px is the bound.
TOLERANCE = 0.5


@pytest.fixture(scope="module")
def pictures(blocky_picture, oriented_jpeg, tmp_path_factory):
    """{orientation: path of the picture stored that way}; 0: the upright picture, no EXIF."""
    upright = blocky_picture(HEIGHT, WIDTH, seed=5)
    root = tmp_path_factory.mktemp("exif")
    paths = {0: root / "upright.jpg"}
    paths[0].write_bytes(tf.io.encode_jpeg(upright, quality=100, chroma_downsampling=False).numpy())
    for v in range(1, 9):
        paths[v] = root / f"stored_{v}.jpg"
        paths[v].write_bytes(oriented_jpeg(upright, v))
    return {"upright": upright, "paths": {v: str(p) for v, p in paths.items()}}


@pytest.fixture(scope="module")
def models(flip_export):
    """The tiny exported model (flip test in the graph) and the same Keras model behind the
    host path (`client.predict_on_host`, which the LiteRT predictor uses too)."""
    serving = client.load_serving_model(flip_export["path"])
    info = dataclasses.replace(serving.info, kind="model_dir")
    return {
        "saved_model": serving,
        "host": keras_predictor.KerasPredictor(info, flip_export["model"]),
    }


def _check(model, pictures, box):
    paths = pictures["paths"]
    expected = model.predict_image(paths[0], box)
    for v in range(1, 9):
        got = model.predict_image(paths[v], box)
        np.testing.assert_array_equal(got.image, pictures["upright"], err_msg=f"orientation {v}")
        np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.box, expected.box, atol=0, rtol=0)
        record = client.prediction_record(model, got)
        assert record["image_size"] == {"width": WIDTH, "height": HEIGHT}


@pytest.mark.parametrize("kind", ["saved_model", "host"])
@pytest.mark.parametrize("box", [None, BOX], ids=["whole", "box"])
def test_phone_photos_are_turned_upright(models, pictures, kind, box):
    _check(models[kind], pictures, box)


def test_rest_signatures_take_the_bytes_as_they_are(models, pictures):
    """One `serving_default` and one `serving_box` request with the 8 stored files and the
    upright one: the same keypoints, image_size the upright (height, width), the whole image's
    box upright."""
    signatures = models["saved_model"].loaded.signatures
    paths = pictures["paths"]
    data = tf.constant([pathlib.Path(paths[v]).read_bytes() for v in range(9)])
    out = signatures["serving_default"](image_bytes=data)
    np.testing.assert_array_equal(out["image_size"], [[HEIGHT, WIDTH]] * 9)
    np.testing.assert_array_equal(out["box"], [[-0.5, -0.5, WIDTH - 0.5, HEIGHT - 0.5]] * 9)
    keypoints = out["keypoints"].numpy()
    np.testing.assert_allclose(keypoints, np.repeat(keypoints[:1], 9, 0), atol=TOLERANCE, rtol=0)
    out = signatures["serving_box"](image_bytes=data, box=tf.constant(np.tile(BOX, (9, 1))))
    keypoints = out["keypoints"].numpy()
    np.testing.assert_allclose(keypoints, np.repeat(keypoints[:1], 9, 0), atol=TOLERANCE, rtol=0)


def test_a_box_is_read_in_upright_pixels(models, pictures):
    """A box inside the stored image (48 wide, 64 high) but outside the upright one (64 x 48)
    is refused, naming the upright size, by both paths."""
    outside = np.array([5.0, 50.0, 20.0, 60.0], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the 64x48"):
        models["saved_model"].predict_image(pictures["paths"][6], outside)
    with pytest.raises(ValueError, match="outside the 64x48"):
        models["host"].predict_image(pictures["paths"][6], outside)


@pytest.mark.large
def test_litert_turns_phone_photos_upright(flip_export, models, pictures, tmp_path):
    pytest.importorskip("ai_edge_litert.interpreter")
    from stacked_hourglass import joints
    from stacked_hourglass.serving import litert, predictor

    tflite = str(tmp_path / "tiny.tflite")
    litert.convert_model(flip_export["model"], joints.MPII, 64, tflite, flip_test=True)
    _check(predictor.open_predictor("litert", tflite), pictures, BOX)
