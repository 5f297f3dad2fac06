"""Looking inside converted TFRecords: counts, joint-status counts and a few drawn records.

`summarize` counts records per shard and per dataset, and per joint how many records have it
visible / occluded / not annotated. `draw_records` draws the first records (image, skeleton,
joints coloured by status, crop box, head box) to PNG files with matplotlib's Agg backend. Joints
are drawn at their stored 0-based coordinates with pixel (0, 0)'s centre at (0, 0) (matplotlib's
`imshow` convention), so a correct conversion puts them on the body.

A file that is not a TFRecord file or a record that is not a person record is a `ValueError` or
`OSError` naming the file (and record). Every other problem of the records (a damaged shard, a
record with missing, malformed or non-finite fields, an unreadable or too large image) is listed,
with its shard and record index, by `data.records.validate.check_records`, which `summarize`
runs and `format_summary` prints.
"""

from __future__ import annotations

import collections
import glob
import os
import pathlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from stacked_hourglass import joints
from stacked_hourglass.data import features, images
from stacked_hourglass.data.records import validate
from stacked_hourglass.data.records.split import Split
from stacked_hourglass.utils import drawing
from stacked_hourglass.utils.errors import one_line

_STATUS_COLOURS = {features.VISIBLE: "lime", features.OCCLUDED: "orange"}


def expand_files(patterns: Sequence[str]) -> list[str]:
    """Files named by paths or globs (`*`, `?`, `[...]`), sorted, each once.

    Raises:
        ValueError: when no pattern is given.
        FileNotFoundError / IsADirectoryError: naming a path that is not a file or a glob that
            matches no file.
    """
    if not patterns:
        raise ValueError("give one or more TFRecord files (or globs)")
    files = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            # glob's "*" skips hidden names, so half-written `.NAME.PID.tmp` files never match.
            matches = [p for p in glob.glob(pattern) if os.path.isfile(p)]
            if not matches:
                raise FileNotFoundError(f"no file matches {pattern}")
            files += matches
        elif os.path.isdir(pattern):
            raise IsADirectoryError(f"{pattern} is a folder; give its TFRecord files or a glob")
        elif not os.path.isfile(pattern):
            raise FileNotFoundError(f"no such file: {pattern}")
        else:
            files.append(pattern)
    return sorted(dict.fromkeys(files))


def _raw_records(path: str) -> Iterator[bytes]:
    """The serialised records of one file; `ValueError` naming it when it is not a TFRecord.

    A file whose first records read but whose rest does not (a damaged tail) ends early: the
    check (`validate.check_records`) lists that problem.
    """
    count = 0
    try:
        for raw in tf.data.TFRecordDataset(path):
            count += 1
            yield raw.numpy()
    except tf.errors.OpError as e:
        if count:
            return
        raise ValueError(f"{path}: not a readable TFRecord file ({one_line(e)})") from None
    # TF reads a file shorter than one record header as an empty file, without complaint.
    if count == 0 and os.path.getsize(path) > 0:
        raise ValueError(f"{path}: not a readable TFRecord file (bytes but no record)")


def recorded_joint_set(path: str) -> joints.JointSet | None:
    """The joint set the manifest beside the shard `path` records (None without a manifest
    that vouches for it): a shard of a custom set is read with its joints."""
    return Split.from_files([path]).joints()


def _person(
    raw: bytes, path: str, number: int, strict: bool = True, recorded=None
) -> tuple[str, np.ndarray | None, float]:
    """(joint set name, keypoint status, normalizer or 0) of one record; `ValueError` when it is
    no person record. The joints are `recorded` (the shard's manifest's `JointSet`), else the
    built-in set of the record's dataset. A keypoint status of the wrong length or values is an
    error too when `strict`, else None (the check lists it)."""
    where = f"{path}: record {number}"
    try:
        feature = tf.train.Example.FromString(raw).features.feature
        dataset = feature[features.SOURCE_DATASET].bytes_list.value[0].decode("utf-8")
        status = np.asarray(feature[features.KEYPOINT_STATUS].int64_list.value, np.int64)
        normalizer = list(feature[features.NORMALIZER].float_list.value) + [0.0]
    except (DecodeError, IndexError, UnicodeDecodeError):
        raise ValueError(
            f"{where} is not a person record (no {features.SOURCE_DATASET} / "
            f"{features.KEYPOINT_STATUS})"
        ) from None
    try:
        joint_set = recorded or joints.get_joint_set(dataset)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    dataset, num_joints = joint_set.name, joint_set.num_joints
    if status.shape != (num_joints,) or np.any((status < 0) | (status > 2)):
        if not strict:
            return dataset, None, 0.0
        raise ValueError(f"{where}: {dataset} keypoint status {status.tolist()} is not {num_joints}"
                         " values in 0..2")  # fmt: skip
    return dataset, status, float(normalizer[0])


