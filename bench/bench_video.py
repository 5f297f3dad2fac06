r"""`predict --video` end to end: frames per second and the share of time outside the network.

  python bench/bench_video.py [--models=demo,paper] [--frames=20] [--size=720x1280] \
      [--smooth=one_euro|none] [--saved_model=EXPORT_DIR]

Writes a synthetic clip (a smooth random background, a bright figure walking across it, H.264,
30 frames/s) and runs `serving.video_lib.predict_video` on it with the whole frame as the person
box: decode, crop (`box_crop.crop_on_host`), network and heatmap decoding (`Predictor.keypoints`),
back to frame pixels, One-Euro smoothing, drawing (`utils.drawing`), encoding, JSONL. Each stage
is timed by wrapping its function; "network" is `keypoints` (the network and its heatmap
decoder), "decode" the input's demuxing and decoding, "encode" includes the encoder's flush at
the end, "other" is the rest of the loop (RGB conversion, JSON, bookkeeping, opening the outputs).
A first run of 2 frames traces the network and is not counted.

Models (random weights, the timing does not depend on them): `demo` is configs/demo.flags's
(2 stacks x 64 features, 128x128 crops), `paper` configs/mpii_8stack.flags's (8 x 256, 256x256),
each run as one graph (network and heatmap decoder, as an export runs them); `--saved_model`
adds an export. The goal: the
pipeline adds under 15 % to the network's own time at 8 stacks (`+% of network` column).
Prints a markdown table; asserts nothing. On a shared machine the figures move with the load
(the network and the encoder compete for the same cores).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import tempfile
import time
from collections import defaultdict

from absl import app, flags

_MODELS = flags.DEFINE_list("models", ["demo", "paper"], "Random-weight models: demo, paper.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Also time this SavedModel export.")
_FRAMES = flags.DEFINE_integer("frames", 20, "Timed frames.", lower_bound=1)
_SIZE = flags.DEFINE_string("size", "720x1280", "HxW of the clip.")
_SMOOTH = flags.DEFINE_enum("smooth", "one_euro", ["one_euro", "none"], "Smoothing.")

# configs/demo.flags and configs/mpii_8stack.flags: (stacks, features, input size).
MODELS = {"demo": (2, 64, 128), "paper": (8, 256, 256)}


def _clip(path: str, frames: int, height: int, width: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    small = rng.uniform(30, 200, (height // 40 + 2, width // 40 + 2, 3))
    background = np.kron(small, np.ones((40, 40, 1)))[:height, :width].astype(np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = background.copy()
            x = width // 4 + 4 * i
            image[height // 6 : height * 5 // 6, x : x + width // 10] = (235, 205, 175)
            image[height // 10 : height // 6, x + width // 40 : x + width // 15] = (240, 190, 160)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


class _GraphModel:
    """A random-weight network behind the `Predictor` interface, run as one graph (network and
    heatmap decoder) as a SavedModel's `serving_image_tensor` runs."""

    def __init__(self, stacks: int, features: int, size: int):
        import tensorflow as tf

        from stacked_hourglass import joints
        from stacked_hourglass.model import ModelConfig, build_model, inference
        from stacked_hourglass.serving import predictor

        config = ModelConfig(num_stacks=stacks, num_features=features, input_size=size)
        self.info = predictor.ModelInfo(
            "model_dir", f"random {stacks}x{features}, {size}px", joints.MPII, size, "quarter",
            1.0, False, 0,
        )  # fmt: skip
        model, codec = build_model(config), self.info.codec()
        self._run = tf.function(
            lambda crops: codec.decode(inference.predict_heatmaps(model, crops))
        )

    def keypoints(self, crops):
        keypoints, scores = self._run(crops)
        return keypoints.numpy(), scores.numpy()


class _Timer:
    """Wraps functions so that each call's wall time adds to its stage (for a generator, the
    time of each item)."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def _items(self, stage: str, iterator):
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds[stage] += time.perf_counter() - start
            yield item

    def wrap(self, stage: str, function):
        if inspect.isgeneratorfunction(function):
            return lambda *args, **kwargs: self._items(stage, function(*args, **kwargs))

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return timed


@contextlib.contextmanager
def _stages(timer: _Timer, model):
    """Times the stages of `video_lib`'s loop by replacing its functions for the block."""
    from stacked_hourglass.serving import box_crop, tracking, video_lib
    from stacked_hourglass.utils import drawing

    targets = [
        (model, "keypoints", "network"),
        (box_crop, "crop_on_host", "crop"),
        (box_crop, "to_original", "to frame pixels"),
        (tracking.PoseSmoother, "update", "smooth"),
        (drawing, "draw_skeletons", "draw"),
        (video_lib._Encoder, "write", "encode"),
        (video_lib._Encoder, "close", "encode"),
        (video_lib, "_decoded_frames", "decode"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for owner, name, stage in targets:
        setattr(owner, name, timer.wrap(stage, getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _run(label, model, clip, warm, output_dir, options):
    from stacked_hourglass.serving import video_lib

    video_lib.predict_video(model, warm, output_dir, "warm", options, progress=None)
    timer = _Timer()
    with _stages(timer, model):
        start = time.perf_counter()
        result = video_lib.predict_video(model, clip, output_dir, "clip", options, progress=None)
        total = time.perf_counter() - start
    if result.problem:
        raise SystemExit(result.problem)
    n = result.frames
    network = timer.seconds["network"]
    stages = dict(timer.seconds)
    stages["other"] = total - sum(stages.values())
    breakdown = ", ".join(
        f"{stage} {1000 * s / n:.1f}" for stage, s in stages.items() if stage != "network"
    )
    print(
        f"| {label} | {n} | {n / total:.2f} | {1000 * network / n:.0f} | "
        f"{1000 * (total - network) / n:.0f} | {100 * (total - network) / total:.1f} % | "
        f"{100 * (total - network) / network:.1f} % | {breakdown} |"
    )
    sys.stdout.flush()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stacked_hourglass.serving import predictor
    from stacked_hourglass.serving.video_options import VideoOptions

    height, width = (int(v) for v in _SIZE.value.split("x"))
    options = VideoOptions(smooth=_SMOOTH.value)
    with tempfile.TemporaryDirectory() as tmp:
        clip, warm = os.path.join(tmp, "clip.mp4"), os.path.join(tmp, "warm.mp4")
        out = os.path.join(tmp, "out")
        _clip(clip, _FRAMES.value, height, width)
        _clip(warm, 2, height, width)
        print(
            f"{_FRAMES.value} frames {width}x{height}, whole frame as the box, smooth="
            f"{_SMOOTH.value}, {os.cpu_count()} CPUs; times per frame in ms\n"
        )
        print("| model | frames | frames/s | network ms | outside ms | outside share | "
              "+% of network | outside, by stage (ms) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for name in _MODELS.value:
            model = _GraphModel(*MODELS[name])
            _run(f"{name} ({model.info.path})", model, clip, warm, out, options)
        if _SAVED_MODEL.value:
            model = predictor.open_predictor("saved_model", _SAVED_MODEL.value)
            _run(f"SavedModel {_SAVED_MODEL.value}", model, clip, warm, out, options)


if __name__ == "__main__":
    app.run(main)
