"""The per-item checks between a dataset source and the shard writer.

A source yields items (`data.sources.source_items`: `PendingExample`, `features.PersonExample`,
`Skipped`); `prepare_record` turns one into serialised `tf.train.Example` bytes or a `Skipped`
(reading a pending person's image, checking the annotation); the writer (`data.records.shards`)
calls it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features, images
from stacked_hourglass.data.sources.source_items import (
    BAD_SCALE,
    CORRUPT_IMAGE,
    FAR_OUTSIDE,
    IMAGE_TOO_LARGE,
    MISSING_IMAGE,
    NAN_ANNOTATION,
    Item,
    PendingExample,
    Skipped,
)
from stacked_hourglass.utils.errors import one_line

# A joint (or the crop centre) more than one image size outside the image is an annotation error
# (e.g. a wrong image or a sign error), not a person partly out of frame.
FAR_OUTSIDE_IMAGE_SIZES = 1.0

# JPEG markers without a length field: TEM and RST0-7 (everything else from SOI to SOS has one).
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_JPEG_END = b"\xff\xd9"


def jpeg_structure_problem(data: bytes, need_end: bool) -> str:
    """Why a JPEG's bytes end too early ("" when they do not), read without libjpeg.

    Every marker segment from SOI up to and including the first SOS (start of scan) must lie
    inside `data`; with `need_end`, an end-of-image marker (FF D9) must follow the scan data (an
    FF D9 cannot occur inside entropy-coded data, whose FF bytes are followed by 00 or a
    restart marker). libjpeg, given a file that ends inside its headers (or a progressive file
    that ends inside a later scan), prints its own line on stderr ("Input file read error",
    "Improper call to JPEG library in state 201") besides the error TensorFlow raises: those
    files are refused here, before libjpeg sees them, so the reason is said once, as ours.

    Args:
        data: the file's bytes, starting with FF D8 (SOI).
        need_end: also require the end-of-image marker (a decode to the end will follow).
    """
    size, pos = len(data), 2
    while True:
        start = data.find(b"\xff", pos)  # libjpeg skips stray bytes before a marker too
        while 0 <= start < size - 1 and data[start + 1] == 0xFF:
            start += 1  # fill bytes
        if start < 0 or start + 2 > size:
            return f"is truncated: it ends at byte {size}, inside its headers (no start of scan)"
        marker, pos = data[start + 1], start + 2
        if marker in _JPEG_STANDALONE or marker == 0:  # FF 00 outside a scan: stray bytes
            continue
        if marker == _JPEG_EOI:
            return f"ends (end-of-image marker at byte {start}) before any scan data"
        end = pos + int.from_bytes(data[pos : pos + 2], "big") if pos + 2 <= size else size + 1
        if end > size:
            return (
                f"is truncated: its FF {marker:02X} segment at byte {start} runs past the end of "
                f"the file ({size} bytes)"
            )
        pos = end
        if marker == _JPEG_SOS:
            break
    if need_end and data.rfind(_JPEG_END, pos) < 0:
        return f"is truncated: no end-of-image marker (FF D9) after its scan data ({size} bytes)"
    return ""


def image_size(data: bytes, name: str = "") -> tuple[int, int]:
    """(height, width) of an encoded image, read from its header only (`images.image_header`:
    JPEG, PNG, GIF, BMP, WebP); nothing is decoded. The upright size: a JPEG's EXIF orientation
    5-8 swaps the stored height and width (annotations are read in the upright image's pixels).

    Raises:
        ValueError: naming `name` when the bytes are not an image of those formats or their
            header is truncated or invalid.
    """
    jpeg = data[:3] == b"\xff\xd8\xff"
    problem = jpeg and jpeg_structure_problem(data, need_end=False)
    if problem:
        raise ValueError(f"{name}: not a readable image (a JPEG that {problem})")
    try:
        if jpeg:  # the common case: two ops, not ~40 eager ones
            height, width = tf.image.extract_jpeg_shape(data).numpy()[:2]
            height, width = images.upright_size(height, width, images.exif_orientation(data))
            return int(height), int(width)
        height, width, problem = images.image_header(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as e:
        raise ValueError(f"{name}: not a readable image ({one_line(e)})") from None
    problem = problem.numpy().decode("utf-8")
    if problem:
        raise ValueError(f"{name}: not a readable image (it {problem})")
    return int(height), int(width)


def _skip(example: features.PersonExample, reason: str, detail: str) -> Skipped:
    return Skipped(example.filename, int(example.index), int(example.person), reason, detail)


def _far_outside(
    example: features.PersonExample, center: np.ndarray, keypoints: np.ndarray, annotated
) -> Skipped | None:
    """A `FAR_OUTSIDE` skip when an annotated joint or the centre is far outside the image."""
    size = np.asarray([example.width, example.height], np.float64)
    lo, hi = -FAR_OUTSIDE_IMAGE_SIZES * size, (1 + FAR_OUTSIDE_IMAGE_SIZES) * size
    points = np.concatenate([keypoints[annotated], center[None]], axis=0)
    bad = np.any((points < lo) | (points > hi), axis=1)
    if not np.any(bad):
        return None
    where = np.flatnonzero(bad)[0]
    what = "center" if where == len(points) - 1 else f"joint {np.flatnonzero(annotated)[where]}"
    return _skip(
        example,
        FAR_OUTSIDE,
        f"{what} at {points[where].tolist()} is far outside the "
        f"{example.width}x{example.height} image",
    )


def check_example(example: features.PersonExample) -> Skipped | None:
    """Checks the annotation of a complete example; returns a `Skipped` or None if it is fine.

    Checked: NaN/inf in center, scale, annotated keypoints or normalizer; scale <= 0; an annotated
    joint or the centre more than `FAR_OUTSIDE_IMAGE_SIZES` image sizes outside the image (needs
    height/width, so only when they are known, i.e. > 0).
    """
    center = np.asarray(example.center, np.float64)
    keypoints = np.asarray(example.keypoints, np.float64).reshape(-1, 2)
    status = np.asarray(example.keypoint_status).reshape(-1)
    annotated = status != features.NOT_ANNOTATED
    values = {
        "person/center": center,
        "person/scale": np.asarray([example.scale], np.float64),
        "person/keypoints": keypoints[annotated],
        "person/normalizer": np.asarray([example.normalizer], np.float64),
    }
    for field, value in values.items():
        if not np.all(np.isfinite(value)):
            return _skip(example, NAN_ANNOTATION, f"{field} has NaN/inf: {value.tolist()}")
    if example.scale <= 0:
        return _skip(example, BAD_SCALE, f"person/scale = {example.scale}")
    if example.height > 0 and example.width > 0:
        return _far_outside(example, center, keypoints, annotated)
    return None


def load_example(
    item: PendingExample,
    verify_images: bool = False,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
) -> features.PersonExample | Skipped:
    """Reads a pending example's image bytes and size; a bad image gives a `Skipped`.

    Args:
        item: the annotation and image path.
        verify_images: decode the image to its end (`images.decode_check`: catches truncated
            and corrupt files); otherwise only the header is parsed.
        max_pixels: an image with more pixels (height x width, from its header) is skipped
            (`IMAGE_TOO_LARGE`) without being decoded; <= 0: no limit.
    """
    example, path = item.example, item.image_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _skip(example, MISSING_IMAGE, f"{path}: no such file")
    except OSError as e:
        return _skip(example, MISSING_IMAGE, f"{path}: cannot read ({e.strerror or e})")
    try:
        height, width = image_size(data, str(path))
        if 0 < max_pixels < height * width:
            return _skip(
                example,
                IMAGE_TOO_LARGE,
                f"{path}: {width}x{height} (width x height) = {height * width} pixels, above "
                f"the limit max_pixels = {max_pixels} (a decompression bomb?); not decoded",
            )
        if verify_images:
            problem = data[:3] == b"\xff\xd8\xff" and jpeg_structure_problem(data, need_end=True)
            if problem:
                return _skip(example, CORRUPT_IMAGE, f"{path}: a JPEG that {problem}")
            images.decode_check(data)
    except (ValueError, tf.errors.OpError) as e:
        return _skip(example, CORRUPT_IMAGE, one_line(e))
    return dataclasses.replace(example, image_encoded=data, height=height, width=width)


def complete_item(
    item: Item, verify_images: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS
) -> features.PersonExample | Skipped:
    """Reads a pending item's image and checks the person; a complete example or a `Skipped`.

    `max_pixels`: see `load_example`; a complete example's image is held to it too (its size
    read from the header, whatever `height`/`width` say).
    """
    if isinstance(item, Skipped):
        return item
    if isinstance(item, PendingExample):
        skipped = check_example(item.example)  # before reading the image: cheaper
        if skipped is not None:
            return skipped
        item = load_example(item, verify_images, max_pixels)
        if isinstance(item, Skipped):
            return item
    elif max_pixels > 0:
        try:
            height, width = image_size(item.image_encoded, item.filename)
        except ValueError as e:
            return _skip(item, CORRUPT_IMAGE, str(e))
        if height * width > max_pixels:
            return _skip(
                item,
                IMAGE_TOO_LARGE,
                f"{item.filename}: {width}x{height} (width x height) = {height * width} pixels, "
                f"above the limit max_pixels = {max_pixels}; not decoded",
            )
    return check_example(item) or item


def prepare_record(
    item: Item, verify_images: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS
) -> bytes | Skipped:
    """Turns one item into serialised `tf.train.Example` bytes, or a `Skipped`."""
    item = complete_item(item, verify_images, max_pixels)
    return item if isinstance(item, Skipped) else features.serialize_example(item)
