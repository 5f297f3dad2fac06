"""Sharded, atomic, deterministic TFRecord writing, and the per-record plumbing readers share.

Readers (`mpii`, `flic`) turn an annotation file into a list of items, in source order:

  * `PendingExample`: a person whose annotation is fine; its image has not been read yet (the
    file is read lazily, by a worker, when the record is written);
  * `features.PersonExample`: a complete person (the synthetic generator yields these);
  * `Skipped`: a person left out, with a reason (e.g. no objpos/scale, NaN in the annotation).

`write_split` turns such items into `SPLIT-00000-of-000NN.tfrecord` shards plus a
`SPLIT.manifest.json`. Item i (0-based, counting skipped items too) goes to shard
`i * num_shards // num_items`: contiguous blocks in source order, so reading the shards in name
order gives the records in the source's row order, whatever `num_workers` is.

Atomicity: every shard and the manifest are written under a temporary name (`*.tmp`) and renamed
to their final names only when all of them are complete; a run killed midway leaves no file under
a final name and does not touch the outputs of an earlier run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Union

import numpy as np
import tensorflow as tf

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.data import features

# A joint (or the crop centre) more than one image size outside the image is an annotation error
# (e.g. a wrong image or a sign error), not a person partly out of frame.
FAR_OUTSIDE_IMAGE_SIZES = 1.0

# Default number of records per shard when `num_shards` is not given (~100-200 MB for MPII).
DEFAULT_RECORDS_PER_SHARD = 1024

# Reason keys used in manifests (free-form details go with them).
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
NAN_ANNOTATION = "nan_in_annotation"
BAD_SCALE = "non_positive_scale"
FAR_OUTSIDE = "joint_far_outside_image"
NO_CENTER = "no_objpos_or_scale"
NO_KEYPOINTS = "no_keypoints"

_SHARD_RE = r"{split}-\d{{5}}-of-\d{{5}}\.tfrecord"


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A person left out of the output.

    Attributes:
        filename: image file name (relative to the images folder), "" if unknown.
        index: image index in the source annotation (0-based), -1 if unknown.
        person: person index in the source annotation (0-based), -1 if unknown.
        reason: a short key (`MISSING_IMAGE`, `NAN_ANNOTATION`, ...), used to count skips.
        detail: a human-readable explanation naming the file/field.
    """

    filename: str
    index: int
    person: int
    reason: str
    detail: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PendingExample:
    """A person whose annotation has been read but whose image has not.

    `example.image_encoded`, `example.height` and `example.width` are placeholders (b"", 0, 0)
    until `load_example` fills them from `image_path`. Coordinates in `example` are already
    0-based (the reader converted them).
    """

    example: features.PersonExample
    image_path: pathlib.Path


Item = Union[PendingExample, features.PersonExample, Skipped]  # noqa: UP007


class NothingWrittenError(RuntimeError):
    """`write_split` refused to publish its output (nothing under a final name was written)."""


class StrictError(NothingWrittenError):
    """Raised by `write_split(strict=True)` when any person was skipped."""


class EmptySplitError(NothingWrittenError):
    """Raised by `write_split` when every person was skipped (e.g. a wrong images folder)."""


