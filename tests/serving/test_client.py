"""The serving client: loading an export, predicting on files, the records it writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.serving import client, layout


@pytest.fixture(scope="module")
def serving(flip_export):
    return client.load_serving_model(flip_export["path"])


def test_client_does_not_import_the_trainer():
    code = (
        "import stacked_hourglass.serving.client, sys; "
        "assert not any(m.startswith('stacked_hourglass.training') for m in sys.modules)"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_load_serving_model(flip_export, serving):
    assert serving.path == flip_export["path"]
    assert client.load_serving_model(flip_export["export_dir"]).path == flip_export["path"]
    assert serving.metadata["flip_test"] is True and serving.metadata["input_size"] == 64
    assert serving.joint_set is joints.MPII
    out = serving.serve_images(images=tf.zeros([1, 64, 64, 3]))
    assert out["heatmaps"].shape == (1, 16, 16, 16)


def test_load_serving_model_without_metadata(flip_export, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(flip_export["path"], copy)
    os.remove(copy / "assets" / layout.JOINTS_ASSET)
    with pytest.raises(FileNotFoundError, match="joints.json: missing; was .* written by export"):
        client.load_serving_model(str(copy))
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        client.load_serving_model(str(tmp_path / "missing"))


def test_parse_box():
    assert client.parse_box(None) is None
    np.testing.assert_array_equal(client.parse_box("1,2,30.5,40"), [1, 2, 30.5, 40])
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,inf", "10,2,5,40"):
        with pytest.raises(ValueError, match="--box"):
            client.parse_box(bad)


def test_list_images_and_names(flip_export):
    root = flip_export["root"]
    found = client.list_images(str(root / "images"))
    assert [os.path.basename(p) for p in found] == ["other.png", "person.jpg"]
    with pytest.raises(FileNotFoundError, match="missing.jpg: no such file"):
        client.list_images(f"{found[0]},{root / 'missing.jpg'}")
    with pytest.raises(FileNotFoundError, match="no .jpg/.jpeg/.png/.bmp/.gif files"):
        client.list_images(str(root / "export"))
    with pytest.raises(FileNotFoundError, match="names no files"):
        client.list_images(",")
    assert client.output_names(["a/x.jpg", "b/x.png", "y.jpg"]) == ["x_jpg", "x_png", "y"]
    with pytest.raises(ValueError, match="same output name"):
        client.output_names(["a/x.jpg", "b/x.jpg"])


def test_error_summary_names_the_file(flip_export, serving):
    bad = str(flip_export["root"] / "notes.txt")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        client.predict_files(serving, [bad])
    assert info.value.message == (
        f"{bad}: image_bytes[0] (13 bytes) is not a JPEG/PNG/BMP/GIF image"
    )


def test_predict_files_writes_json_png_and_table(flip_export, serving, tmp_path):
    image = str(flip_export["root"] / "images" / "person.jpg")
    box = client.parse_box("5,10,60,90")
    (prediction,) = client.predict_files(serving, [image], box)
    assert prediction.image.shape == (96, 72, 3) and prediction.image.dtype == np.uint8
    assert prediction.keypoints.shape == (16, 2) and prediction.scores.shape == (16,)
    np.testing.assert_array_equal(prediction.box, [5, 10, 60, 90])
    whole = client.predict_image(serving, image)
    np.testing.assert_array_equal(whole.box, [-0.5, -0.5, 71.5, 95.5])

    json_path, png_path = client.write_prediction(serving, prediction, str(tmp_path), "person")
    with open(json_path) as f:
        record = json.load(f)
    assert record == client.prediction_record(serving, prediction)
    assert record["image_size"] == {"width": 72, "height": 96}
    assert record["dataset"] == "mpii" and record["flip_test"] is True
    assert list(record["keypoints"]) == list(joints.MPII.names)
    got = np.array([[v["x"], v["y"]] for v in record["keypoints"].values()])
    np.testing.assert_allclose(got, prediction.keypoints, atol=1e-4)
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    table = client.format_table(serving, prediction).splitlines()
    assert table[0] == f"{image} (72x96, box [5.0, 10.0, 60.0, 90.0])"
    assert table[1].split() == ["joint", "x", "y", "score"]
    assert len(table) == 2 + 16 and table[2].split()[0] == "r_ankle"


def test_host_path_refuses_webp_as_the_savedmodel_does(flip_export):
    """One rule for both image paths: WebP is not served (the SavedModel's graph refuses it)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(buffer, format="WEBP")
    data = buffer.getvalue()
    message = f"image_bytes[0] ({len(data)} bytes) is not a JPEG/PNG/BMP/GIF image"
    with pytest.raises(ValueError, match=re.escape(message)):
        client.decode_on_host(data)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        loaded = tf.saved_model.load(flip_export["path"])
        loaded.signatures["serving_default"](image_bytes=tf.constant([data]))
