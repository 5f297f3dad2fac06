"""Person boxes for the top-down pipeline: where each image's people are.

    source = boxes.from_flags(fv)             # --box, --detections, --detector or none
    found = source.boxes(key, image)          # → `Boxes` (boxes [N, 4], scores [N], ...)

A `BoxSource` answers, for one image, the person boxes (x1, y1, x2, y2) as float32 [N, 4] in
0-based original (upright) pixels with pixel (0, 0)'s centre at (0.0, 0.0), and their scores
float32 [N]. `key` names the image: its file path (or name), or an int (e.g. a video's frame
index, matched as an image_id). Sources:

* `WholeImage`: no boxes given: one box of four zeros (the whole image, `box_crop.fill_box`),
  score 1.
* `FixedBox`: `--box=x1,y1,x2,y2`, the same box for every image, score 1.
* `DetectionsFile`: `--detections=FILE.json`, COCO detection results: a list of
  {"image_id" or "file_name", "bbox": [x, y, w, h], "score", "category_id"} (any detector's
  output; a COCO annotations file {"images", "annotations"} is read too, with the images' file
  names, crowd boxes left out). COCO's coordinates are continuous with the image's top-left
  corner at (0, 0), so pixel centres lie at half-integers: the bbox becomes our box
  (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5). An image file matches an entry whose `file_name`
  has the file's base name, else an entry whose `image_id` equals the file's stem or, when the
  stem is a number, the number (COCO's 000000397133.jpg ↔ 397133).
* `DetectorModel`: `--detector=SAVED_MODEL_DIR`, any SavedModel with the TensorFlow 2 Object
  Detection API's serving signature: `serving_default` takes uint8 [1, H, W, 3] and returns
  `detection_boxes` [1, N, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1] of the image's
  height and width, `detection_scores` [1, N] and `detection_classes` [1, N] (float class ids).
  The API's normalised coordinates are continuous (x = xmin * W is the left edge of the box), so
  our box is (xmin * W - 0.5, ymin * H - 0.5, xmax * W - 0.5, ymax * H - 0.5).

Both detection sources keep the person category (`--person_category` / `--person_class`,
COCO's 1), boxes scoring at least `--min_box_score`, and the `--max_people` best. Boxes are not
checked against the image here: the people path (`predict_lib.find_people`) skips a detected box
that does not fit its image with a warning naming it (`Boxes.origins`).

This module imports TensorFlow only when a detector is loaded, so that commands define their
flags here (`define_flags`) without waiting for TensorFlow to load.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
from absl import flags

from stacked_hourglass.utils import files

PERSON_CATEGORY = 1  # COCO's "person" (category_id in results files, class id in detectors)
DEFAULT_MIN_BOX_SCORE = 0.5
DEFAULT_MAX_PEOPLE = 20
DETECTOR_SIGNATURE = "serving_default"
DETECTOR_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes")


@dataclasses.dataclass(frozen=True)
class Boxes:
    """The person boxes of one image.

    Attributes:
        boxes: float32 [N, 4] (x1, y1, x2, y2), 0-based original pixels; a row of four zeros is
            the whole image.
        scores: float32 [N] the boxes' scores (1 for boxes the user gave).
        origins: N texts naming where each box came from (messages name them), e.g.
            "detections.json entry 12".
        image_id: the image's id in the detections file (None when unknown).
    """

    boxes: np.ndarray
    scores: np.ndarray
    origins: tuple[str, ...]
    image_id: int | str | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, keep: Sequence[bool]) -> Boxes:
        """The boxes where `keep` [N] is true."""
        keep = np.asarray(keep, bool)
        origins = tuple(o for o, k in zip(self.origins, keep, strict=True) if k)
        return Boxes(self.boxes[keep], self.scores[keep], origins, self.image_id)


def make_boxes(boxes, scores, origins, image_id=None) -> Boxes:
    """`Boxes` from lists (float32 [N, 4] and [N] even when N = 0)."""
    return Boxes(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32).reshape(-1),
        tuple(origins),
        image_id,
    )


class BoxSource(Protocol):
    """Where the people of each image are (see the module docstring).

    Attributes:
        needs_pixels: `boxes` reads the decoded image (a detector).
        skip_bad_boxes: the boxes are found, not given: one that does not fit its image is
            skipped with a warning (`predict_lib.screen_boxes`) rather than failing the image.
    """

    needs_pixels: bool
    skip_bad_boxes: bool

    def boxes(self, key: str | int, image=None) -> Boxes:
        """The person boxes of the image `key` names (a file path or name, or an int id).

        Args:
            key: the image's file path (its base name and stem are matched) or an int id.
            image: uint8 [H, W, 3], the decoded upright image; only a detector reads it.
        """

    def check_keys(self, keys: Sequence[str | int]) -> None:
        """Raises ValueError (one line) when this source can answer for none of `keys` (a
        detections file for other images); nothing otherwise."""


class WholeImage:
    """No boxes given: the whole image is one person (a box of four zeros, score 1)."""

    needs_pixels = False
    skip_bad_boxes = False

    def boxes(self, key, image=None) -> Boxes:
        return make_boxes([[0.0, 0.0, 0.0, 0.0]], [1.0], ["the whole image"])

    def check_keys(self, keys) -> None:
        return None


class FixedBox:
    """`--box`: the same box (float32 [4] x1, y1, x2, y2) for every image, score 1."""

    needs_pixels = False
    skip_bad_boxes = False

    def __init__(self, box):
        self.box = np.asarray(box, np.float32).reshape(4)

    def boxes(self, key, image=None) -> Boxes:
        return make_boxes([self.box], [1.0], ["--box"])

    def check_keys(self, keys) -> None:
        return None


def coco_bbox_to_box(bbox) -> list[float]:
    """COCO's [x, y, w, h] (continuous, pixel centres at half-integers) → our (x1, y1, x2, y2)
    with pixel centres at integers: (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5)."""
    x, y, w, h = (float(v) for v in bbox)
    return [x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5]


def normalized_to_box(yxyx, height: int, width: int) -> np.ndarray:
    """The TF Object Detection API's normalised (ymin, xmin, ymax, xmax) [..., 4], continuous
    (x = xmin * W is the box's left edge), → our (x1, y1, x2, y2) [..., 4] float32 pixels with
    pixel centres at integers (the edge minus 0.5)."""
    yxyx = np.asarray(yxyx, np.float64)
    scale = np.array([width, height, width, height], np.float64)
    xyxy = yxyx[..., [1, 0, 3, 2]] * scale - 0.5
    return xyxy.astype(np.float32)


def _keep_best(rows: list[tuple[float, list[float], str]], max_people: int):
    """The rows (score, box, origin) sorted by score, best first, at most `max_people` (0: all)."""
    rows = sorted(rows, key=lambda row: -row[0])
    return rows[:max_people] if max_people > 0 else rows


@dataclasses.dataclass(frozen=True)
class _Detection:
    """One parsed entry of a detections file."""

    index: int
    image_id: int | str | None
    file_name: str | None
    box: list[float]
    score: float
    category: int


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _parse_entry(entry, index: int, file_names: dict) -> _Detection:
    """One entry of a detections list → `_Detection`; ValueError (without the file) if bad."""
    if not isinstance(entry, dict):
        raise ValueError(f"must be an object, got {type(entry).__name__}")
    bbox = entry.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise ValueError(f'"bbox" must be [x, y, w, h], got {bbox!r}')
    values = [_number(v, '"bbox"') for v in bbox]
    if values[2] <= 0 or values[3] <= 0:
        raise ValueError(f'"bbox" {bbox!r} has a width or height that is not positive')
    image_id = entry.get("image_id")
    if image_id is not None and (isinstance(image_id, bool) or not isinstance(image_id, int | str)):
        raise ValueError(f'"image_id" must be an integer or a string, got {image_id!r}')
    file_name = entry.get("file_name", file_names.get(image_id))
    if file_name is not None and not isinstance(file_name, str):
        raise ValueError(f'"file_name" must be a string, got {file_name!r}')
    if image_id is None and file_name is None:
        raise ValueError('has neither "image_id" nor "file_name"')
    category = entry.get("category_id", PERSON_CATEGORY)
    if isinstance(category, bool) or not isinstance(category, int):
        raise ValueError(f'"category_id" must be an integer, got {category!r}')
    score = _number(entry.get("score", 1.0), '"score"')
    box = coco_bbox_to_box(values)
    base = None if file_name is None else os.path.basename(file_name)
    return _Detection(index, image_id, base, box, score, category)


def _entries(payload, path: str) -> tuple[list, dict]:
    """(the entries, {image id: file name}) of a results list or an annotations file."""
    if isinstance(payload, list):
        return payload, {}
    if isinstance(payload, dict) and isinstance(payload.get("annotations"), list):
        images = payload.get("images") or []
        names = {
            image.get("id"): image.get("file_name")
            for image in images
            if isinstance(image, dict) and isinstance(image.get("file_name"), str)
        }
        # Crowd boxes hold many people: not one person's box (None: skipped, indices kept).
        entries = [
            None if isinstance(a, dict) and a.get("iscrowd") else a for a in payload["annotations"]
        ]
        return entries, names
    raise ValueError(
        f"{path}: not COCO detection results (expected a JSON list of "
        '{"image_id" or "file_name", "bbox", "score", "category_id"} or an annotations file)'
    )


def read_detections(path: str) -> list[_Detection]:
    """Every entry of a detections file (crowd annotations left out).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file and, for a malformed entry, its index and field.
    """
    if not files.exists(path):
        raise FileNotFoundError(f"--detections={path}: no such file")
    try:
        payload = json.loads(files.read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON file ({e})") from None
    entries, names = _entries(payload, path)
    detections = []
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        try:
            detections.append(_parse_entry(entry, index, names))
        except ValueError as e:
            raise ValueError(f"{path}: entry {index}: {e}") from None
    return detections


def _stem_keys(key: str | int) -> tuple[str | None, set]:
    """(base name, the image ids an image file matches) of a key (see the module docstring)."""
    if isinstance(key, int):
        return None, {key, str(key)}
    base = os.path.basename(str(key))
    stem = os.path.splitext(base)[0]
    ids: set = {stem}
    if stem.isdigit():
        ids.add(int(stem))
    return base, ids


class DetectionsFile:
    """`--detections=FILE.json`: COCO detection results (see the module docstring).

    Attributes:
        path: the file.
        detections: its entries of the person category scoring at least `min_score`.
    """

    needs_pixels = False
    skip_bad_boxes = True

    def __init__(
        self,
        path: str,
        min_score: float = DEFAULT_MIN_BOX_SCORE,
        category: int = PERSON_CATEGORY,
        max_people: int = DEFAULT_MAX_PEOPLE,
    ):
        self.path = path
        self.max_people = int(max_people)
        self._every = read_detections(path)
        self.detections = [
            d for d in self._every if d.category == category and d.score >= min_score
        ]
        self._by_name: dict = {}
        self._by_id: dict = {}
        for d in self._every:
            if d.file_name is not None:
                self._by_name.setdefault(d.file_name, []).append(d)
            if d.image_id is not None:
                self._by_id.setdefault(d.image_id, []).append(d)
        self._kept = {id(d) for d in self.detections}

    def _matches(self, key) -> list[_Detection]:
        """Every entry (of any category and score) of the image `key` names."""
        base, ids = _stem_keys(key)
        if base is not None and base in self._by_name:
            return self._by_name[base]
        for image_id in ids:
            if image_id in self._by_id:
                return self._by_id[image_id]
        return []

    def image_id(self, key) -> int | str | None:
        """The image_id of the entries matching `key` (None when none has one)."""
        ids = [d.image_id for d in self._matches(key) if d.image_id is not None]
        return ids[0] if ids else None

    def boxes(self, key, image=None) -> Boxes:
        matches = [d for d in self._matches(key) if id(d) in self._kept]
        name = os.path.basename(self.path)
        rows = [(d.score, d.box, f"{name} entry {d.index}") for d in matches]
        rows = _keep_best(rows, self.max_people)
        return make_boxes(
            [r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows], self.image_id(key)
        )

    def check_keys(self, keys: Iterable) -> None:
        keys = list(keys)
        if keys and not any(self._matches(key) for key in keys):
            raise ValueError(
                f"{self.path}: none of its {len(self._every)} entries names one of the "
                f"{len(keys)} image(s) of this run (e.g. "
                f"{os.path.basename(str(keys[0]))}); entries match an image by file_name, or by "
                "image_id = the file's stem (or its number: 000000397133.jpg is 397133)"
            )


def _detector_problem(function) -> str:
    """What keeps a `serving_default` from being the TF2 Object Detection API's ("" if nothing)."""
    inputs = function.structured_input_signature[1]
    if len(inputs) != 1:
        return f"it takes the inputs {sorted(inputs)}; need one uint8 image [1, H, W, 3]"
    name, spec = next(iter(inputs.items()))
    shape = spec.shape
    if spec.dtype.name != "uint8" or (shape.rank is not None and shape.rank != 4):
        return f"its input {name!r} is {spec.dtype.name} {shape}; need uint8 [1, H, W, 3]"
    if shape.rank == 4 and shape[-1] not in (None, 3):
        return f"its input {name!r} has {shape[-1]} channels; need uint8 [1, H, W, 3]"
    outputs = function.structured_outputs
    missing = [k for k in DETECTOR_OUTPUTS if not isinstance(outputs, dict) or k not in outputs]
    if missing:
        return f"it lacks the output(s) {', '.join(missing)}"
    return ""


class DetectorModel:
    """`--detector=SAVED_MODEL_DIR`: a TF2 Object Detection API SavedModel (module docstring).

    Attributes:
        path: the SavedModel directory.
        person_class: the detector's person class id (COCO's 1).
        min_score: boxes scoring below are dropped.
        max_people: at most this many boxes per image, best first (0: all).
    """

    needs_pixels = True
    skip_bad_boxes = True

    def __init__(
        self,
        path: str,
        person_class: int = PERSON_CATEGORY,
        min_score: float = DEFAULT_MIN_BOX_SCORE,
        max_people: int = DEFAULT_MAX_PEOPLE,
    ):
        """Loads the SavedModel and checks its signature.

        Raises:
            FileNotFoundError: `path` holds no saved_model.pb.
            ValueError: one line naming the SavedModel and what its signature lacks.
        """
        import tensorflow as tf

        if not files.exists(files.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"--detector={path}: not a SavedModel (no saved_model.pb)")
        self.path = path
        self.person_class = int(person_class)
        self.min_score = float(min_score)
        self.max_people = int(max_people)
        self._loaded = tf.saved_model.load(path)  # owns the variables the signature reads
        signatures = self._loaded.signatures
        problem = (
            _detector_problem(signatures[DETECTOR_SIGNATURE])
            if DETECTOR_SIGNATURE in signatures
            else f"it has no {DETECTOR_SIGNATURE} signature (it has: "
            f"{', '.join(sorted(signatures)) or 'none'})"
        )
        if problem:
            raise ValueError(
                f"--detector={path}: not a TF2 Object Detection API detector: {problem} (need "
                f"{DETECTOR_SIGNATURE}: uint8 [1, H, W, 3] → {', '.join(DETECTOR_OUTPUTS)})"
            )
        self._function = signatures[DETECTOR_SIGNATURE]
        self._input, spec = next(iter(self._function.structured_input_signature[1].items()))
        self._size = tuple(spec.shape[1:3]) if spec.shape.rank == 4 else (None, None)

    def _run(self, image: np.ndarray) -> dict:
        """uint8 [H, W, 3] → the detector's outputs (numpy, batch dimension dropped); a
        detector of fixed input size gets the image resized (its boxes are normalised)."""
        import tensorflow as tf

        batch = tf.constant(image[None])
        if None not in self._size and tuple(image.shape[:2]) != self._size:
            batch = tf.cast(tf.round(tf.image.resize(batch, self._size)), tf.uint8)
        outputs = self._function(**{self._input: batch})
        return {k: np.asarray(outputs[k].numpy())[0] for k in DETECTOR_OUTPUTS}

    def boxes(self, key, image=None) -> Boxes:
        """The person boxes the detector finds in `image` (uint8 [H, W, 3], required).

        Raises:
            ValueError: the detector's outputs do not have the contract's shapes.
        """
        if image is None:
            raise ValueError(f"--detector={self.path} needs the decoded image of {key}")
        out = self._run(np.asarray(image, np.uint8))
        found = out["detection_boxes"]
        n = found.shape[0] if found.ndim == 2 else -1
        if (
            found.ndim != 2
            or found.shape[1] != 4
            or any(out[k].shape != (n,) for k in DETECTOR_OUTPUTS[1:])
        ):
            raise ValueError(
                f"--detector={self.path}: outputs detection_boxes {found.shape}, "
                f"detection_scores {out['detection_scores'].shape} and detection_classes "
                f"{out['detection_classes'].shape} per image; need [N, 4], [N] and [N]"
            )
        pixels = normalized_to_box(found, image.shape[0], image.shape[1])
        keep = (np.round(out["detection_classes"]) == self.person_class) & (
            out["detection_scores"] >= self.min_score
        )
        rows = [
            (float(out["detection_scores"][i]), pixels[i].tolist(), f"detector box {i}")
            for i in np.flatnonzero(keep)
        ]
        rows = _keep_best(rows, self.max_people)
        return make_boxes([r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows])

    def check_keys(self, keys) -> None:
        return None


def define_flags(fv: flags.FlagValues) -> None:
    """`--box`, `--detections`, `--detector`, `--min_box_score`, `--person_category`,
    `--person_class` and `--max_people` (what `from_flags` reads)."""
    for name, help_text in (
        ("box", "Person box x1,y1,x2,y2 in original pixels, for every image."),
        ("detections", "COCO detection results JSON (image_id or file_name, bbox, score, "
         "category_id): the person boxes of each image."),
        ("detector", "A TF2 Object Detection API SavedModel (serving_default: uint8 image → "
         "detection_boxes/scores/classes) that finds the people."),
    ):  # fmt: skip
        flags.DEFINE_string(name, None, help_text, flag_values=fv)
    flags.DEFINE_float(
        "min_box_score", DEFAULT_MIN_BOX_SCORE, "Detections scoring below are dropped.",
        lower_bound=0.0, flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "person_category", PERSON_CATEGORY, "The person category_id of --detections.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "person_class", PERSON_CATEGORY, "The person class id of --detector.", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_people", DEFAULT_MAX_PEOPLE, "At most this many people per image, best boxes "
        "first (0: no limit).", lower_bound=0, flag_values=fv,
    )  # fmt: skip


def parse_box(text: str | None) -> np.ndarray | None:
    """ "x1,y1,x2,y2" → float32 [4]; None/empty → None (whole image)."""
    if not text:
        return None
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not np.all(np.isfinite(values)):
        raise ValueError(f"--box={text!r}: expected four numbers x1,y1,x2,y2 (original pixels)")
    if values[2] <= values[0] or values[3] <= values[1]:
        raise ValueError(f"--box={text!r}: need x1 < x2 and y1 < y2")
    return np.asarray(values, np.float32)


def from_flags(fv: flags.FlagValues) -> BoxSource:
    """The `BoxSource` the flags of `define_flags` name (none of them: `WholeImage`).

    Raises:
        ValueError: several of --box, --detections and --detector, a bad --box, a malformed
            detections file or a detector of another signature (one line).
    """
    given = [name for name in ("box", "detections", "detector") if fv[name].value]
    if len(given) > 1:
        raise ValueError(f"give at most one of --box, --detections and --detector, not {given}")
    if fv["box"].value:
        return FixedBox(parse_box(fv["box"].value))
    if fv["detections"].value:
        return DetectionsFile(
            fv["detections"].value,
            fv["min_box_score"].value,
            fv["person_category"].value,
            fv["max_people"].value,
        )
    if fv["detector"].value:
        return DetectorModel(
            fv["detector"].value,
            fv["person_class"].value,
            fv["min_box_score"].value,
            fv["max_people"].value,
        )
    return WholeImage()
