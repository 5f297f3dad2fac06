"""Pose prediction on one's own images with any `predictor.Predictor` (an exported SavedModel,
a LiteRT model, a Keras model directory), and the SavedModel's implementation of it.

For each image `NAME.EXT` this writes, into the output directory:

    NAME.json   {"image": path, "image_size": {"width", "height"}, "box": [x1, y1, x2, y2],
                 "keypoints": {joint name: {"x", "y", "score"}}, "dataset", "flip_test"}
    NAME.png    the image with the predicted skeleton, joints coloured by score

Coordinates are 0-based original-image pixels, (x, y), integer values at pixel centres. The box
is the one `serving_default` used (the whole image, [-0.5, -0.5, W - 0.5, H - 0.5], when none is
given). Images go through the SavedModel's `serving_box` one per call: their sizes differ, and an
error then names the file. The other predictors take crops (`predict_on_host`): the image's
header is checked against the pixel limit, then it is decoded and cropped on the host with the
rule `serving_box` uses (`box_crop`), and the keypoints are mapped back to original pixels.

`predict_each` runs every file and gives a `Failure` (file and one-line reason) for each one that
cannot be used, so that one bad file costs its own output only; `predict_files` is the
all-or-nothing variant (the first bad file raises). Both files of a prediction are written
atomically (`utils.files.atomic_path`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import images
from stacked_hourglass.serving import box_crop, layout, predictor
from stacked_hourglass.serving.boxes import parse_box  # noqa: F401 (client.parse_box)
from stacked_hourglass.serving.layout import resolve_saved_model
from stacked_hourglass.serving.predictor import ModelInfo, People, Predictor
from stacked_hourglass.utils import drawing, files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_ASSERTION_RE = re.compile(r"assertion failed: \[(.*)\]")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One image's prediction.

    Attributes:
        path: the image file.
        image: uint8 [H, W, 3] decoded image (for drawing).
        keypoints: float32 [K, 2] (x, y) 0-based original pixels.
        scores: float32 [K] heatmap peaks.
        box: float32 [4] (x1, y1, x2, y2) the box used.
    """

    path: str
    image: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """A loaded SavedModel and its `assets/joints.json`: the SavedModel's `predictor.Predictor`.

    Attributes:
        path: the version directory loaded.
        serve: the `serving_box` concrete function (image bytes and box in).
        serve_images: the `serving_image_tensor` concrete function (crops in).
        metadata: the parsed joints.json.
        info: the `ModelInfo` read from it (the decoder and the flip test baked in).
        loaded: the loaded SavedModel object; it owns the variables the signatures read, so it
            must live as long as they are called.
        serve_people: the `serving_people` concrete function (one image's bytes and N boxes
            in); None for exports written before it existed.
    """

    path: str
    serve: object
    serve_images: object
    metadata: dict
    info: ModelInfo
    loaded: object
    serve_people: object | None = None

    @property
    def joint_set(self) -> joints.JointSet:
        """For drawing (the packaged one when the dataset is known)."""
        return self.info.joint_set

    def heatmaps(self, crops) -> tf.Tensor:
        """Crops float32 [B, S, S, 3] in [0, 1] → heatmaps [B, H, H, K] (`serving_image_tensor`)."""
        return self.serve_images(images=crops)["heatmaps"]

    def keypoints(self, crops) -> tuple[np.ndarray, np.ndarray]:
        """Crops → (keypoints [B, K, 2] in crop pixels, scores [B, K]), numpy, from the graph."""
        out = self.serve_images(images=tf.convert_to_tensor(crops, tf.float32))
        return out["keypoints"].numpy(), out["scores"].numpy()

    def predict_image(self, path: str, box: np.ndarray | None = None) -> Prediction:
        """One image file through `serving_box` (`predict_image`)."""
        return predict_image(self, path, box)

    def predict_people(self, image, boxes, box_scores=None, pixels=None) -> People:
        """One image and N boxes through `serving_people` (one call; see `Predictor`)."""
        if self.serve_people is None:
            raise ValueError(
                f"{self.path} has no {layout.SERVING_PEOPLE} signature; export it again with "
                "this version for several people per image"
            )
        data = read_image(image)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = self.serve_people(image_bytes=tf.constant(data), boxes=tf.constant(boxes))
        if pixels is None:  # decoded again only for drawing: the graph has checked the bytes
            pixels = decode_on_host(data, max_pixels=0)
        height, width = (int(v) for v in out["image_size"].numpy())
        return People(
            image=pixels,
            image_size=(height, width),
            keypoints=out["keypoints"].numpy(),
            scores=out["scores"].numpy(),
            boxes=out["boxes"].numpy(),
            box_scores=_box_scores(box_scores, len(boxes)),
        )


