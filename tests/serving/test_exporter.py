"""SavedModel export: signatures, in-graph decoding/cropping vs the Python path, input checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints, run_dir
from stacked_hourglass.data import geometry
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.model import inference
from stacked_hourglass.serving import box_crop, client, exporter, layout

INPUT_SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory, make_model_dir):
    """A 2-stack random-weight MPII model directory exported as EXPORT/1 (no flip test)."""
    root = tmp_path_factory.mktemp("export")
    model_dir = str(root / "run")
    make_model_dir(model_dir)
    export_dir = str(root / "export")
    path = exporter.export_from_model_dir(model_dir, export_dir)
    return {
        "path": path,
        "export_dir": export_dir,
        "model": run_dir.load_model(model_dir),
        "loaded": tf.saved_model.load(path),
    }


def python_keypoints(model, data, box):
    """The reference path: box → center/scale, crop (the training pipeline's
    `geometry.decode_crop`), network, decode, back-project."""
    box = np.asarray(box, np.float32)
    center = 0.5 * (box[:2] + box[2:])
    scale = 1.25 * max(box[2] - box[0], box[3] - box[1]) / 200.0
    matrix = geometry.crop_matrix(center, scale, INPUT_SIZE)
    crop = geometry.decode_crop(data, matrix, INPUT_SIZE)
    heatmaps = inference.predict_heatmaps(model, crop[None])
    codec = HeatmapCodec.for_model(INPUT_SIZE)
    keypoints, scores = codec.decode_to_original(heatmaps, matrix[None])
    return keypoints.numpy()[0], scores.numpy()[0], crop.numpy()


def test_layout_and_metadata(exported):
    assert exported["path"] == os.path.join(exported["export_dir"], "1")
    assert sorted(os.listdir(exported["export_dir"])) == ["1"]  # no temporary left behind
    with open(os.path.join(exported["path"], "assets", layout.JOINTS_ASSET)) as f:
        metadata = json.load(f)
    assert metadata["dataset"] == "mpii"
    assert metadata["joint_names"][0] == "r_ankle" and len(metadata["joint_names"]) == 16
    assert metadata["input_size"] == INPUT_SIZE and metadata["heatmap_size"] == 16
    assert metadata["flip_test"] is False
    assert ["r_ankle", "r_knee"] in metadata["skeleton"]


def test_existing_version_is_not_overwritten(exported):
    with pytest.raises(FileExistsError, match="already exists"):
        exporter.export_model(
            exported["model"], joints.MPII, INPUT_SIZE, exported["export_dir"], version=1
        )


def test_export_model_checks_its_arguments(exported, tmp_path):
    model = exported["model"]
    with pytest.raises(ValueError, match="input_size=128 but the model's input"):
        exporter.export_model(model, joints.MPII, 128, str(tmp_path))
    with pytest.raises(ValueError, match="predicts 16 heatmaps but joint set 'flic' has 11"):
        exporter.export_model(model, joints.FLIC, INPUT_SIZE, str(tmp_path))
    with pytest.raises(ValueError, match="version must be a positive integer"):
        exporter.export_model(model, joints.MPII, INPUT_SIZE, str(tmp_path), version=0)
    assert os.listdir(tmp_path) == []


def test_fresh_process_calls_every_signature(exported):
    code = textwrap.dedent(
        f"""
        import json, tensorflow as tf
        loaded = tf.saved_model.load({exported["path"]!r})
        data = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
        a = loaded.signatures["serving_default"](image_bytes=tf.stack([data]))
        b = loaded.signatures["serving_image_tensor"](images=tf.zeros([2, 64, 64, 3]))
        c = loaded.signatures["serving_box"](image_bytes=tf.stack([data]), box=tf.zeros([1, 4]))
        d = loaded.signatures["serving_heatmaps"](
            image_bytes=tf.stack([data]), box=tf.zeros([1, 4]))
        print(json.dumps({{
            "default": {{k: v.shape.as_list() for k, v in a.items()}},
            "tensor": {{k: v.shape.as_list() for k, v in b.items()}},
            "box_sig": {{k: v.shape.as_list() for k, v in c.items()}},
            "heatmaps_sig": sorted(d),
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
        "image_size": [1, 2],
        "box": [1, 4],
    }
    assert shapes["box_sig"] == shapes["default"]
    assert shapes["heatmaps_sig"] == ["box", "heatmaps", "image_size", "keypoints", "scores"]
    assert shapes["tensor"] == {
        "keypoints": [2, 16, 2],
        "scores": [2, 16],
        "heatmaps": [2, 16, 16, 16],
    }
    # Four zeros = the whole 40x30 image, in pixel-centre coordinates.
    assert shapes["box"] == [[-0.5, -0.5, 39.5, 29.5]]


# TensorFlow's own command (~6 s): run by .ci/run; the default run calls every signature in a
# new process (test_fresh_process_calls_every_signature).
@pytest.mark.large
def test_saved_model_cli_lists_every_signature(exported):
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
    for name in layout.SIGNATURES:
        assert f"signature_def['{name}']" in out
    for name in ("image_bytes", "box", "images", "keypoints", "scores", "heatmaps"):
        assert f"['{name}']" in out


def test_serving_box_matches_python_path(exported, image_bytes):
    serve = exported["loaded"].signatures["serving_box"]
    # The third crop shrinks a 480 x 640 JPEG 6.6x (decoded at 1/4, then averaged 1.6x).
    images = [
        image_bytes((120, 90), seed=1),
        image_bytes((70, 150), seed=2, fmt="png"),
        image_bytes((480, 640), seed=3),
    ]
    boxes = np.array([[10, 20, 70, 110], [30, 5, 90, 60], [150, 40, 490, 380]], np.float32)
    out = serve(image_bytes=tf.constant(images), box=tf.constant(boxes))
    np.testing.assert_array_equal(out["image_size"].numpy(), [[120, 90], [70, 150], [480, 640]])
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


def test_box_to_center_scale():
    center, scale = box_crop.box_to_center_scale([[10.0, 20.0, 70.0, 110.0]])
    np.testing.assert_allclose(center.numpy(), [[40.0, 65.0]])
    # 1.25 x the longer side (90 px) is the crop side 200 x scale.
    np.testing.assert_allclose(scale.numpy(), [1.25 * 90.0 / 200.0])


def test_zero_box_is_whole_image(exported, image_bytes):
    signatures = exported["loaded"].signatures
    data = image_bytes((80, 100), seed=3)
    out = signatures["serving_default"](image_bytes=tf.constant([data]))
    whole = [-0.5, -0.5, 99.5, 79.5]
    np.testing.assert_array_equal(out["box"].numpy()[0], whole)
    keypoints, _, _ = python_keypoints(exported["model"], data, whole)
    np.testing.assert_allclose(out["keypoints"].numpy()[0], keypoints, atol=0.5)
    boxed = signatures["serving_box"](image_bytes=tf.constant([data]), box=tf.zeros([1, 4]))
    np.testing.assert_array_equal(boxed["keypoints"].numpy(), out["keypoints"].numpy())
    with_heatmaps = signatures["serving_heatmaps"](
        image_bytes=tf.constant([data]), box=tf.zeros([1, 4])
    )
    np.testing.assert_array_equal(with_heatmaps["keypoints"].numpy(), out["keypoints"].numpy())
    assert with_heatmaps["heatmaps"].shape == (1, 16, 16, 16)


@pytest.mark.parametrize(
    "data, box, message",
    [
        (b"", [0, 0, 0, 0], r"image_bytes\[1\] is empty"),
        (b"hello, world", [0, 0, 0, 0], r"image_bytes\[1\] \(12 bytes\) is not a JPEG/PNG/BMP/GIF"),
        ("jpeg", [10, 10, 5, 40], r"box\[1\] = \[10 10 5 40\] has zero or negative area"),
        ("jpeg", [10, 10, 50, 10], r"box\[1\] = .* has zero or negative area"),
        ("jpeg", [200, 10, 300, 40], r"box\[1\] = \[200 10 300 40\] lies outside the 60x50"),
        ("jpeg", [float("nan"), 10, 30, 40], r"box\[1\] = .* is not finite"),
        (
            "jpeg",
            [-1e30, -1e30, 1e30, 1e30],
            r"box\[1\] = .*: its longer side must be between 1 "
            r"pixel and 8 times the longer side of the 60x50 image",
        ),
        ("jpeg", [-3e38, -3e38, 3e38, 3e38], r"box\[1\] = .*: its longer side must be between"),
        ("jpeg", [10, 10, 10.5, 10.5], r"box\[1\] = .*: its longer side must be between 1 pixel"),
    ],
)
def test_bad_bytes_or_box(exported, image_bytes, data, box, message):
    serve = exported["loaded"].signatures["serving_box"]
    good = image_bytes((50, 60), seed=4)
    data = good if data == "jpeg" else data
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(
            image_bytes=tf.constant([good, data]),
            box=tf.constant([[0, 0, 0, 0], box], tf.float32),
        )


def test_box_count_must_match(exported, image_bytes):
    serve = exported["loaded"].signatures["serving_box"]
    good = image_bytes((50, 60), seed=4)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="box has 1 rows but image_bytes has 2"
    ):
        serve(image_bytes=tf.constant([good, good]), box=tf.zeros([1, 4]))


@pytest.mark.parametrize(
    "cut, message",
    [
        (lambda d: d[: len(d) // 2], r"image_bytes\[1\] \(\d+ bytes\) is a truncated JPEG"),
        (lambda d: d[:10], r"image_bytes\[1\] \(10 bytes\) is a truncated JPEG"),
    ],
)
def test_truncated_jpeg_names_its_index(exported, image_bytes, cut, message):
    serve = exported["loaded"].signatures["serving_default"]
    good = image_bytes((50, 60), seed=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant([good, cut(good)]))


def test_empty_batch_names_image_bytes(exported):
    for name, kwargs in (
        ("serving_default", {}),
        ("serving_box", {"box": tf.zeros([0, 4])}),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes holds no images"):
            exported["loaded"].signatures[name](image_bytes=tf.constant([], tf.string), **kwargs)


def test_images_above_max_pixels_are_refused_before_decoding(exported, image_bytes):
    # A PNG whose header claims 20000 x 20000 (400 MP) but whose data is 20 x 20: refused from
    # the header (decoding it would fail or allocate 1.2 GB).
    png = bytearray(tf.io.encode_png(tf.zeros([20, 20, 3], tf.uint8)).numpy())
    png[16:24] = (20000).to_bytes(4, "big") * 2
    good = image_bytes((50, 60), seed=4)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"image_bytes\[1\] is 20000x20000 .* above the limit max_pixels = 50000000",
    ):
        exported["loaded"].signatures["serving_default"](
            image_bytes=tf.constant([good, bytes(png)])
        )
    with open(os.path.join(exported["path"], "assets", layout.JOINTS_ASSET)) as f:
        assert json.load(f)["max_pixels"] == 50_000_000


def test_non_finite_crops_name_images(exported):
    images = np.zeros([2, 64, 64, 3], np.float32)
    images[1, 3, 4, 0] = np.nan
    images[0, 0, 0, 2] = np.inf
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"images has 2 non-finite values \(NaN or inf\)"
    ):
        exported["loaded"].signatures["serving_image_tensor"](images=tf.constant(images))


def test_non_finite_weights_are_refused(tmp_path):
    from stacked_hourglass.model import build_model

    model = build_model(num_stacks=1, num_features=8, depth=1, input_size=INPUT_SIZE, num_joints=16)
    variable = model.trainable_weights[3]
    values = variable.numpy()
    values.flat[0] = np.nan
    variable.assign(values)
    with pytest.raises(ValueError) as info:
        exporter.export_model(model, joints.MPII, INPUT_SIZE, str(tmp_path / "export"))
    message = str(info.value)
    assert "\n" not in message and variable.path in message and "non-finite" in message
    assert not (tmp_path / "export").exists()


def test_wrong_crop_size(exported):
    serve = exported["loaded"].signatures["serving_image_tensor"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="images has spatial size 32x64"):
        serve(images=tf.zeros([1, 32, 64, 3]))


def test_flip_test_is_in_the_graph(flip_export, random_image):
    serving = client.load_serving_model(flip_export["export_dir"])  # resolves to version 1
    assert serving.path == flip_export["path"]
    assert serving.metadata["flip_test"] is True
    assert serving.joint_set is joints.MPII
    crops = tf.constant(random_image((64, 64), 3)[None] / 255.0, tf.float32)
    loaded = tf.saved_model.load(flip_export["path"])
    out = loaded.signatures[layout.SERVING_IMAGE_TENSOR](images=crops)
    model = flip_export["model"]
    expected = inference.predict_heatmaps(model, crops, joints.MPII.flip_permutation())
    single = inference.predict_heatmaps(model, crops)
    np.testing.assert_allclose(out["heatmaps"].numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(expected.numpy(), single.numpy(), atol=1e-3)


@pytest.mark.large  # a third export (~10 s): the DARK decoder's arithmetic is tests/data's
def test_dark_decoder_is_in_the_graph_and_recorded(exported, flip_export, tmp_path, random_image):
    # The session's 1-stack model (its own export has the flip test; this one has not): what
    # is checked is the decoder, and one stack is half the tracing of `exported`'s two.
    model = flip_export["model"]
    path = exporter.export_model(model, joints.MPII, INPUT_SIZE, str(tmp_path), decoder="dark")
    assert client.load_serving_model(path).metadata["decoder"] == "dark"
    with pytest.raises(ValueError, match="decoder must be one of quarter, dark"):
        exporter.export_model(model, joints.MPII, INPUT_SIZE, str(tmp_path), decoder="x")
    crops = tf.constant(random_image((64, 64), 5)[None] / 255.0, tf.float32)
    out = tf.saved_model.load(path).signatures[layout.SERVING_IMAGE_TENSOR](images=crops)
    heatmaps = inference.predict_heatmaps(model, crops)
    dark, _ = HeatmapCodec.for_model(INPUT_SIZE, decoder="dark").decode(heatmaps)
    quarter, _ = HeatmapCodec.for_model(INPUT_SIZE).decode(heatmaps)
    np.testing.assert_allclose(out["keypoints"].numpy(), dark.numpy(), atol=1e-3)
    assert not np.allclose(dark.numpy(), quarter.numpy(), atol=1e-2)
    assert client.load_serving_model(exported["path"]).metadata["decoder"] == "quarter"
