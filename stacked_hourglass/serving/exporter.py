"""Exports a trained stacked hourglass as a versioned SavedModel for TF Serving (DESIGN.md,
*Contracts with the outside*).

Layout written (TF Serving watches EXPORT_DIR and loads the highest integer subdirectory):

    EXPORT_DIR/<version>/saved_model.pb
    EXPORT_DIR/<version>/variables/...
    EXPORT_DIR/<version>/assets/joints.json   joint names, skeleton, dataset, input size, flip_test

Signatures (coordinates are 0-based pixels, (x, y), integer values at pixel centres; see
`transforms`). `K` joints, `S` crop side, `H = S / 4` heatmap side:

* `serving_default`: `image_bytes` string [B] (JPEG/PNG/BMP/GIF file bytes; images in a batch may
  have different sizes) → `keypoints` float32 [B, K, 2] in original pixels, `scores` float32
  [B, K] (heatmap peak), `image_size` int32 [B, 2] (height, width) and `box` float32 [B, 4] (the
  whole image, [-0.5, -0.5, W - 0.5, H - 0.5]). Bytes only: what a REST client sends.
* `serving_box`: `image_bytes` [B] and `box` float32 [B, 4] (x1, y1, x2, y2 of the person in
  original pixels; four zeros = the whole image, since serving signatures cannot have optional
  inputs) → the same outputs. The crop is a square of side `1.25 * max(x2 - x1, y2 - y1)`
  centred on the box centre (`center = box centre`, `scale = 1.25 * max(w, h) / 200`: the MPII
  convention where a crop side is `200 * scale` and includes a 25% margin), resized to S x S;
  the rule, and the checks of the box, are `box_crop`'s (the LiteRT host path uses it too).
* `serving_heatmaps`: as `serving_box`, plus `heatmaps` float32 [B, H, H, K].
* `serving_people`: several people of one image: `image_bytes` string [] (one image) and `boxes`
  float32 [N, 4] (the people's boxes, four zeros = the whole image; N may be 0) → `keypoints`
  float32 [N, K, 2] in original pixels, `scores` float32 [N, K], `image_size` int32 [2] and
  `boxes` float32 [N, 4] (the boxes used). The bytes are checked once, each box is checked and
  cropped as `serving_box` does (`geometry.decode_crop`: the window it reads; the same crop, so
  the same keypoints as N `serving_box` calls), and the N crops go through the network as one
  batch.
* `serving_image_tensor`: `images` float32 [B, S, S, 3] in [0, 1] (already cropped) → `keypoints`
  in crop pixels, `scores`, `heatmaps`.

The heatmap decoder ("quarter" or "dark", `data.codec`) and the flip test run in the graph and
are recorded in joints.json. Images above `max_pixels` (read from the file header, before
decoding) are refused. The crop is the training pipeline's (`geometry.decode_crop`): only the
window the crop reads is decoded (a JPEG downscaled in the DCT domain when the crop shrinks it
2x or more) and averaged down to the crop's scale before the warp; `image_size` is read from the
header.

Phone photos: a JPEG's EXIF orientation is applied in the graph (`images.exif_orientation`), so a
client sends the bytes as the phone wrote them. `image_size`, `box` (in and out) and `keypoints`
are all in the upright image's pixels.

Bad inputs fail in the graph with `InvalidArgumentError` whose message names the input
("image_bytes[1] ... is not a JPEG/PNG/BMP/GIF image", "image_bytes[0] is a truncated JPEG",
"box[0] = [...] has zero or negative area", "images has spatial size ...", "images has 3
non-finite values").
"""

from __future__ import annotations

import functools
import json

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import joints, run_dir
from stacked_hourglass.data import geometry
from stacked_hourglass.data import images as image_header
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.images import DEFAULT_MAX_PIXELS
from stacked_hourglass.model import inference
from stacked_hourglass.serving import box_crop
from stacked_hourglass.serving.layout import (
    JOINTS_ASSET,
    SERVING_BOX,
    SERVING_DEFAULT,
    SERVING_HEATMAPS,
    SERVING_IMAGE_TENSOR,
    SERVING_PEOPLE,
    joints_metadata,
    next_version,
)
from stacked_hourglass.utils import files