def image_size(data: bytes, name: str = "") -> tuple[int, int]:
    """(height, width) of an encoded image, reading only the JPEG header when it is a JPEG.

    Raises:
        ValueError: naming `name` when the bytes are not a decodable image.
    """
    try:
        if data[:3] == b"\xff\xd8\xff":
            shape = tf.image.extract_jpeg_shape(data).numpy()
        else:
            # PNG/BMP/GIF: no header-only op in TF; decoding is the cheap-enough fallback.
            shape = tf.shape(tf.io.decode_image(data, expand_animations=False)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as e:
        raise ValueError(f"{name}: not a readable image ({_first_line(e)})") from None
    return int(shape[0]), int(shape[1])


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _skip(example: features.PersonExample, reason: str, detail: str) -> Skipped:
    return Skipped(example.filename, int(example.index), int(example.person), reason, detail)


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
        size = np.asarray([example.width, example.height], np.float64)
        lo, hi = -FAR_OUTSIDE_IMAGE_SIZES * size, (1 + FAR_OUTSIDE_IMAGE_SIZES) * size
        points = np.concatenate([keypoints[annotated], center[None]], axis=0)
        bad = np.any((points < lo) | (points > hi), axis=1)
        if np.any(bad):
            where = np.flatnonzero(bad)[0]
            what = (
                "center"
                if where == len(points) - 1
                else f"joint {np.flatnonzero(annotated)[where]}"
            )
            return _skip(
                example,
                FAR_OUTSIDE,
                f"{what} at {points[where].tolist()} is far outside the "
                f"{example.width}x{example.height} image",
            )
    return None


def load_example(
    item: PendingExample, verify_images: bool = False
) -> features.PersonExample | Skipped:
    """Reads a pending example's image bytes and size; a bad image gives a `Skipped`.

    Args:
        item: the annotation and image path.
        verify_images: fully decode the image (catches truncated files, costs ~10 ms per image);
            otherwise only the JPEG header is parsed.
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
        if verify_images:
            tf.io.decode_image(data, expand_animations=False)
    except (ValueError, tf.errors.OpError) as e:
        return _skip(example, CORRUPT_IMAGE, _first_line(e))
    return dataclasses.replace(example, image_encoded=data, height=height, width=width)


def complete_item(item: Item, verify_images: bool = False) -> features.PersonExample | Skipped:
    """Reads a pending item's image and checks the person; a complete example or a `Skipped`."""
    if isinstance(item, Skipped):
        return item
    if isinstance(item, PendingExample):
        skipped = check_example(item.example)  # before reading the image: cheaper
        if skipped is not None:
            return skipped
        item = load_example(item, verify_images)
        if isinstance(item, Skipped):
            return item
    return check_example(item) or item


def prepare_record(item: Item, verify_images: bool = False) -> bytes | Skipped:
    """Turns one item into serialised `tf.train.Example` bytes, or a `Skipped`."""
    item = complete_item(item, verify_images)
    return item if isinstance(item, Skipped) else features.serialize_example(item)


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def manifest_name(split: str) -> str:
    return f"{split}.manifest.json"


def file_sha256(path: os.PathLike | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_num_shards(num_items: int) -> int:
    return max(1, math.ceil(num_items / DEFAULT_RECORDS_PER_SHARD))


class Progress:
    """A minimal progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label = max(total, 1), label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw, self.last_decile, self.last_done = 0.0, -1, -1

    def update(self, done: int, force: bool = False):
        """Redraws the bar; `force` for the final state (ends the line on a terminal)."""
        now = time.monotonic()
        fraction = min(done / self.total, 1.0)
        rate = done / max(now - self.start, 1e-9)
        if self.tty:
            if not force and now - self.last_draw < 0.2:
                return
            bar = "#" * int(30 * fraction) + "." * (30 - int(30 * fraction))
            end = "\n" if force else ""
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {rate:.0f} rec/s{end}")
        else:
            decile = int(10 * fraction)
            if done == self.last_done or (decile == self.last_decile and not force):
                return
            self.last_decile = decile
            self.stream.write(
                f"{self.label}: {done}/{self.total} ({100 * fraction:.0f}%) {rate:.0f} rec/s\n"
            )
        self.stream.flush()
        self.last_draw, self.last_done = now, done


@dataclasses.dataclass
class SplitResult:
    """What `write_split` did: final paths, counts and the manifest it wrote."""

    shard_paths: list[pathlib.Path]
    manifest_path: pathlib.Path
    manifest: dict
    removed_stale: list[pathlib.Path]
    seconds: float = 0.0  # wall time of the conversion (kept out of the manifest: determinism)

    @property
    def num_records(self) -> int:
        return self.manifest["num_records"]

    @property
    def skipped(self) -> list[dict]:
        return self.manifest["skipped"]


def summarize_skips(skipped: Sequence[Skipped | dict]) -> dict[str, int]:
    """Reason → count, sorted by reason."""
    counts = collections.Counter(s["reason"] if isinstance(s, dict) else s.reason for s in skipped)
    return dict(sorted(counts.items()))


def _ordered_map(fn: Callable, items: Iterable, num_workers: int) -> Iterable:
    """`map(fn, items)` in order, on a thread pool with a bounded look-ahead window.

    Threads suffice: the work is file reads, TF ops and protobuf serialisation, which release the
    GIL for most of their time. The window bounds memory (each result holds an image).
    """
    if num_workers <= 1:
        yield from map(fn, items)
        return
    window = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 4 * num_workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


def write_split(
    items: Iterable[Item],
    num_items: int,
    output_dir: os.PathLike | str,
    split: str,
    dataset: str,
    num_shards: int | None = None,
    num_workers: int = 1,
    sources: Sequence[os.PathLike | str] = (),
    options: dict | None = None,
    strict: bool = False,
    verify_images: bool = False,
    show_progress: bool = True,
) -> SplitResult:
    """Writes items to `SPLIT-XXXXX-of-NNNNN.tfrecord` shards and `SPLIT.manifest.json`.

    Args:
        items: the persons, in source order (see the module docstring for the item types).
        num_items: how many items `items` yields (fixes the shard of each item up front).
        output_dir: created if missing.
        split: "train", "valid" or "test"; the shard/manifest name prefix.
        dataset: "mpii", "flic" or "synthetic" (the joint names in the manifest come from it).
        num_shards: number of shards; None → about `DEFAULT_RECORDS_PER_SHARD` records per shard.
        num_workers: threads reading images and serialising records; output does not depend on it.
        sources: annotation/split files whose sha256 goes into the manifest.
        options: conversion options to record in the manifest (must not depend on num_workers).
        strict: raise `StrictError` (and write nothing) if any person is skipped.
            Without it, `EmptySplitError` (nothing written) when every person is skipped.
        verify_images: fully decode every image (see `load_example`).
        show_progress: draw a progress bar on stderr.

    Returns:
        A `SplitResult`.

    Raises:
        StrictError: with `strict` when anything was skipped.
        EmptySplitError: when items were given but every one was skipped.
        ValueError: when `items` yields more than `num_items` items.
        Any exception from `items`: temporary files are removed, no final name is created.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", split):
        raise ValueError(f"split must be a simple name, got {split!r}")
    num_shards = num_shards or default_num_shards(num_items)
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    output_dir = pathlib.Path(output_dir)
    created = [d for d in [output_dir, *output_dir.parents] if not d.exists()]
    output_dir.mkdir(parents=True, exist_ok=True)
    joint_set = joints.get_joint_set(dataset)

    final = [output_dir / shard_name(split, s, num_shards) for s in range(num_shards)]
    # The pid keeps two concurrent runs from writing into each other's temporary files.
    temp = [p.with_name(f"{p.name}.tmp{os.getpid()}") for p in final]
    manifest_path = output_dir / manifest_name(split)
    manifest_temp = manifest_path.with_name(f"{manifest_path.name}.tmp{os.getpid()}")
    counts = [0] * num_shards
    skipped: list[Skipped] = []
    start = time.monotonic()
    progress = Progress(num_items, f"{dataset}/{split}") if show_progress else None
    writers = []
    try:
        writers = [tf.io.TFRecordWriter(str(p)) for p in temp]
        results = _ordered_map(lambda item: prepare_record(item, verify_images), items, num_workers)
        done = 0
        for i, record in enumerate(results):
            done = i + 1
            if i >= num_items:
                raise ValueError(f"items yielded more than num_items={num_items} items")
            if isinstance(record, Skipped):
                skipped.append(record)
            else:
                shard = i * num_shards // num_items
                writers[shard].write(record)
                counts[shard] += 1
            if progress:
                progress.update(i + 1)
        if progress:
            progress.update(done, force=True)
        for w in writers:
            w.close()
        writers = []
        if skipped and (strict or not sum(counts)):
            summary = ", ".join(f"{k}: {v}" for k, v in summarize_skips(skipped).items())
            first = skipped[0]
            error = StrictError if strict else EmptySplitError
            raise error(
                f"{'--strict: ' if strict else 'no records: '}{len(skipped)} person(s) skipped "
                f"({summary}); first: {first.filename} index {first.index} person "
                f"{first.person}: {first.detail}"
            )
        manifest = {
            "dataset": dataset,
            "split": split,
            "package_version": stacked_hourglass.__version__,
            "joint_names": list(joint_set.names),
            "num_records": int(sum(counts)),
            "num_shards": num_shards,
            "shards": [
                {
                    "file": p.name,
                    "records": n,
                    "bytes": t.stat().st_size,
                    "sha256": file_sha256(t),
                }
                for p, t, n in zip(final, temp, counts, strict=True)
            ],
            "sources": [
                {"path": str(s), "sha256": file_sha256(s)} for s in sources if s is not None
            ],
            "options": dict(sorted((options or {}).items())),
            "num_skipped": len(skipped),
            "skipped_by_reason": summarize_skips(skipped),
            "skipped": [s.as_dict() for s in skipped],
        }
        manifest_temp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for t, p in zip(temp, final, strict=True):
            os.replace(t, p)
        os.replace(manifest_temp, manifest_path)
    except BaseException:
        for w in writers:
            w.close()
        for t in [*temp, manifest_temp]:
            t.unlink(missing_ok=True)
        for d in created:  # innermost first; leave no trace of a failed run
            try:
                d.rmdir()
            except OSError:
                break
        raise
    # Shards of the same split with another shard count would be picked up by a `SPLIT-*` glob
    # next to the new ones; they belong to a superseded run.
    pattern = re.compile(_SHARD_RE.format(split=re.escape(split)))
    keep = {p.name for p in final}
    stale = sorted(
        p for p in output_dir.iterdir() if pattern.fullmatch(p.name) and p.name not in keep
    )
    for p in stale:
        p.unlink()
    return SplitResult(final, manifest_path, manifest, stale, time.monotonic() - start)


def format_summary(result: SplitResult, max_lines: int = 5) -> str:
    """A few lines for stdout: what was written and what was skipped, by reason."""
    m = result.manifest
    total_bytes = sum(s["bytes"] for s in m["shards"])
    lines = [
        f"Wrote {m['num_records']} {m['dataset']}/{m['split']} records "
        f"({total_bytes / 1e6:.1f} MB) to {len(result.shard_paths)} shard(s): "
        f"{result.shard_paths[0].parent}/{m['split']}-*-of-{m['num_shards']:05d}.tfrecord",
        f"Manifest: {result.manifest_path}",
    ]
    if result.seconds > 0 and m["num_records"]:
        lines.append(
            f"Took {result.seconds:.1f} s: {m['num_records'] / result.seconds:.0f} records/s, "
            f"{total_bytes / 1e6 / result.seconds:.1f} MB/s, "
            f"{total_bytes / m['num_records'] / 1e3:.1f} kB/record"
        )
    if m["num_skipped"]:
        by_reason = ", ".join(f"{k}: {v}" for k, v in m["skipped_by_reason"].items())
        lines.append(f"Skipped {m['num_skipped']} person(s): {by_reason}")
        for s in m["skipped"][:max_lines]:
            lines.append(
                f"  {s['filename']} (index {s['index']}, person {s['person']}): "
                f"{s['reason']}: {s['detail']}"
            )
        if m["num_skipped"] > max_lines:
            lines.append(f"  ... (all listed in {result.manifest_path.name})")
    else:
        lines.append("Skipped nobody.")
    if result.removed_stale:
        lines.append(f"Removed {len(result.removed_stale)} stale shard(s) of an earlier run.")
    return "\n".join(lines)


def read_items(
    dataset: str,
    split: str,
    annotations: os.PathLike | str | None = None,
    images_dir: os.PathLike | str | None = None,
    split_file: os.PathLike | str | None = None,
    ground_truth: os.PathLike | str | None = None,
    num_examples: int = 0,
    seed: int = 0,
) -> tuple[Iterable[Item], int, list[pathlib.Path]]:
    """The items of one dataset split: (items, number of items, source files to fingerprint).

    Args:
        dataset: "mpii" (format by extension of `annotations`), "flic" or "synthetic".
        split: "train", "valid" ("test": MPII `.mat` only).
        annotations, images_dir: the annotation file and images folder (not for synthetic).
        split_file: MPII only, see `mpii.read_split_file`.
        ground_truth: MPII json only, see `mpii.read_json`.
        num_examples, seed: synthetic only.

    Raises:
        FileNotFoundError / ValueError: bad input, naming the file.
    """
    # Imported here: the readers import this module.
    from stacked_hourglass.data.sources import flic, mpii

    if dataset == "synthetic":
        from stacked_hourglass.data.sources import synthetic

        if split not in ("train", "valid"):
            raise ValueError(f"synthetic split must be train or valid, got {split!r}")
        if num_examples < 1:
            raise ValueError(f"synthetic needs num_examples >= 1, got {num_examples}")
        return synthetic.generate_examples(split, num_examples, seed), num_examples, []
    if annotations is None or images_dir is None:
        raise ValueError(f"{dataset} needs an annotations file and an images folder")
    annotations, images_dir = pathlib.Path(annotations), pathlib.Path(images_dir)
    if not annotations.is_file():
        raise FileNotFoundError(f"annotations file {annotations} does not exist")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder {images_dir} does not exist")
    sources = [annotations]
    if dataset == "mpii":
        items = mpii.read_annotations(annotations, images_dir, split, split_file, ground_truth)
        sources += [pathlib.Path(p) for p in (split_file, ground_truth) if p]
    elif dataset == "flic":
        if split_file or ground_truth:
            raise ValueError("FLIC takes no split file or ground truth file")
        items = flic.read_examples_mat(annotations, images_dir, split)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected mpii, flic or synthetic")
    return items, len(items), sources
