"""LiteRT (TensorFlow Lite) export of the crop-in model, and running it on the host.

    python -m stacked_hourglass.export --format=litert --model_dir=DIR --output=FILE.tflite \
        [--quantize=none|fp16|dynamic_int8] [--decoder=quarter|dark] [--flip_test]

writes two files:

    FILE.tflite   one signature, `serving_default`: `images` float32 [1, S, S, 3] in [0, 1] (a
                  crop made on the host, the rule of `serving_box`: `box_crop`) → `heatmaps`
                  float32 [1, H, H, K], `keypoints` float32 [1, K, 2] in crop pixels, `scores`
                  float32 [1, K]; the decoder (and the flip test) run inside the model
    FILE.json     the SavedModel's joints.json plus "format": "litert" and "quantize"

Quantisation modes (TF's post-training quantisation, no calibration data):

* `none`: float32 weights and activations;
* `fp16`: float16 weights, dequantised to float32 at load (half the size, float32 maths);
* `dynamic_int8`: int8 weights, activations quantised on the fly per op (a quarter of the size).

Running the model (`LiteRTModel`, the LiteRT `predictor.Predictor`) needs only `ai_edge_litert`
(the standalone LiteRT interpreter), not the network code; images are cropped on the host with
TF eager ops (`box_crop.crop_on_host`) so that the crop is the one the SavedModel makes.
"""

from __future__ import annotations

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass.serving import client, layout, predictor
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


def read_metadata(path: str) -> dict:
    """FILE.json of FILE.tflite.

    Raises:
        FileNotFoundError: no FILE.tflite, or no FILE.json next to it.
    """
    if not files.exists(path) or files.isdir(path):
        raise FileNotFoundError(f"{path}: no such LiteRT model")
    meta = metadata_path(path)
    if not files.exists(meta) or files.isdir(meta):
        raise FileNotFoundError(f"{meta}: missing; was {path} written by export --format=litert?")
    return json.loads(files.read_bytes(meta))


def signature_runner(path: str, num_threads: int | None = None):
    """The interpreter's `serving_default` runner of FILE.tflite: `images=` crops [1, S, S, 3]
    → {"heatmaps", "keypoints", "scores"} numpy."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=files.read_bytes(path), num_threads=num_threads)
    return interpreter.get_signature_runner(SIGNATURE)  # keeps the interpreter alive


class LiteRTModel:
    """A converted model in `ai_edge_litert`'s interpreter, with its metadata: the LiteRT
    `predictor.Predictor` (one interpreter call per crop; images cropped on the host).

    Attributes:
        path: the .tflite file.
        metadata: FILE.json (joint names, input size, decoder, quantize ...).
        info: the `predictor.ModelInfo` read from it.
        input_size: S.
    """

    def __init__(self, path: str, num_threads: int | None = None):
        self.metadata = read_metadata(path)
        self.path = path
        self.info = predictor.info_from_metadata("litert", path, self.metadata)
        self.input_size = self.info.input_size
        self._runner = signature_runner(path, num_threads)

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

    def heatmaps(self, crops) -> tf.Tensor:
        """Crops → heatmaps float32 [B, H, H, K]; usable inside `tf.function` (the interpreter
        runs in a `tf.numpy_function`)."""
        k = self.info.joint_set.num_joints
        h = int(self.metadata["heatmap_size"])
        out = tf.numpy_function(self._run_heatmaps, [crops], tf.float32, stateful=True)
        return tf.ensure_shape(out, [None, h, h, k])

    def _run_heatmaps(self, crops):
        return self.run(crops)["heatmaps"].astype(np.float32)

    def keypoints(self, crops) -> tuple[np.ndarray, np.ndarray]:
        """Crops → (keypoints [B, K, 2] in crop pixels, scores [B, K]), numpy, from the model."""
        out = self.run(crops)
        return out["keypoints"], out["scores"]

    def predict_image(self, path: str, box=None) -> client.Prediction:
        """One image file, decoded and cropped on the host (`client.predict_on_host`)."""
        return client.predict_on_host(self, path, box)

    def predict_people(self, image, boxes, box_scores=None, pixels=None) -> predictor.People:
        """One image and N boxes: one decode, N host crops, one `run` (`Predictor`)."""
        return client.predict_people_on_host(self, image, boxes, box_scores, pixels)
