"""Looks inside converted TFRecords: counts, joint-status counts and a few drawn records.

  python -m stacked_hourglass.datasets.inspect tfrecords/mpii/valid-*.tfrecord \
      [--output_dir=DIR] [--num_images=N]

Prints the number of records per shard and per dataset, and per joint how many records have it
visible / occluded / not annotated. With `--output_dir`, draws the first `--num_images` records
(image, joints coloured by status, skeleton, crop box, head box) to PNG files with matplotlib's Agg
backend. Joints are drawn at their stored 0-based coordinates with pixel (0, 0)'s centre at
(0, 0) (matplotlib's `imshow` convention), so a correct conversion puts them on the body.
"""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features

_STATUS_COLOURS = {features.VISIBLE: "lime", features.OCCLUDED: "orange"}


def _peek(path: str) -> tuple[str, int]:
    """(dataset, number of joints) of a shard's first record, or ("", 0) when it is empty."""
    for raw in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(raw.numpy())
        feature = example.features.feature
        dataset = feature[features.SOURCE_DATASET].bytes_list.value[0].decode("utf-8")
        return dataset, len(feature[features.KEYPOINT_STATUS].int64_list.value)
    return "", 0


def summarize(files: Sequence[str]) -> dict:
    """Counts per shard, per dataset, and joint-status counts per dataset and joint.

    Returns:
        {"shards": {file: count}, "datasets": {name: count},
         "status": {name: int array [K, 3] (not annotated, occluded, visible)}}
    """
    shards, datasets, status = {}, collections.Counter(), {}
    for path in files:
        dataset, num_joints = _peek(path)
        count = 0
        if num_joints:
            for raw in tf.data.TFRecordDataset(path):
                parsed = tf.io.parse_single_example(
                    raw, {features.KEYPOINT_STATUS: tf.io.FixedLenFeature([num_joints], tf.int64),
                          features.SOURCE_DATASET: tf.io.FixedLenFeature([], tf.string)}
                )  # fmt: skip
                name = parsed[features.SOURCE_DATASET].numpy().decode("utf-8")
                table = status.setdefault(name, np.zeros((num_joints, 3), np.int64))
                table[np.arange(num_joints), parsed[features.KEYPOINT_STATUS].numpy()] += 1
                datasets[name] += 1
                count += 1
        shards[path] = count
    return {"shards": shards, "datasets": dict(datasets), "status": status}


def format_summary(summary: dict) -> str:
    lines = ["Records per shard:"]
    lines += [f"  {count:7d}  {path}" for path, count in summary["shards"].items()]
    for name, count in summary["datasets"].items():
        lines.append(f"Dataset {name}: {count} records. Joint status counts:")
        lines.append(f"  {'joint':12s} {'visible':>8s} {'occluded':>9s} {'missing':>8s}")
        names = joints.get_joint_set(name).names
        for j, row in enumerate(summary["status"][name]):
            lines.append(f"  {names[j]:12s} {row[2]:8d} {row[1]:9d} {row[0]:8d}")
    return "\n".join(lines)


def draw_record(parsed: dict, path: pathlib.Path) -> None:
    """Draws one parsed record (`features.parse_example_numpy`) to a PNG at `path`."""
    # Imported here: only drawing needs matplotlib. Figure + FigureCanvasAgg avoids pyplot's
    # global state and any GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    image = tf.io.decode_image(parsed[features.IMAGE_ENCODED], channels=3).numpy()
    joint_set = joints.get_joint_set(parsed[features.SOURCE_DATASET])
    keypoints, status = parsed[features.KEYPOINTS], parsed[features.KEYPOINT_STATUS]
    height, width = image.shape[:2]
    figure = Figure(figsize=(8, 8 * height / max(width, 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.imshow(image)
    for a, b in joint_set.skeleton_indices():
        if status[a] and status[b]:
            axes.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], "-", color="cyan", lw=2)
    for j in range(joint_set.num_joints):
        if status[j]:
            axes.plot(*keypoints[j], "o", color=_STATUS_COLOURS.get(int(status[j]), "red"), ms=5)
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
    axes.text(
        5, 15, f"{parsed[features.IMAGE_FILENAME]} #{parsed[features.SOURCE_INDEX]}/"
        f"{parsed[features.SOURCE_PERSON]}", color="white", fontsize=9, va="top",
    )  # fmt: skip
    figure.savefig(path)


def draw_records(files: Sequence[str], output_dir: str, num_images: int) -> list[pathlib.Path]:
    """Draws the first `num_images` records of `files` to PNGs in `output_dir`."""
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        _, num_joints = _peek(path)
        if not num_joints:
            continue
        for raw in tf.data.TFRecordDataset(path):
            if len(written) >= num_images:
                return written
            parsed = features.parse_example_numpy(raw.numpy(), num_joints)
            name = (
                f"{len(written):03d}_{parsed[features.SOURCE_DATASET]}_"
                f"{parsed[features.SOURCE_INDEX]}_{parsed[features.SOURCE_PERSON]}.png"
            )
            draw_record(parsed, output / name)
            written.append(output / name)
    return written


def main(argv: Sequence[str], output_dir: str | None, num_images: int) -> None:
    from absl import app

    files = sorted(argv[1:])
    if not files:
        raise app.UsageError("give one or more TFRecord files")
    missing = [f for f in files if not pathlib.Path(f).is_file()]
    if missing:
        raise app.UsageError(f"no such file: {missing[0]}")
    print(format_summary(summarize(files)))
    if output_dir:
        written = draw_records(files, output_dir, num_images)
        print(f"Drew {len(written)} record(s) to {output_dir}")


if __name__ == "__main__":
    from absl import app, flags

    # Declared only when run as a program, so importing this module defines no flags.
    _OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to draw records as PNG files.")
    _NUM_IMAGES = flags.DEFINE_integer("num_images", 8, "How many records to draw.", lower_bound=0)
    app.run(lambda argv: main(argv, _OUTPUT_DIR.value, _NUM_IMAGES.value))
