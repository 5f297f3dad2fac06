"""LiteRT (TensorFlow Lite) export of the crop-in model, and running it on the host.

    python -m stacked_hourglass.export --format=litert --model_dir=DIR --output=FILE.tflite \
        [--quantize=none|fp16|dynamic_int8] [--decoder=quarter|dark] [--flip_test]

writes two files:

    FILE.tflite   one signature, `serving_default`: `images` float32 [1, S, S, 3] in [0, 1] (a
                  crop made on the host, the rule of `serving_box`: `crop_image`) → `heatmaps`
                  float32 [1, H, H, K], `keypoints` float32 [1, K, 2] in crop pixels, `scores`
                  float32 [1, K]; the decoder (and the flip test) run inside the model
    FILE.json     the SavedModel's joints.json plus "format": "litert" and "quantize"

Quantisation modes (TF's post-training quantisation, no calibration data):

* `none`: float32 weights and activations;
* `fp16`: float16 weights, dequantised to float32 at load (half the size, float32 maths);
* `dynamic_int8`: int8 weights, activations quantised on the fly per op (a quarter of the size).

Running the model needs only `ai_edge_litert` (the standalone LiteRT interpreter), not the
network code; cropping uses TF eager ops (`data.geometry`) so that the crop is the one the
SavedModel makes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features, geometry
from stacked_hourglass.serving import layout
from stacked_hourglass.utils import files

QUANTIZE_MODES = ("none", "fp16", "dynamic_int8")
SIGNATURE = "serving_default"


def metadata_path(tflite_path: str) -> str:
    """FILE.tflite → FILE.json (the joints metadata written next to it)."""
    return os.path.splitext(tflite_path)[0] + ".json"


def convert_model(
    model,
    joint_set,
    input_size: int,
    output: str,
    quantize: str = "none",
    flip_test: bool = False,
    decoder: str = "quarter",
    sigma: float = 1.0,
) -> str:
    """Converts a Keras stacked hourglass to FILE.tflite (+ FILE.json); returns the path.

    Raises:
        ValueError: unknown quantize mode or decoder, non-finite weights, mismatched sizes.
    """
    from stacked_hourglass.data.codec import HeatmapCodec
    from stacked_hourglass.model import inference
    from stacked_hourglass.serving import exporter

    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    codec = HeatmapCodec.for_model(input_size, sigma=sigma, decoder=decoder)
    exporter.check_finite_weights(model)
    if model.input_shape[1] != input_size:
        raise ValueError(f"input_size={input_size} but the model's input is {model.input_shape}")
    flip = joint_set.flip_permutation() if flip_test else None

    spec = tf.TensorSpec([1, input_size, input_size, 3], tf.float32, name="images")

    def serve(images):
        heatmaps = inference.predict_heatmaps(model, images, flip)
        keypoints, scores = codec.decode(heatmaps)
        return {"heatmaps": heatmaps, "keypoints": keypoints, "scores": scores}

    heatmap_shape = model.compute_output_shape((1, input_size, input_size, 3))
    heatmap_shape = heatmap_shape[inference.last_output_name(model)]
    if heatmap_shape[-1] != joint_set.num_joints:
        raise ValueError(
            f"The model predicts {heatmap_shape[-1]} heatmaps but joint set {joint_set.name!r} "
            f"has {joint_set.num_joints} joints"
        )
    # Through Keras' ExportArchive and a SavedModel: a plain tf.function over a Keras 3 model
    # converts with its variables left uninitialised (NaN outputs, measured with TF 2.21).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[spec])
    with tempfile.TemporaryDirectory() as saved:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[SIGNATURE])
        flatbuffer = _convert(converter, quantize)
    with files.atomic_path(output) as tmp, files.open_file(tmp, "wb") as f:
        f.write(flatbuffer)
    metadata = layout.joints_metadata(
        joint_set, input_size, heatmap_shape[1], flip_test, codec.decoder, sigma
    )
    metadata.update(
        {
            "format": "litert",
            "quantize": quantize,
            "signatures": [SIGNATURE],
            "input": "images float32 [1, S, S, 3] in [0, 1], a crop (see box_margin)",
        }
    )
    files.write_text(metadata_path(output), json.dumps(metadata, indent=2) + "\n")
    return output


def _convert(converter, quantize: str) -> bytes:
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def convert_from_model_dir(
    model_dir: str,
    output: str,
    quantize: str = "none",
    flip_test: bool = False,
    decoder: str = "quarter",
) -> str:
    """`convert_model` of a training run's final model (or latest checkpoint)."""
    from stacked_hourglass import run_dir

    config = run_dir.load_config(model_dir)
    model = run_dir.load_model(model_dir)
    return convert_model(
        model,
        config.data.joint_set,
        config.model.input_size,
        output,
        quantize=quantize,
        flip_test=flip_test,
        decoder=decoder,
        sigma=config.data.sigma,
    )