def summarize(
    files: Sequence[str],
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    decode_images: bool = True,
) -> dict:
    """Counts per shard, per joint set, and joint-status counts per joint set and joint; the
    problems `validate.check_records` finds (with the joints of each shard: its manifest's
    joint set, else the built-in set of its records' dataset). With `decode_images`, every
    image is decoded to its end, so that one that does not decode (a truncated JPEG, whose
    header reads fine) is a problem like any other.

    Returns:
        {"shards": {file: count}, "datasets": {joint set name: count},
         "status": {name: int array [K, 3] (not annotated, occluded, visible)},
         "no_normalizer": {name: records without a positive person/normalizer},
         "check": a `validate.CheckReport` of all files,
         "joint_sets": {name: `JointSet`}}
    """
    shards, datasets, status = {}, collections.Counter(), {}
    no_normalizer, file_dataset, joint_sets = collections.Counter(), {}, {}
    for path in files:
        count, recorded = 0, recorded_joint_set(path)
        for count, raw in enumerate(_raw_records(path), 1):
            name, values, normalizer = _person(raw, path, count - 1, False, recorded)
            file_dataset.setdefault(path, name)
            joint_sets.setdefault(name, recorded or joints.get_joint_set(name))
            if values is None:
                continue
            table = status.setdefault(name, np.zeros((len(values), 3), np.int64))
            table[np.arange(len(values)), values] += 1
            datasets[name] += 1
            no_normalizer[name] += int(not normalizer > 0)
        shards[path] = count
    check = validate.CheckReport(list(files), max_pixels=max_pixels, decoded=decode_images)
    empty_ok = Split.from_files(files).empty_ok  # the shards the manifest lists as empty
    for path in files:
        name = file_dataset.get(path)
        num_joints = joint_sets[name].num_joints if name else 1
        one = validate.check_records(
            [path],
            num_joints,
            need_normalizer=False,
            max_pixels=max_pixels,
            decode_images=decode_images,
            empty_ok=empty_ok,
        )
        check.records.update(one.records)
        check.problems += [p for p in one.problems if not p.reason.startswith("no records in")]
        check.bad_records += one.bad_records
    return {
        "shards": shards,
        "datasets": dict(datasets),
        "status": status,
        "no_normalizer": {name: no_normalizer[name] for name in datasets},
        "check": check,
        "joint_sets": joint_sets,
    }


def format_summary(summary: dict) -> str:
    """The lines `inspect_records` prints for a `summarize` result."""
    lines = ["Records per shard:"]
    lines += [f"  {count:7d}  {path}" for path, count in summary["shards"].items()]
    for name, count in summary["datasets"].items():
        missing = summary.get("no_normalizer", {}).get(name, 0)
        if missing:
            lines.append(
                f"Dataset {name}: {missing} of {count} records have no positive "
                f"{features.NORMALIZER} (PCK cannot be computed on them)."
            )
        lines.append(f"Dataset {name}: {count} records. Joint status counts:")
        lines.append(f"  {'joint':12s} {'visible':>8s} {'occluded':>9s} {'missing':>8s}")
        names = (summary.get("joint_sets", {}).get(name) or joints.get_joint_set(name)).names
        for j, row in enumerate(summary["status"][name]):
            lines.append(f"  {names[j]:12s} {row[2]:8d} {row[1]:9d} {row[0]:8d}")
    if "check" in summary:
        lines.append("Check: " + summary["check"].format())
    return "\n".join(lines)


def draw_record(parsed: dict, path: pathlib.Path, joint_set=None) -> None:
    """Draws one parsed record (`features.parse_example_numpy`) to a PNG at `path`, with the
    skeleton of `joint_set` (None: the built-in set of the record's dataset).

    The skeleton is `utils.drawing.draw_pose`'s (right limbs red, left blue: a left/right swap in
    a conversion shows); joints on top are coloured by status (lime visible, orange occluded).
    """
    # Imported here: only drawing needs matplotlib. Figure + FigureCanvasAgg avoids pyplot's
    # global state and any GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    image = images.decode_upright(parsed[features.IMAGE_ENCODED]).numpy()
    joint_set = joint_set or joints.get_joint_set(parsed[features.SOURCE_DATASET])
    keypoints, status = parsed[features.KEYPOINTS], parsed[features.KEYPOINT_STATUS]
    height, width = image.shape[:2]
    figure = Figure(figsize=(8, 8 * height / max(width, 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.imshow(image)
    drawing.draw_pose(axes, keypoints, joint_set, visible=status != features.NOT_ANNOTATED)
    for j in np.flatnonzero(status):
        colour = _STATUS_COLOURS.get(int(status[j]), "red")
        axes.plot(*keypoints[j], "o", color=colour, ms=5, zorder=4)
    cx, cy = parsed[features.CENTER]
    side = features.PIXELS_PER_SCALE * float(parsed[features.SCALE])
    axes.plot(cx, cy, "+", color="magenta", ms=12)
    axes.add_patch(
        Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False, ec="magenta", ls="--")
    )
    x1, y1, x2, y2 = parsed[features.HEADBOX]
    if x2 > x1:
        axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="yellow"))
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    axes.axis("off")
    label = (
        f"{parsed[features.IMAGE_FILENAME]} #{parsed[features.SOURCE_INDEX]}/"
        f"{parsed[features.SOURCE_PERSON]}"
    )
    axes.text(5, 15, label, color="white", fontsize=9, va="top")
    figure.savefig(path)


def draw_records(
    files: Sequence[str], output_dir: os.PathLike | str, num_images: int
) -> list[pathlib.Path]:
    """Draws the first `num_images` records of `files` to PNGs in `output_dir`; their paths."""
    output = pathlib.Path(output_dir)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"output folder {output} is a file, not a folder")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        recorded = recorded_joint_set(path)
        for number, raw in enumerate(_raw_records(path)):
            if len(written) >= num_images:
                return written
            _, status, _ = _person(raw, path, number, recorded=recorded)
            try:
                parsed = features.parse_example_numpy(raw, len(status))
                name = (
                    f"{len(written):03d}_{parsed[features.SOURCE_DATASET]}_"
                    f"{parsed[features.SOURCE_INDEX]}_{parsed[features.SOURCE_PERSON]}.png"
                )
                draw_record(parsed, output / name, recorded)
            except tf.errors.OpError as e:  # a missing key or an undecodable image
                raise ValueError(f"{path}: record {number}: {one_line(e)}") from None
            written.append(output / name)
    return written
