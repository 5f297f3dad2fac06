"""SavedModel export: signatures, in-graph decoding/cropping vs the Python path, input checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import geometry, pipeline
from stacked_hourglass.model import ModelConfig, build_model, inference
from stacked_hourglass.serving import exporter
from stacked_hourglass.training.trainer import trainer

INPUT_SIZE = 64


def make_model_dir(path, num_stacks=2):
    """A tiny random-weight run directory: model.keras + config.json (MPII joints)."""
    model_config = ModelConfig(num_stacks=num_stacks, num_features=16, input_size=INPUT_SIZE)
    keras.utils.set_random_seed(1234)
    model = build_model(model_config)
    os.makedirs(path, exist_ok=True)
    model.save(os.path.join(path, trainer.FINAL_MODEL_FILE))
    data_config = pipeline.DataConfig(dataset="mpii", input_size=INPUT_SIZE, heatmap_size=16)
    trainer.save_configs(path, model_config, data_config, trainer.TrainConfig(model_dir=path))
    return model


def random_image(shape, seed):
    """Smooth random image (blurred noise), so crops and heatmaps vary with the box."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (shape[0] // 8 + 1, shape[1] // 8 + 1, 3))
    image = tf.image.resize(small[None], shape, method="bilinear")[0]
    return np.clip(image.numpy(), 0, 255).astype(np.uint8)


def jpeg_bytes(shape, seed):
    return tf.io.encode_jpeg(random_image(shape, seed), quality=95).numpy()


def png_bytes(shape, seed):
    return tf.io.encode_png(random_image(shape, seed)).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model_dir = str(root / "run")
    make_model_dir(model_dir)
    export_dir = str(root / "export")
    path = exporter.export_from_model_dir(model_dir, export_dir)
    return {
        "path": path,
        "export_dir": export_dir,
        "model": trainer.load_trained_model(model_dir),
        "loaded": tf.saved_model.load(path),
    }


def python_keypoints(model, data, box):
    """The reference path: decode, box → center/scale, crop, network, decode, back-project."""
    image = pipeline.decode_image(data)
    box = np.asarray(box, np.float32)
    center = 0.5 * (box[:2] + box[2:])
    scale = 1.25 * max(box[2] - box[0], box[3] - box[1]) / 200.0
    matrix = geometry.crop_matrix(center, scale, INPUT_SIZE)
    crop = geometry.warp_image(image, matrix, INPUT_SIZE)
    heatmaps = inference.predict_heatmaps(model, crop[None])
    keypoints, scores = inference.heatmaps_to_keypoints(heatmaps, matrix[None], INPUT_SIZE)
    return keypoints.numpy()[0], scores.numpy()[0], crop.numpy()


def test_layout_and_metadata(exported):
    assert exported["path"] == os.path.join(exported["export_dir"], "1")
    assert sorted(os.listdir(exported["export_dir"])) == ["1"]  # no temporary left behind
    with open(os.path.join(exported["path"], "assets", exporter.JOINTS_ASSET)) as f:
        metadata = json.load(f)
    assert metadata["dataset"] == "mpii"
    assert metadata["joint_names"][0] == "r_ankle" and len(metadata["joint_names"]) == 16
    assert metadata["input_size"] == INPUT_SIZE and metadata["heatmap_size"] == 16
    assert metadata["flip_test"] is False
    assert ["r_ankle", "r_knee"] in metadata["skeleton"]


def test_next_version(tmp_path):
    assert exporter.next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "3", "10", "abc", ".tmp-11-1"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert exporter.next_version(str(tmp_path)) == 11


def test_existing_version_is_not_overwritten(exported):
    with pytest.raises(FileExistsError, match="already exists"):
        exporter.export_model(
            exported["model"],
            pipeline.DataConfig().joint_set,
            INPUT_SIZE,
            exported["export_dir"],
            version=1,
        )


