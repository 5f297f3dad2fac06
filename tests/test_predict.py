"""predict: the library on a flip-test export, and the command line on good and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.model import build_model, inference
from stacked_hourglass.serving import client, exporter

INPUT_SIZE = 64


def _image(shape, seed):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (shape[0] // 8 + 1, shape[1] // 8 + 1, 3))
    image = tf.image.resize(small[None], shape, method="bilinear")[0]
    return np.clip(image.numpy(), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(99)
    model = build_model(num_stacks=1, num_features=16, input_size=INPUT_SIZE, num_joints=16)
    export_dir = str(root / "export")
    path = exporter.export_model(model, joints.MPII, INPUT_SIZE, export_dir, flip_test=True)
    images = root / "images"
    images.mkdir()
    (images / "person.jpg").write_bytes(tf.io.encode_jpeg(_image((96, 72), 1)).numpy())
    (images / "other.png").write_bytes(tf.io.encode_png(_image((50, 80), 2)).numpy())
    (root / "notes.txt").write_text("not an image\n")
    return {"root": root, "model": model, "export_dir": export_dir, "path": path}


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.predict", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_flip_test_is_in_the_graph(setup):
    serving = client.load_serving_model(setup["export_dir"])  # resolves to version 1
    assert serving.path == setup["path"]
    assert serving.metadata["flip_test"] is True
    assert serving.joint_set is joints.MPII
    crops = tf.constant(_image((64, 64), 3)[None] / 255.0, tf.float32)
    loaded = tf.saved_model.load(setup["path"])
    out = loaded.signatures[exporter.SERVING_IMAGE_TENSOR](images=crops)
    expected = inference.predict_heatmaps(setup["model"], crops, joints.MPII.flip_permutation())
    single = inference.predict_heatmaps(setup["model"], crops)
    np.testing.assert_allclose(out["heatmaps"].numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(expected.numpy(), single.numpy(), atol=1e-3)


def test_parse_box():
    assert client.parse_box(None) is None
    np.testing.assert_array_equal(client.parse_box("1,2,30.5,40"), [1, 2, 30.5, 40])
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,inf", "10,2,5,40"):
        with pytest.raises(ValueError, match="--box"):
            client.parse_box(bad)


def test_list_images_and_names(setup):
    root = setup["root"]
    found = client.list_images(str(root / "images"))
    assert [os.path.basename(p) for p in found] == ["other.png", "person.jpg"]
    with pytest.raises(FileNotFoundError, match="missing.jpg: no such file"):
        client.list_images(f"{found[0]},{root / 'missing.jpg'}")
    assert client.output_names(["a/x.jpg", "b/x.png", "y.jpg"]) == ["x_jpg", "x_png", "y"]


def test_error_summary_names_the_file(setup):
    serving = client.load_serving_model(setup["path"])
    bad = str(setup["root"] / "notes.txt")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        client.predict_files(serving, [bad])
    assert info.value.message == (
        f"{bad}: image_bytes[0] (13 bytes) is not a JPEG/PNG/BMP/GIF image"
    )


def test_cli_writes_json_and_png(setup):
    out_dir = setup["root"] / "out"
    image = setup["root"] / "images" / "person.jpg"
    result = run_cli(
        f"--saved_model={setup['export_dir']}",
        f"--image={image},{setup['root'] / 'images' / 'other.png'}",
        "--box=5,10,60,90",
        f"--output_dir={out_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "head_top" in result.stdout and "2 image(s)" in result.stdout
    assert sorted(os.listdir(out_dir)) == ["other.json", "other.png", "person.json", "person.png"]
    with open(out_dir / "person.json") as f:
        record = json.load(f)
    assert record["image_size"] == {"width": 72, "height": 96}
    assert record["box"] == [5, 10, 60, 90]
    assert list(record["keypoints"]) == list(joints.MPII.names)
    assert set(record["keypoints"]["r_ankle"]) == {"x", "y", "score"}
    # Same numbers as calling the signature directly.
    serving = client.load_serving_model(setup["path"])
    direct = client.predict_image(serving, str(image), np.array([5, 10, 60, 90], np.float32))
    got = np.array([[v["x"], v["y"]] for v in record["keypoints"].values()])
    np.testing.assert_allclose(got, direct.keypoints, atol=1e-4)
    assert (out_dir / "person.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "image, box, message",
    [
        ("notes.txt", None, "notes.txt: image_bytes[0] (13 bytes) is not a JPEG/PNG/BMP/GIF image"),
        ("missing.jpg", None, "missing.jpg: no such file or directory"),
        ("images/person.jpg", "1,2,3", "--box='1,2,3': expected four numbers"),
    ],
)
def test_cli_bad_input_one_line(setup, image, box, message):
    args = [
        f"--saved_model={setup['path']}",
        f"--image={setup['root'] / image}",
        f"--output_dir={setup['root'] / 'bad_out'}",
    ]
    if box:
        args.append(f"--box={box}")
    result = run_cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-2000:]
    assert not os.path.exists(setup["root"] / "bad_out")