def load_serving_model(path: str) -> ServingModel:
    """Loads an exported SavedModel (or the latest version of an export directory)."""
    path = resolve_saved_model(path)
    metadata = layout.read_joints_metadata(path)
    loaded = tf.saved_model.load(path)
    for name in (layout.SERVING_BOX, layout.SERVING_IMAGE_TENSOR):
        if name not in loaded.signatures:
            raise ValueError(f"{path} has no {name} signature; export it again with this version")
    metadata.setdefault("decoder", predictor.DEFAULT_DECODER)
    return ServingModel(
        path=path,
        serve=loaded.signatures[layout.SERVING_BOX],
        serve_images=loaded.signatures[layout.SERVING_IMAGE_TENSOR],
        metadata=metadata,
        info=predictor.info_from_metadata("saved_model", path, metadata),
        loaded=loaded,
        serve_people=loaded.signatures.get(layout.SERVING_PEOPLE),
    )


def list_images(
    spec: str, extensions: Sequence[str] = IMAGE_EXTENSIONS, flag: str = "image"
) -> list[str]:
    """Image files from "FILE[,FILE...]" or a directory (its files ending in one of
    `extensions`, any case, sorted); `flag` is the flag messages name (`--video` lists videos).

    Raises:
        FileNotFoundError: a named file or directory does not exist, or a directory holds no
            image files.
    """
    paths = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, name)
                for name in os.listdir(item)
                if name.lower().endswith(tuple(extensions))
                and os.path.isfile(os.path.join(item, name))
            )
            if not found:
                raise FileNotFoundError(f"{item}: no {'/'.join(extensions)} files")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")
    if not paths:
        raise FileNotFoundError(f"--{flag}={spec!r} names no files")
    return paths


def error_summary(error: tf.errors.OpError) -> str:
    """The one meaningful line of a TF error (the graph's assertion text, else the last line)."""
    message = error.message or str(error)
    match = _ASSERTION_RE.search(message)
    if match:
        return match.group(1)
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip()
        and not line.startswith(("Graph execution error", "Detected at node", "<stack", "\t"))
        and not line.strip().startswith("[[")
    ]
    return lines[-1] if lines else type(error).__name__


def predict_image(model: ServingModel, path: str, box: np.ndarray | None = None) -> Prediction:
    """Runs `serving_box` on one image file (four zeros when no box: the whole image).

    Args:
        model: from `load_serving_model`.
        path: image file (JPEG/PNG/BMP/GIF).
        box: float32 [4] x1, y1, x2, y2 in original pixels; None for the whole image.

    Raises:
        tf.errors.InvalidArgumentError: the model rejected the input; the message names it.
    """
    with open(path, "rb") as f:
        data = f.read()
    box = np.zeros(4, np.float32) if box is None else np.asarray(box, np.float32)
    outputs = model.serve(image_bytes=tf.constant([data]), box=tf.constant(box[None]))
    # Decoded again only for drawing; the model has already validated the bytes.
    image = images.decode_upright(data).numpy()
    return Prediction(
        path=path,
        image=image,
        keypoints=outputs["keypoints"].numpy()[0],
        scores=outputs["scores"].numpy()[0],
        box=outputs["box"].numpy()[0],
    )


