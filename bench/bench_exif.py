"""What reading the EXIF orientation costs per image, next to what the image costs anyway.

    python bench/bench_exif.py [--images=2000] [--repeats=3]

Times, in a `tf.data` map on one private thread with single-threaded ops (the way the input
pipeline and a SavedModel's graph run them), per image:

  * `images.exif_orientation` of a 4032x3024 phone photo with an EXIF segment (orientation 6,
    ten IFD0 entries), and of the same JPEG without EXIF;
  * `tf.image.extract_jpeg_shape` (the header read every image already pays);
  * `images.image_header` (header + orientation: the upright size);
  * `geometry.decode_crop` of a 256 x 256 person crop of that photo (6x shrink: a 1/4 DCT
    decode of the crop's window), with the orientation read inside it.

Prints microseconds per image: this process's CPU time (user + system; the median over
`--repeats`; it includes TensorFlow's thread pools spinning while they wait) and the wall clock
of the fastest repeat (on a shared machine it counts the others' load). The parse's own cost is
a row minus the "nothing" row. Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _photo(exif: bool) -> bytes:
    """A 4032x3024 JPEG (smooth noise, quality 90), with a phone-like EXIF segment or none."""
    import tensorflow as tf
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (48, 64, 3)).astype(np.float32)
    pixels = np.clip(tf.image.resize(small[None], (3024, 4032))[0].numpy(), 0, 255)
    out = io.BytesIO()
    options = {}
    if exif:
        tags = Image.Exif()
        values = {0x010F: "Phone", 0x0110: "Model", 0x0112: 6, 0x011A: 72.0, 0x011B: 72.0}
        values.update({0x0128: 2, 0x0131: "1.0", 0x0132: "2026:01:01 00:00:00", 0x0213: 1})
        for tag, value in values.items():
            tags[tag] = value
        options["exif"] = tags.tobytes()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def _per_image_us(fn, data: bytes, count: int) -> tuple[float, float]:
    """(CPU, wall-clock) microseconds per image of `fn` mapped over `count` copies of `data`."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors(data).repeat(count).map(fn)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    dataset = dataset.with_options(options)
    for _ in dataset.take(20):  # warm-up (tracing, first allocations)
        pass
    start, wall = _cpu_seconds(), time.perf_counter()
    for _ in dataset:
        pass
    return (_cpu_seconds() - start) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from stacked_hourglass.data import geometry, images

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with_exif, without = _photo(True), _photo(False)
    matrix = geometry.crop_matrix([1600.0, 2000.0], 6.0 * 256 / 200, 256)
    cases = [
        ("nothing (tf.data's own cost)", tf.identity, with_exif, args.images),
        ("exif_orientation, EXIF (6)", images.exif_orientation, with_exif, args.images),
        ("exif_orientation, no EXIF", images.exif_orientation, without, args.images),
        ("extract_jpeg_shape", tf.image.extract_jpeg_shape, with_exif, args.images),
        ("image_header (upright size)", lambda d: images.image_header(d)[:2], with_exif, 500),
        (
            "decode_crop 256 px, 6x shrink",
            lambda d: geometry.decode_crop(d, matrix, 256),
            with_exif,
            max(args.images // 20, 20),
        ),
    ]
    for name, fn, data, count in cases:
        times = [_per_image_us(fn, data, count) for _ in range(args.repeats)]
        cpu = statistics.median(t[0] for t in times)
        wall = min(t[1] for t in times)
        print(f"{name:<32} {cpu:9.1f} us CPU, {wall:9.1f} us wall (fastest run) per image")


if __name__ == "__main__":
    main()