# Leading bytes of the formats tf.io.decode_image reads; checked before decoding so that a bad
# input gets a message naming it instead of a decoder error.
_MAGIC_BYTES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
)


class _ServingModule(tf.Module):
    """Tracks the Keras model and holds the serving functions."""

    def __init__(
        self,
        model: keras.Model,
        joint_set: joints.JointSet,
        input_size: int,
        flip_test,
        codec: HeatmapCodec,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(name="stacked_hourglass_serving")
        self.model = model
        self._input_size = int(input_size)
        self._codec = codec
        self._max_pixels = int(max_pixels)
        self._num_joints = joint_set.num_joints
        self._flip_permutation = joint_set.flip_permutation() if flip_test else None
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        box_spec = tf.TensorSpec([None, 4], tf.float32, name="box")
        # Written with tf.cond/tf.where, never Python control flow on tensors: autograph's
        # conversion of the package's code would only cost time.
        graph = functools.partial(tf.function, autograph=False)
        # The network and the bytes-to-keypoints path are functions of their own, traced once
        # and called by every signature that needs them (rather than traced into each).
        s = self._input_size
        self._network = graph(
            self._heatmaps_of_crops, input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32)]
        )
        one_image = tf.TensorSpec([], tf.string)
        index = tf.TensorSpec([], tf.int32)
        self._header_fn = graph(self._checked_header, input_signature=[one_image, index])
        self._crop_fn = graph(
            self._crop_one,
            input_signature=[(one_image, tf.TensorSpec([4], tf.float32), index)],
        )
        self._predict_fn = graph(self._predict, input_signature=[bytes_spec, box_spec])
        self.serve_bytes = graph(self._serve_bytes, input_signature=[bytes_spec])
        self.serve_box = graph(self._serve_box, input_signature=[bytes_spec, box_spec])
        self.serve_heatmaps = graph(self._serve_heatmaps, input_signature=[bytes_spec, box_spec])
        self.serve_people = graph(
            self._serve_people,
            input_signature=[
                tf.TensorSpec([], tf.string, name="image_bytes"),
                tf.TensorSpec([None, 4], tf.float32, name="boxes"),
            ],
        )
        # Spatial dims are left open in the spec and checked in the graph, so that a wrong size
        # gets a message naming the expected size rather than a shape mismatch deep in a conv.
        self.serve_images = graph(
            self._serve_images,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        )

    def signatures(self) -> dict:
        """{signature name: concrete function} for `tf.saved_model.save`."""
        return {
            SERVING_DEFAULT: self.serve_bytes.get_concrete_function(),
            SERVING_BOX: self.serve_box.get_concrete_function(),
            SERVING_HEATMAPS: self.serve_heatmaps.get_concrete_function(),
            SERVING_IMAGE_TENSOR: self.serve_images.get_concrete_function(),
            SERVING_PEOPLE: self.serve_people.get_concrete_function(),
        }

    def _heatmaps_of_crops(self, crops):
        # `predict_heatmaps` expects a dict-output callable; the model is one.
        return inference.predict_heatmaps(self.model, crops, self._flip_permutation)

    def _heatmaps(self, crops):
        return self._network(crops)

    def _serve_images(self, images):
        s = self._input_size
        shape = tf.shape(images)
        check = tf.debugging.Assert(
            tf.logical_and(tf.equal(shape[1], s), tf.equal(shape[2], s)),
            [
                tf.strings.format(
                    "images has spatial size {}x{} (height x width); this model expects "
                    + f"{s}x{s} crops, float32 in [0, 1]",
                    (shape[1], shape[2]),
                )
            ],
        )
        bad = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(images)), tf.int32))
        finite = tf.debugging.Assert(
            tf.equal(bad, 0),
            [
                tf.strings.format(
                    "images has {} non-finite values (NaN or inf); crops must be float32 in [0, 1]",
                    bad,
                )
            ],
        )
        with tf.control_dependencies([check, finite]):
            images = tf.ensure_shape(tf.identity(images), [None, s, s, 3])
        heatmaps = self._heatmaps(images)
        keypoints, scores = self._codec.decode(heatmaps)
        return {"keypoints": keypoints, "scores": scores, "heatmaps": heatmaps}

    def _serve_bytes(self, image_bytes):
        zeros = tf.zeros([tf.shape(image_bytes)[0], 4], tf.float32)
        outputs = self._predict_fn(image_bytes, zeros)
        del outputs["heatmaps"]
        return outputs

    def _serve_box(self, image_bytes, box):
        outputs = self._predict_fn(image_bytes, box)
        del outputs["heatmaps"]
        return outputs

    def _serve_heatmaps(self, image_bytes, box):
        return self._predict_fn(image_bytes, box)

    def _predict(self, image_bytes, box):
        n_images, n_boxes = tf.shape(image_bytes)[0], tf.shape(box)[0]
        checks = [
            tf.debugging.Assert(
                n_images > 0,
                ["image_bytes holds no images (an empty batch); send at least one image"],
            ),
            tf.debugging.Assert(
                tf.equal(n_images, n_boxes),
                [
                    tf.strings.format(
                        "box has {} rows but image_bytes has {} images; send one box per image "
                        "(four zeros for the whole image)",
                        (n_boxes, n_images),
                    )
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            index = tf.range(n_images)
        crops, matrices, sizes, boxes = tf.map_fn(
            self._crop_fn, (image_bytes, box, index), fn_output_signature=self._crop_specs()
        )
        heatmaps = self._heatmaps(crops)
        keypoints, scores = self._codec.decode_to_original(heatmaps, matrices)
        return {
            "keypoints": keypoints,
            "scores": scores,
            "heatmaps": heatmaps,
            "image_size": sizes,
            "box": boxes,
        }

    def _serve_people(self, image_bytes, boxes):
        # The bytes are checked once, before any crop: each crop's own check of them (in
        # `_crop_one`, shared with `serving_box`) then passes, and an error names index 0.
        height, width = self._header_fn(image_bytes, tf.constant(0))
        size = tf.cast(tf.stack([height, width]), tf.int32)
        with tf.control_dependencies([size]):
            boxes = tf.identity(boxes)
        n = tf.shape(boxes)[0]
        crops, matrices, _, used = tf.map_fn(
            self._crop_fn,
            (tf.fill([n], image_bytes), boxes, tf.range(n)),
            fn_output_signature=self._crop_specs(),
        )
        k = self._num_joints

        def network():
            return self._codec.decode_to_original(self._heatmaps(crops), matrices)

        def nobody():  # the network's batch norms refuse an empty batch
            return tf.zeros([0, k, 2], tf.float32), tf.zeros([0, k], tf.float32)

        keypoints, scores = tf.cond(n > 0, network, nobody)
        return {"keypoints": keypoints, "scores": scores, "image_size": size, "boxes": used}

    def _crop_specs(self):
        """The `fn_output_signature` of `_crop_one`."""
        s = self._input_size
        return (
            tf.TensorSpec([s, s, 3], tf.float32),
            tf.TensorSpec([3, 3], tf.float32),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([4], tf.float32),
        )

    def _checked_header(self, data, i):
        """(height, width) int64 [] of one image's header, after `_check_bytes`'s assertions
        (a function's outputs exist only once every assertion in it has run)."""
        checked, height, width = self._check_bytes(data, i)
        with tf.control_dependencies([checked]):
            return tf.identity(height), tf.identity(width)

    def _check_bytes(self, data, i):
        """Assertions on one image's bytes, in order, before anything decodes them.

        Returns:
            (the last assertion, height int64 [], width int64 [] from the header).
        """
        length = tf.strings.length(data)
        is_image = tf.reduce_any(
            [tf.equal(tf.strings.substr(data, 0, len(m)), m) for m in _MAGIC_BYTES]
        )
        checks = [
            tf.debugging.Assert(length > 0, [tf.strings.format("image_bytes[{}] is empty", i)]),
            tf.debugging.Assert(
                tf.logical_or(tf.equal(length, 0), is_image),
                [
                    tf.strings.format(
                        "image_bytes[{}] ({} bytes) is not a JPEG/PNG/BMP/GIF image", (i, length)
                    )
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            # A JPEG ends with the EOI marker (FF D9), a PNG with its IEND chunk; a file cut
            # short (an interrupted upload) lacks it, and the decoder's own error would not say
            # which image of the batch it was.
            kind, complete = _truncation_check(tf.identity(data))
        truncated = tf.debugging.Assert(
            complete,
            [
                tf.strings.join(
                    [
                        tf.strings.format(
                            "image_bytes[{}] ({} bytes) is a truncated ", (i, length)
                        ),
                        kind,
                    ]
                )
            ],
        )
        with tf.control_dependencies([truncated]):
            height, width, problem = image_header.image_header(tf.identity(data))
        header = tf.debugging.Assert(
            tf.equal(problem, ""),
            [tf.strings.join([tf.strings.format("image_bytes[{}] ", i), problem])],
        )
        with tf.control_dependencies([header]):
            limit = image_header.pixel_limit_problem(height, width, self._max_pixels)
        too_big = tf.debugging.Assert(
            tf.equal(limit, ""),
            [tf.strings.join([tf.strings.format("image_bytes[{}] ", i), limit])],
        )
        return too_big, height, width

    def _crop_one(self, args):
        """One image's bytes and box → (crop [S, S, 3], matrix [3, 3], (H, W), box used [4])."""
        data, box, i = args
        height, width = self._header_fn(data, i)
        # The header gives the size the decoder will: the whole-image box and the box check
        # need no decoded pixels, and the crop then decodes only what it reads.
        size = tf.cast(tf.stack([height, width]), tf.int32)
        box = box_crop.fill_box(box, size)
        box_checks = [
            tf.debugging.Assert(ok, [message])
            for ok, message in box_crop.box_problems(box, size, i)
        ]
        with tf.control_dependencies(box_checks):
            matrix = box_crop.box_matrix(box, self._input_size)
            data = tf.identity(data)
        crop = geometry.decode_crop(data, matrix, self._input_size)
        return crop, matrix, size, box


def _truncation_check(data):
    """(format name, complete) of encoded bytes: JPEG needs an EOI marker and PNG an IEND chunk
    within their last 64 bytes (trailing padding is tolerated); other formats pass."""
    tail = tf.strings.substr(data, tf.maximum(tf.strings.length(data) - 64, 0), 64)
    raw = tf.cast(
        tf.io.decode_raw(tf.strings.join([tail, b"\x00\x00\x00\x00"]), tf.uint8), tf.int32
    )
    eoi = tf.reduce_any((raw[:-1] == 0xFF) & (raw[1:] == 0xD9))
    iend = tf.reduce_any(
        (raw[:-3] == ord("I"))
        & (raw[1:-2] == ord("E"))
        & (raw[2:-1] == ord("N"))
        & (raw[3:] == ord("D"))
    )
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    kind = tf.where(is_jpeg, "JPEG (no end-of-image marker)", "PNG (no IEND chunk)")
    complete = tf.logical_and(
        tf.logical_or(tf.logical_not(is_jpeg), eoi), tf.logical_or(tf.logical_not(is_png), iend)
    )
    return kind, complete


def check_finite_weights(model: keras.Model) -> None:
    """ValueError naming the first variable with a NaN or inf (training diverged)."""
    for variable in model.weights:
        values = np.asarray(keras.ops.convert_to_numpy(variable.value))
        if not np.all(np.isfinite(values)):
            bad = int(np.sum(~np.isfinite(values)))
            raise ValueError(
                f"the model's weight {variable.path} has {bad} non-finite values (NaN/inf) of "
                f"{values.size}; refusing to export (did training diverge?)"
            )


def export_model(
    model: keras.Model,
    joint_set: joints.JointSet,
    input_size: int,
    export_dir: str,
    flip_test: bool = False,
    version: int | None = None,
    decoder: str = "quarter",
    sigma: float = 1.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    """Writes `model` as `EXPORT_DIR/<version>/` with the five serving signatures.

    The SavedModel is written to a temporary directory next to the final one (named so that TF
    Serving, which only loads integer names, ignores it) and renamed when complete.

    Args:
        model: stacked hourglass `keras.Model` (dict outputs `heatmaps_i`), input [B, S, S, 3].
        joint_set: the joints the model predicts (names, flip permutation for the flip test).
        input_size: S, the crop side; must match the model's input.
        export_dir: the versioned base directory (created if missing).
        flip_test: average with the heatmaps of the mirrored crop inside the graph.
        version: the integer version subdirectory; None = 1 + the highest existing one.
        decoder: the heatmap decoder baked into the graph, "quarter" or "dark" (`data.codec`).
        sigma: the training targets' Gaussian sigma (DARK smooths with it).
        max_pixels: the bytes signatures refuse larger images (header read before decoding);
            0 = no limit.

    Returns:
        The path `EXPORT_DIR/<version>`.

    Raises:
        ValueError: input size or joint count do not match the model, version < 1, an
            unknown decoder, or a weight that is NaN/inf.
        FileExistsError: `EXPORT_DIR/<version>` already exists.
    """
    codec = HeatmapCodec.for_model(input_size, sigma=sigma, decoder=decoder)
    check_finite_weights(model)
    model_size = model.input_shape[1]
    if model_size != input_size:
        raise ValueError(f"input_size={input_size} but the model's input is {model.input_shape}")
    outputs = model(tf.zeros([1, input_size, input_size, 3]), training=False)
    heatmap_shape = outputs[inference.last_output_name(model)].shape
    if heatmap_shape[-1] != joint_set.num_joints:
        raise ValueError(
            f"The model predicts {heatmap_shape[-1]} heatmaps but joint set {joint_set.name!r} "
            f"has {joint_set.num_joints} joints"
        )
    version = next_version(export_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = files.join(export_dir, str(version))
    if files.exists(final):
        raise FileExistsError(f"{final} already exists; pass another --version or remove it")
    signatures = _ServingModule(
        model, joint_set, input_size, flip_test, codec, max_pixels
    ).signatures()
    # The saved root holds only the model (whose variables the signatures capture): saving the
    # module itself would save its `tf.function`s as well, and `tf.saved_model.save` traces
    # those again under its save context, doubling the export's tracing for nothing the
    # signatures do not already give.
    root = tf.Module()
    root.model = model
    # A failed export leaves nothing behind (the error propagates): see `files.atomic_dir`.
    with files.atomic_dir(final) as tmp:
        tf.saved_model.save(root, tmp, signatures=signatures)
        assets = files.join(tmp, "assets")
        files.makedirs(assets)
        metadata = joints_metadata(
            joint_set, input_size, heatmap_shape[1], flip_test, codec.decoder, sigma, max_pixels
        )
        files.write_text(files.join(assets, JOINTS_ASSET), json.dumps(metadata, indent=2) + "\n")
    return final


def export_from_model_dir(
    model_dir: str,
    export_dir: str,
    flip_test: bool = False,
    version: int | None = None,
    decoder: str = "quarter",
) -> str:
    """Exports a training run's final model (or latest checkpoint); see `export_model`.

    Args:
        model_dir: a training directory (config.json + model.keras or checkpoints).
        export_dir: the versioned base directory.
        flip_test: bake the flip test into the graph.
        version: version subdirectory; None = next free integer.
        decoder: "quarter" or "dark", baked into the graph.

    Returns:
        The path `EXPORT_DIR/<version>`.
    """
    config = run_dir.load_config(model_dir)
    model = run_dir.load_model(model_dir)
    return export_model(
        model,
        config.data.joint_set,
        config.model.input_size,
        export_dir,
        flip_test=flip_test,
        version=version,
        decoder=decoder,
        sigma=config.data.sigma,
        max_pixels=config.data.max_pixels,
    )