def output_names(paths: list[str]) -> list[str]:
    """Output stems: the file stem, or stem_ext when two inputs share a stem."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = []
    for path, stem in zip(paths, stems, strict=True):
        if stems.count(stem) > 1:
            stem = f"{stem}_{os.path.splitext(path)[1].lstrip('.')}"
        names.append(stem)
    if len(set(names)) != len(names):
        raise ValueError(f"Several inputs would write the same output name: {paths}")
    return names


def prediction_record(model: Predictor, prediction: Prediction) -> dict:
    """The NAME.json content of a prediction."""
    h, w = prediction.image.shape[:2]
    joint_set = model.info.joint_set
    return {
        "image": prediction.path,
        "image_size": {"width": int(w), "height": int(h)},
        "box": [float(v) for v in prediction.box],
        "dataset": joint_set.name,
        "flip_test": model.info.flip_test,
        "coordinates": "0-based original pixels, (x, y), integer values at pixel centres",
        "keypoints": {
            name: {"x": float(x), "y": float(y), "score": float(s)}
            for name, (x, y), s in zip(
                joint_set.names, prediction.keypoints, prediction.scores, strict=True
            )
        },
    }


def write_prediction(model: Predictor, prediction: Prediction, output_dir: str, name: str):
    """Writes NAME.json and NAME.png, each atomically (a reader never sees half a file); returns
    their paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, f"{name}.json")
    png_path = os.path.join(output_dir, f"{name}.png")
    with files.atomic_path(json_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(prediction_record(model, prediction), f, indent=2)
        f.write("\n")
    overlay = drawing.render_pose(
        prediction.image,
        prediction.keypoints,
        model.info.joint_set,
        scores=prediction.scores,
        title=os.path.basename(prediction.path),
    )
    with files.atomic_path(png_path) as tmp, open(tmp, "wb") as f:
        f.write(tf.io.encode_png(overlay).numpy())
    return json_path, png_path


def format_table(model: Predictor, prediction: Prediction) -> str:
    """A plain-text keypoints table of one prediction."""
    h, w = prediction.image.shape[:2]
    box = ", ".join(f"{v:.1f}" for v in prediction.box)
    lines = [f"{prediction.path} ({w}x{h}, box [{box}])", f"  {'joint':<12}{'x':>9}{'y':>9}  score"]
    for name, (x, y), s in zip(
        model.info.joint_set.names, prediction.keypoints, prediction.scores, strict=True
    ):
        # + 0.0 turns -0.0 into 0.0 for printing.
        lines.append(f"  {name:<12}{x + 0.0:9.1f}{y + 0.0:9.1f}  {s:5.3f}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Failure:
    """An image that could not be predicted.

    Attributes:
        path: the image file.
        reason: one line: why (unreadable file, not an image, a truncated image, above the pixel
            limit, a box that does not fit the image).
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def predict_each(
    model: Predictor, paths: Sequence[str], box: np.ndarray | None = None
) -> Iterator[Prediction | Failure]:
    """Predicts the files one at a time, yielding one result per path, in order.

    A file that cannot be used gives a `Failure` and the next file is tried: one bad file costs
    its own prediction only. Errors that are not about the file (the model failing to run,
    memory) propagate.

    Args:
        model: from `predictor.open_predictor` (its `predict_image`).
        paths: image files.
        box: float32 [4] x1, y1, x2, y2 in original pixels for every image; None: whole image.

    Yields:
        A `Prediction`, or a `Failure` naming the file and the reason.
    """
    for path in paths:
        try:
            result = model.predict_image(path, box)
        except (tf.errors.InvalidArgumentError, ValueError, OSError) as e:
            result = as_failure(path, e)
        yield result


def as_failure(path: str, error: tf.errors.InvalidArgumentError | ValueError | OSError) -> Failure:
    """The `Failure` of a file from the error predicting it raised (one line)."""
    if isinstance(error, tf.errors.InvalidArgumentError):  # the SavedModel's checks name the input
        return Failure(path, error_summary(error))
    if isinstance(error, OSError):  # the file cannot be read
        return Failure(path, error.strerror or str(error))
    return Failure(path, str(error).removeprefix(f"{path}: "))  # the host-side checks


def predict_files(model: Predictor, paths: list[str], box=None) -> list[Prediction]:
    """Predicts every file; the first bad input raises (all or nothing; `predict_each` goes on
    past bad files).

    Raises:
        tf.errors.InvalidArgumentError: a SavedModel's check, the message prefixed by the file's
            path.
        ValueError: a check of the host path (`predict_on_host`), naming the file.
    """
    predictions = []
    for path in paths:
        try:
            predictions.append(model.predict_image(path, box))
        except tf.errors.InvalidArgumentError as e:
            raise tf.errors.InvalidArgumentError(
                e.node_def, e.op, f"{path}: {error_summary(e)}"
            ) from e
    return predictions


def _op_message(error: tf.errors.OpError) -> str:
    """The first line of an eager op's message without TF's `{{function_node ...}}` and
    `[Op:...]` decorations."""
    lines = [line for line in (error.message or "").splitlines() if line.strip()]
    message = re.sub(r"\{\{.*?\}\}|\[Op:[^\]]*\]", "", lines[0] if lines else "").strip()
    return message or type(error).__name__


def decode_on_host(data: bytes, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes → the upright image (a JPEG's EXIF orientation applied,
    `images.decode_upright`) uint8 [H, W, 3], the header checked against `max_pixels` first.

    Args:
        data: JPEG/PNG/BMP/GIF bytes.
        max_pixels: largest height x width accepted (<= 0: no limit); read from the header, so
            a decompression bomb is refused before any decoding.

    Raises:
        ValueError: one line: not an image, an invalid or truncated header, above the limit, or
            bytes the decoder rejects (e.g. a truncated JPEG).
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        # The SavedModel's graph decodes JPEG, PNG, BMP and GIF only; the host path keeps its
        # rule, so an image a LiteRT or Keras model accepts is one the SavedModel accepts.
        raise ValueError(f"image_bytes[0] ({len(data)} bytes) is not a JPEG/PNG/BMP/GIF image")
    try:
        height, width, problem = images.image_header(data)
        reason = problem.numpy().decode("utf-8", "replace")
        if not reason:
            limit = images.pixel_limit_problem(height, width, max_pixels)
            reason = limit.numpy().decode("utf-8", "replace")
        if not reason:
            return images.decode_upright(data).numpy()
    except tf.errors.InvalidArgumentError as e:
        reason = f"cannot be decoded ({_op_message(e)})"
    raise ValueError(f"image_bytes[0] ({len(data)} bytes): image {reason}")


def predict_on_host(model: Predictor, path: str, box: np.ndarray | None = None) -> Prediction:
    """Decodes and crops one image on the host (`box_crop`), runs `model.keypoints`, maps back.

    The image's header is checked first against the model's `max_pixels` (the package default
    when it records none).

    Raises:
        ValueError: not an image, a damaged image, above the pixel limit, or a bad box (the
            serving signatures' messages), prefixed with the path.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        image = decode_on_host(data, model.info.max_pixels or images.DEFAULT_MAX_PIXELS)
        crop, matrix, used = box_crop.crop_on_host(image, box, model.info.input_size)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    keypoints, scores = model.keypoints(crop[None])
    return Prediction(
        path=path,
        image=image,
        keypoints=box_crop.to_original(keypoints[0], matrix),
        scores=scores[0],
        box=used,
    )


def read_image(image: str | bytes) -> bytes:
    """An image file's bytes (`image` a path), or `image` itself (bytes)."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    with open(image, "rb") as f:
        return f.read()


def _box_scores(box_scores, n: int) -> np.ndarray:
    """float32 [n]: the given scores, or ones."""
    if box_scores is None:
        return np.ones(n, np.float32)
    return np.asarray(box_scores, np.float32).reshape(n)


def predict_people_on_host(model: Predictor, image, boxes, box_scores=None, pixels=None) -> People:
    """`Predictor.predict_people` of the host path: one decode (none when `pixels` is given),
    one `box_crop.crop_on_host` per box, one `model.keypoints` call for the N crops.

    Raises:
        ValueError: not an image, a damaged image, above the pixel limit, or a bad box (named by
            its row, "box[2] = ..."); the path is not named (the caller knows it).
        OSError: the file cannot be read.
    """
    if pixels is None:
        pixels = decode_on_host(
            read_image(image), model.info.max_pixels or images.DEFAULT_MAX_PIXELS
        )
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    s, k = model.info.input_size, model.info.joint_set.num_joints
    cropped = [box_crop.crop_on_host(pixels, box, s, index=i) for i, box in enumerate(boxes)]
    keypoints, scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
    if cropped:
        keypoints, scores = model.keypoints(np.stack([c[0] for c in cropped]))
        keypoints = np.stack(
            [box_crop.to_original(kp, c[1]) for kp, c in zip(keypoints, cropped, strict=True)]
        )
    return People(
        image=pixels,
        image_size=(int(pixels.shape[0]), int(pixels.shape[1])),
        keypoints=keypoints.astype(np.float32),
        scores=np.asarray(scores, np.float32),
        boxes=np.stack([c[2] for c in cropped]) if cropped else boxes,
        box_scores=_box_scores(box_scores, len(boxes)),
    )
