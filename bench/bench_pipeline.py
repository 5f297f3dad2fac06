"""Input pipeline throughput on MPII-sized JPEGs, per core, new crop path against the old one.

    python bench/bench_pipeline.py [--workdir=DIR] [--num_people=64] [--batches=40]
        [--batch_size=16] [--input_size=256] [--repeats=3] [--threads=1]

Writes TFRecords of synthetic people on 1280x720 JPEGs (quality 90; `--workdir` keeps them for
the next run, default a temporary folder), sized so that the crop shrinks the picture as MPII's
do (person crop side 200 * scale around 2.7 x 256 px at the median and 6.7 x 256 at the 95th
percentile), then times `pipeline.make_train_dataset` with full augmentation (rotation on 40% of
the samples, scale 0.75-1.25, flip, colour jitter, heatmaps, batching):

  * new: `geometry.decode_crop` (decode only the crop's window, JPEG DCT scaling, area
    averaging, one warp);
  * old: `antialias=False` (decode the whole image, one bilinear warp from full resolution).

The dataset runs on a private tf.data thread pool of `--threads` threads with single-threaded
ops; the two paths alternate (the first one switches every repeat), each measured after a
warm-up, and the medians over `--repeats` are printed:

    pipeline: X images/s per core (new)
    pipeline: Y images/s per core (old)
    pipeline: new/old = Z

"per core" is images per second of this process's CPU time (user + system): the rate one fully
used core sustains. With one thread the process uses about one core, so on an idle machine it
is also the wall-clock rate; on a shared one the wall-clock rate drops with the others' load and
the CPU-time rate much less. Each run prints both, with the cores this process used and the
share of the CPUs other processes used meanwhile (from /proc/stat). Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import tempfile
import time

_IMAGE_HEIGHT, _IMAGE_WIDTH = 720, 1280
_CANVAS = 1280  # people are rendered on a square canvas (larger for big ones), then cut
# Crop shrink factors at 256 px (200 * scale / 256) of MPII's training people: median 2.7,
# 95th percentile 6.7: log-normal with sigma = ln(6.7 / 2.7) / 1.645.
_SHRINK_MEDIAN, _SHRINK_P95 = 2.7, 6.7
_REFERENCE_INPUT = 256


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _others_share(before, after, own_cpu: float, wall: float):
    """Fraction of the machine's CPUs used by other processes (and the hypervisor's steal)."""
    if before is None or after is None or wall <= 0:
        return None
    busy = after[0] - before[0] - own_cpu + (after[1] - before[1])
    return max(0.0, busy / (wall * (os.cpu_count() or 1)))


def _target_shrinks(count: int, seed: int) -> list[float]:
    """`count` crop shrink factors at the quantiles (k + 0.5) / count of MPII's log-normal, in a
    seeded random order (quantiles rather than draws: a few dozen draws miss the tail)."""
    import numpy as np

    sigma = math.log(_SHRINK_P95 / _SHRINK_MEDIAN) / statistics.NormalDist().inv_cdf(0.95)
    normal = statistics.NormalDist()
    shrinks = [
        _SHRINK_MEDIAN * math.exp(sigma * normal.inv_cdf((k + 0.5) / count)) for k in range(count)
    ]
    return [shrinks[k] for k in np.random.default_rng(seed).permutation(count)]


def _person(index: int, seed: int, target: float):
    """One synthetic person on a 1280x720 picture whose crop shrinks it `target` times at 256 px:
    (`features.PersonExample`, the shrink it got)."""
    import numpy as np

    from stacked_hourglass.data import features
    from stacked_hourglass.data.sources import synthetic

    def render(stature: float, canvas: int):
        config = synthetic.SyntheticConfig(
            image_size_range=(canvas, canvas), person_height_range=(stature, stature)
        )
        # The same stream both times: the same pose, scaled.
        stream = synthetic.example_rng("train", index, seed)
        return synthetic.render_scene(stream, config, keep_background=False)

    # The crop side follows the pose's extent (and a small random jitter), not the stature
    # alone: a small first rendering measures the ratio, the second one has the target shrink.
    first = render(500.0, 256)
    stature = 500.0 * target / (features.PIXELS_PER_SCALE * first.scale / _REFERENCE_INPUT)
    x1, y1, x2, y2 = first.body.extent()
    extent = max(x2 - x1, y2 - y1) * stature / 500.0
    scene = render(stature, max(_CANVAS, int(1.1 * extent)))
    # The 1280x720 picture around the crop centre: big people are cut at its edges, as MPII's
    # close-ups are (their crops reach outside the picture and read zeros there).
    side = scene.image.shape[0]
    left = int(np.clip(round(scene.center[0] - _IMAGE_WIDTH / 2), 0, side - _IMAGE_WIDTH))
    top = int(np.clip(round(scene.center[1] - _IMAGE_HEIGHT / 2), 0, side - _IMAGE_HEIGHT))
    keypoints = scene.keypoints - [left, top]
    status = scene.keypoint_status.copy()
    # Joints off the picture are not annotated, as in MPII.
    outside = (
        (keypoints[:, 0] < 0)
        | (keypoints[:, 0] > _IMAGE_WIDTH - 1)
        | (keypoints[:, 1] < 0)
        | (keypoints[:, 1] > _IMAGE_HEIGHT - 1)
    )
    status[outside | (status == features.NOT_ANNOTATED)] = features.NOT_ANNOTATED
    keypoints[status == features.NOT_ANNOTATED] = 0.0
    picture = scene.image[top : top + _IMAGE_HEIGHT, left : left + _IMAGE_WIDTH]
    example = features.PersonExample(
        image_encoded=synthetic.encode_jpeg(picture, 90),
        filename=f"bench_{index:05d}.jpg",
        height=_IMAGE_HEIGHT,
        width=_IMAGE_WIDTH,
        center=(scene.center[0] - left, scene.center[1] - top),
        scale=scene.scale,
        keypoints=keypoints,
        keypoint_status=status,
        normalizer=scene.normalizer,
        headbox=None,
        dataset="synthetic",
        index=index,
        person=0,
    )
    return example, features.PIXELS_PER_SCALE * scene.scale / _REFERENCE_INPUT


def _write_records(workdir: str, num_people: int, seed: int, num_shards: int = 4):
    """Writes (or reuses) the shards; returns (glob, {"shrinks": [...], "jpeg_bytes": [...]})."""
    import tensorflow as tf

    from stacked_hourglass.data import features

    pattern = os.path.join(workdir, "train-*.tfrecord")
    info_path = os.path.join(workdir, "bench_pipeline.json")
    params = {"num_people": num_people, "seed": seed, "size": [_IMAGE_HEIGHT, _IMAGE_WIDTH]}
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if info.get("params") == params:
            return pattern, info
    shrinks, sizes = [], []
    writers = [
        tf.io.TFRecordWriter(os.path.join(workdir, f"train-{i:05d}-of-{num_shards:05d}.tfrecord"))
        for i in range(num_shards)
    ]
    try:
        for index, target in enumerate(_target_shrinks(num_people, seed)):
            example, shrink = _person(index, seed, target)
            writers[index % num_shards].write(features.serialize_example(example))
            shrinks.append(shrink)
            sizes.append(len(example.image_encoded))
    finally:
        for writer in writers:
            writer.close()
    info = {"params": params, "shrinks": shrinks, "jpeg_bytes": sizes}
    with open(info_path, "w") as f:
        json.dump(info, f)
    return pattern, info


def _measure(pattern: str, antialias: bool, args) -> dict:
    """One timed run of the training dataset: images/s of wall clock and of CPU time."""
    import tensorflow as tf

    from stacked_hourglass.config import DataConfig
    from stacked_hourglass.data import pipeline
    from stacked_hourglass.data.codec import HeatmapCodec

    # Full augmentation: DataConfig's defaults (rotation 30 on 40%, scale 0.25, flip, jitter).
    config = DataConfig(dataset="synthetic", train_files=pattern, shuffle_buffer=args.num_people)
    codec = HeatmapCodec(args.input_size, args.input_size // 4, config.sigma)
    ds = pipeline.make_train_dataset(
        config, codec, args.batch_size, ["heatmaps_1"], seed=args.seed, antialias=antialias
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = args.threads
    options.threading.max_intra_op_parallelism = 1
    iterator = iter(ds.with_options(options))
    for _ in range(args.warmup):
        next(iterator)
    machine, cpu, wall = _machine_busy(), _cpu_seconds(), time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu
    images = args.batches * args.batch_size
    return {
        "per_cpu_s": images / cpu,
        "per_wall_s": images / wall,
        "cores": cpu / wall,
        "others": _others_share(machine, _machine_busy(), cpu, wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where the TFRecords go (kept); default: a temp dir")
    parser.add_argument("--num_people", type=int, default=64, help="records (one per picture)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="batches before timing")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per path")
    parser.add_argument("--threads", type=int, default=1, help="tf.data private thread pool")
    parser.add_argument("--paths", default="new,old", help="comma-separated: new, old")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or any(p not in ("new", "old") for p in paths):
        parser.error(f"--paths must name new and/or old, got {args.paths!r}")

    import numpy as np
    import tensorflow as tf

    # Eager ops (the iterator's own work) single-threaded too: the process then uses about
    # `--threads` cores.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or temporary
        os.makedirs(workdir, exist_ok=True)
        start = time.perf_counter()
        pattern, info = _write_records(workdir, args.num_people, args.seed)
        shrinks = np.asarray(info["shrinks"])
        print(
            f"records: {len(shrinks)} people on {_IMAGE_WIDTH}x{_IMAGE_HEIGHT} JPEGs (q90, mean "
            f"{np.mean(info['jpeg_bytes']) / 1024:.0f} KiB) in {workdir} "
            f"({time.perf_counter() - start:.1f} s); crop shrink at {_REFERENCE_INPUT} px before "
            f"scale augmentation: median {np.median(shrinks):.1f}x, 95th percentile "
            f"{np.percentile(shrinks, 95):.1f}x"
        )
        print(
            f"setup: batch {args.batch_size}, {args.input_size}x{args.input_size}, full "
            f"augmentation, {args.threads} tf.data thread(s), {args.warmup} + {args.batches} "
            f"batches per run, {args.repeats} alternating runs per path; load average "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs"
        )
        results = {path: [] for path in paths}
        for repeat in range(args.repeats):
            order = paths if repeat % 2 == 0 else paths[::-1]
            for path in order:
                run = _measure(pattern, path == "new", args)
                results[path].append(run)
                others = "?" if run["others"] is None else f"{100 * run['others']:.0f}%"
                print(
                    f"  run {repeat + 1} {path}: {run['per_cpu_s']:.1f} images/s per CPU "
                    f"second, {run['per_wall_s']:.1f} images/s wall clock on "
                    f"{run['cores']:.2f} cores, others used {others} of the CPUs"
                )
        medians = {p: statistics.median(r["per_cpu_s"] for r in results[p]) for p in paths}
        for path in paths:
            print(f"pipeline: {medians[path]:.1f} images/s per core ({path})")
        if len(paths) == 2:
            print(f"pipeline: new/old = {medians['new'] / medians['old']:.2f}")


if __name__ == "__main__":
    main()