class LiteRTModel:
    """A converted model loaded in `ai_edge_litert.interpreter.Interpreter`, with its metadata.

    Attributes:
        path: the .tflite file.
        metadata: FILE.json (joint names, input size, decoder, quantize ...).
        input_size: S.
    """

    def __init__(self, path: str, num_threads: int | None = None):
        if not files.exists(path) or files.isdir(path):
            raise FileNotFoundError(f"{path}: no such LiteRT model")
        meta = metadata_path(path)
        if not files.exists(meta) or files.isdir(meta):
            raise FileNotFoundError(
                f"{meta}: missing; was {path} written by export --format=litert?"
            )
        self.metadata = json.loads(files.read_bytes(meta))
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.input_size = int(self.metadata["input_size"])
        self._interpreter = Interpreter(
            model_content=files.read_bytes(path), num_threads=num_threads
        )
        self._runner = self._interpreter.get_signature_runner(SIGNATURE)

    def run(self, crops) -> dict:
        """Crops float32 [N, S, S, 3] in [0, 1] → {"heatmaps", "keypoints" (crop px), "scores"},
        numpy, one interpreter call per crop (the model's batch is 1)."""
        crops = np.asarray(crops, np.float32)
        s = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            raise ValueError(f"images has shape {crops.shape}; this model expects [N, {s}, {s}, 3]")
        if not np.all(np.isfinite(crops)):
            raise ValueError("images has non-finite values (NaN or inf)")
        parts = [self._runner(images=crop[None]) for crop in crops]
        return {
            k: np.concatenate([p[k] for p in parts]) for k in ("heatmaps", "keypoints", "scores")
        }

    def heatmaps_fn(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """A heatmaps function (`model.inference`) usable inside `tf.function`."""
        k = len(self.metadata["joint_names"])
        h = int(self.metadata["heatmap_size"])

        def run_heatmaps(images):
            return self.run(images)["heatmaps"].astype(np.float32)

        def heatmaps(images):
            out = tf.numpy_function(run_heatmaps, [images], tf.float32, stateful=True)
            return tf.ensure_shape(out, [None, h, h, k])

        return heatmaps


def crop_image(image, box, input_size: int):
    """The crop `serving_box` makes, on the host (TF eager).

    Args:
        image: uint8 [H, W, 3].
        box: float32 [4] x1, y1, x2, y2 in original pixels; None or four zeros = the whole image.
        input_size: S.

    Returns:
        (crop float32 [S, S, 3] in [0, 1], matrix float32 [3, 3] original → crop, box used [4]).

    Raises:
        ValueError: a box with no area, not finite, or outside the image (the serving messages).
    """
    h, w = image.shape[:2]
    if box is None or not np.any(box):
        box = np.array([-0.5, -0.5, w - 0.5, h - 0.5], np.float32)
    box = np.asarray(box, np.float32)
    x1, y1, x2, y2 = box
    shown = "[" + " ".join(f"{v:g}" for v in box) + "]"
    if not (np.all(np.isfinite(box)) and x2 > x1 and y2 > y1):
        raise ValueError(
            f"box[0] = {shown} has zero or negative area or is not finite (need x1 < x2 and "
            "y1 < y2; four zeros mean the whole image)"
        )
    if not (x1 < w - 0.5 and x2 > -0.5 and y1 < h - 0.5 and y2 > -0.5):
        raise ValueError(f"box[0] = {shown} lies outside the {w}x{h} (width x height) image")
    center = 0.5 * (box[:2] + box[2:])
    scale = layout.BOX_MARGIN * max(x2 - x1, y2 - y1) / features.PIXELS_PER_SCALE
    matrix = geometry.crop_matrix(tf.constant(center), tf.constant(scale, tf.float32), input_size)
    # The SavedModel's crop (area averaging, then one warp), from the decoded pixels.
    crop = geometry.crop_image(tf.constant(image), matrix, input_size)
    return crop.numpy(), np.asarray(matrix, np.float32), box


def to_original(keypoints, matrix):
    """Crop-pixel keypoints [K, 2] → original pixels through the inverse of `matrix`."""
    inverse = geometry.invert_affine(tf.constant(matrix, tf.float32))
    return geometry.apply_affine(inverse, tf.constant(keypoints, tf.float32)).numpy()