def test_fresh_process_calls_both_signatures(exported):
    code = textwrap.dedent(
        f"""
        import json, tensorflow as tf
        loaded = tf.saved_model.load({exported["path"]!r})
        data = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
        a = loaded.signatures["serving_default"](
            image_bytes=tf.stack([data]), box=tf.zeros([1, 4]))
        b = loaded.signatures["serving_image_tensor"](images=tf.zeros([2, 64, 64, 3]))
        print(json.dumps({{
            "default": {{k: v.shape.as_list() for k, v in a.items()}},
            "tensor": {{k: v.shape.as_list() for k, v in b.items()}},
            "box": a["box"].numpy().tolist(),
        }}))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    assert shapes["default"] == {
        "keypoints": [1, 16, 2],
        "scores": [1, 16],
        "heatmaps": [1, 16, 16, 16],
        "image_size": [1, 2],
        "box": [1, 4],
    }
    assert shapes["tensor"] == {
        "keypoints": [2, 16, 2],
        "scores": [2, 16],
        "heatmaps": [2, 16, 16, 16],
    }
    # Four zeros = the whole 40x30 image, in pixel-centre coordinates.
    assert shapes["box"] == [[-0.5, -0.5, 39.5, 29.5]]


def test_saved_model_cli_lists_both_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip(f"saved_model_cli not found next to {sys.executable}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [cli, "show", "--dir", exported["path"], "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "signature_def['serving_default']" in out
    assert "signature_def['serving_image_tensor']" in out
    for name in ("image_bytes", "box", "images", "keypoints", "scores", "heatmaps"):
        assert f"['{name}']" in out


def test_serving_default_matches_python_path(exported):
    serve = exported["loaded"].signatures["serving_default"]
    images = [jpeg_bytes((120, 90), seed=1), png_bytes((70, 150), seed=2)]
    boxes = np.array([[10, 20, 70, 110], [30, 5, 90, 60]], np.float32)
    out = serve(image_bytes=tf.constant(images), box=tf.constant(boxes))
    np.testing.assert_array_equal(out["image_size"].numpy(), [[120, 90], [70, 150]])
    np.testing.assert_array_equal(out["box"].numpy(), boxes)
    for i, (data, box) in enumerate(zip(images, boxes, strict=True)):
        keypoints, scores, crop = python_keypoints(exported["model"], data, box)
        # Random weights still give input-dependent peaks; the test is only meaningful if the
        # joints do not all sit in one place.
        assert len({tuple(p) for p in np.round(keypoints, 1)}) > 4
        np.testing.assert_allclose(out["keypoints"].numpy()[i], keypoints, atol=0.5)
        np.testing.assert_allclose(out["scores"].numpy()[i], scores, rtol=1e-4, atol=1e-5)
        # The crop signature on the same crop agrees in crop pixels.
        tensor_out = exported["loaded"].signatures["serving_image_tensor"](images=crop[None])
        matrix = geometry.crop_matrix(
            0.5 * (box[:2] + box[2:]),
            1.25 * max(box[2] - box[0], box[3] - box[1]) / 200.0,
            INPUT_SIZE,
        )
        in_crop = geometry.apply_affine(matrix, keypoints).numpy()
        np.testing.assert_allclose(tensor_out["keypoints"].numpy()[0], in_crop, atol=0.05)


def test_zero_box_is_whole_image(exported):
    serve = exported["loaded"].signatures["serving_default"]
    data = jpeg_bytes((80, 100), seed=3)
    out = serve(image_bytes=tf.constant([data]), box=tf.zeros([1, 4]))
    whole = [-0.5, -0.5, 99.5, 79.5]
    np.testing.assert_array_equal(out["box"].numpy()[0], whole)
    keypoints, _, _ = python_keypoints(exported["model"], data, whole)
    np.testing.assert_allclose(out["keypoints"].numpy()[0], keypoints, atol=0.5)


@pytest.mark.parametrize(
    "data, box, message",
    [
        (b"", [0, 0, 0, 0], r"image_bytes\[1\] is empty"),
        (b"hello, world", [0, 0, 0, 0], r"image_bytes\[1\] \(12 bytes\) is not a JPEG/PNG/BMP/GIF"),
        ("jpeg", [10, 10, 5, 40], r"box\[1\] = \[10 10 5 40\] has zero or negative area"),
        ("jpeg", [10, 10, 50, 10], r"box\[1\] = .* has zero or negative area"),
        ("jpeg", [200, 10, 300, 40], r"box\[1\] = \[200 10 300 40\] lies outside the 60x50"),
        ("jpeg", [float("nan"), 10, 30, 40], r"box\[1\] = .* is not finite"),
    ],
)
def test_bad_bytes_or_box(exported, data, box, message):
    serve = exported["loaded"].signatures["serving_default"]
    good = jpeg_bytes((50, 60), seed=4)
    data = good if data == "jpeg" else data
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(
            image_bytes=tf.constant([good, data]),
            box=tf.constant([[0, 0, 0, 0], box], tf.float32),
        )


def test_box_count_must_match(exported):
    serve = exported["loaded"].signatures["serving_default"]
    good = jpeg_bytes((50, 60), seed=4)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="box has 1 rows but image_bytes has 2"
    ):
        serve(image_bytes=tf.constant([good, good]), box=tf.zeros([1, 4]))


def test_wrong_crop_size(exported):
    serve = exported["loaded"].signatures["serving_image_tensor"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="images has spatial size 32x64"):
        serve(images=tf.zeros([1, 32, 64, 3]))
