r"""Poses on every frame of a video: `predict --video=FILE|DIR` (PyAV, the `[video]` extra).

For each video NAME.EXT this writes, into the output directory:

    NAME.mp4    the frames with every person's skeleton drawn (a colour per person id), at the
                input's timestamps; H.264 (`libx264`, preset veryfast, CRF 20, yuv420p) when
                PyAV's FFmpeg has the encoder (its wheels do), else MPEG-4 part 2 (`mpeg4`).
                4:2:0 needs even sides: an odd last row or column is repeated once.
    NAME.jsonl  one JSON object per line: first a header
                  {"video", "width", "height", "frames" (announced by the container; null when
                   unknown), "frame_rate" (average, null when unknown), "dataset",
                   "joint_names", "skeleton" ([a, b] joint indices), "coordinates", "model",
                   "decoder", "flip_test", "boxes" ("whole frame" | "track" | the source),
                   "smooth" (the filter and its parameters, or "none"), "codec"}
                then one line per decoded frame, in order:
                  {"frame": index (0-based), "time": seconds (the frame's pts x the stream's
                   time_base), ["tracked": whether --track's box was used,]
                   "people": [{"id", "box": [x1, y1, x2, y2], "box_score",
                               "keypoints": [[x, y] x K], "scores": [K]}]}
                Keypoints are 0-based frame pixels (x, y) after smoothing, to 1e-3 px; scores
                are the heatmap peaks (not smoothed). `id` follows a person across frames
                (greedy box IoU, `tracking`); a tracked box's `box_score` is the mean joint score
                of the frame that made it.

Per frame: decode (RGB), person boxes (a `boxes.BoxSource` asked with the frame's index: the
whole frame by default, `--box`, `--detections` (image_id = the frame index) or `--detector`;
found boxes that do not fit the frame are skipped, `predict_lib.screen_boxes`; with `--track` the
previous frame's joints, `tracking.keypoint_box`), the people through the host path
(`client.predict_people_on_host`: a `box_crop.crop_on_host` crop per box, one batch through
`Predictor.keypoints`, back to frame pixels), smoothing (`tracking.PoseSmoother`, One-Euro
filters fed with the frames' timestamps, so variable frame rates are handled), drawing (the numpy
rasteriser `utils.drawing.draw_skeletons`), encoding. Options: `video_options`.

A video that cannot be used is one line naming it: not a video, no video stream, no frames.
A video that breaks in the middle (a decoding error, or frames that end more than a frame
interval before the duration its container announces) keeps the frames done: both files are
closed properly (the MP4's index written) and hold every frame decoded before the break, and the
line says where it broke. Both files are written under temporary names and renamed when closed
(`utils.files.atomic_path`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from fractions import Fraction

import numpy as np

from stacked_hourglass.serving import boxes, client, predict_lib, predictor, tracking
from stacked_hourglass.serving.predictor import Predictor
from stacked_hourglass.serving.video_options import VideoOptions
from stacked_hourglass.utils import cli, drawing, files
from stacked_hourglass.utils.errors import one_line

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".ts")
MISSING_EXTRA = "--video needs PyAV: pip install stacked_hourglass[video]"
# The first encoder PyAV's FFmpeg has, and its options (veryfast: encoding stays a small part
# of a frame's time; CRF 20: visually close to the input).
ENCODERS = (
    ("libx264", {"preset": "veryfast", "crf": "20"}),
    ("h264", {}),
    ("mpeg4", {"qscale": "3"}),
)
PROGRESS_INTERVAL_S = 0.5


def import_av():
    """The `av` module (PyAV); without it, ValueError with the line saying which extra."""
    try:
        import av
    except ImportError:
        raise ValueError(MISSING_EXTRA) from None
    return av


def list_videos(spec: str) -> list[str]:
    """Video files from "FILE[,FILE...]" or a directory (its `VIDEO_EXTENSIONS` files)."""
    return client.list_images(spec, VIDEO_EXTENSIONS, flag="video")


def choose_encoder(av) -> tuple[str, dict]:
    """(codec name, options) of the first of `ENCODERS` PyAV's FFmpeg can encode with."""
    for name, options in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        return name, options
    raise ValueError(f"PyAV's FFmpeg has none of the encoders {', '.join(n for n, _ in ENCODERS)}")


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What `predict_video` did with one video.

    Attributes:
        path: the input.
        frames: frames written (0: nothing written).
        outputs: (NAME.mp4, NAME.jsonl) paths, or () when nothing was written.
        problem: one line when the video could not be used or broke (None: all went well).
        skipped_boxes: boxes that did not fit their frame (not predicted), and the first reason.
    """

    path: str
    frames: int
    outputs: tuple[str, ...]
    problem: str | None = None
    skipped_boxes: tuple[int, str] = (0, "")


class _Progress:
    """`\\rNAME: done/total frames, F frames/s` on a stream, at most every PROGRESS_INTERVAL_S."""

    def __init__(self, name: str, total: int | None, stream):
        self._name, self._total, self._stream = name, total, stream
        self._start = self._shown = time.perf_counter()

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if self._stream is None or (not final and now - self._shown < PROGRESS_INTERVAL_S):
            return
        self._shown = now
        rate = done / max(now - self._start, 1e-9)
        total = self._total if self._total else "?"
        end = "\n" if final else ""
        self._stream.write(f"\r{self._name}: {done}/{total} frames, {rate:.1f} frames/s{end}")
        self._stream.flush()


class _Encoder:
    """The output video: RGB frames in, at the input's timestamps (its time base)."""

    def __init__(self, av, path: str, width: int, height: int, time_base: Fraction, rate):
        self.codec, options = choose_encoder(av)
        self._av = av
        self._container = av.open(path, "w", format="mp4")
        try:
            stream = self._container.add_stream(self.codec, rate=rate, options=options)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = time_base
        except BaseException:
            self._container.close()
            raise
        self._stream, self._time_base, self._last_pts = stream, time_base, None

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encodes uint8 [H, W, 3] at `pts` (time-base units; kept strictly increasing)."""
        h, w = image.shape[:2]
        if h % 2 or w % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = self._av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, self._time_base
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flushes the encoder and writes the container's index."""
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


class _Boxes:
    """Each frame's boxes: the source's, or with `track` the previous frame's joints' box."""

    def __init__(self, source: boxes.BoxSource, options: VideoOptions):
        self._source, self._options = source, options
        self._next: tuple[np.ndarray, float] | None = None

    def __call__(self, index: int, image: np.ndarray, skipped: list[str]):
        """(`boxes.Boxes` that fit the frame, tracked) of frame `index`: the tracking box, or
        when there is none or it does not fit the frame, the source's boxes (with `track`, its
        best one). Found boxes that do not fit are left out, their lines added to `skipped`."""
        if self._next is not None:
            box, score = self._next
            self._next = None
            found = boxes.make_boxes(box[None], [score], ["the tracking box"])
            found, _ = predict_lib.screen_boxes(found, image.shape[:2])  # e.g. left the frame
            if len(found):
                return found, True
        found = self._source.boxes(index, image)
        if self._source.skip_bad_boxes:
            found, lines = predict_lib.screen_boxes(found, image.shape[:2])
            skipped.extend(f"frame {index}: {line}" for line in lines)
        if self._options.track and len(found) > 1:  # one person: the best box
            found = found.select(np.arange(len(found)) == int(np.argmax(found.scores)))
        return found, False

    def observe(self, people: predictor.People) -> bool:
        """After a frame's prediction: the next frame's tracking box (`--track`); False when
        the person is lost (no one, or a mean joint score under `track_min_score`)."""
        if not self._options.track:
            return True
        if len(people) and float(np.mean(people.scores[0])) >= self._options.track_min_score:
            score = float(np.mean(people.scores[0]))
            box = tracking.keypoint_box(
                people.keypoints[0], people.scores[0], self._options.min_joint_score
            )
            self._next = None if box is None else (box, score)
        return self._next is not None


def _rounded(values, digits: int) -> list:
    return np.round(np.asarray(values, np.float64), digits).tolist()


def _frame_record(index: int, seconds: float, people: predictor.People, ids, tracked):
    """One JSONL frame line (module docstring)."""
    record = {"frame": index, "time": round(seconds, 6)}
    if tracked is not None:
        record["tracked"] = tracked
    record["people"] = [
        {
            "id": int(ids[n]),
            "box": _rounded(people.boxes[n], 3),
            "box_score": round(float(people.box_scores[n]), 4),
            "keypoints": _rounded(people.keypoints[n], 3),
            "scores": _rounded(people.scores[n], 4),
        }
        for n in range(len(people.boxes))
    ]
    return record


def _header(path, stream, total, model: Predictor, options: VideoOptions, boxes: str, codec):
    """The JSONL header line (module docstring)."""
    joint_set = model.info.joint_set
    rate = stream.average_rate
    return {
        "video": path,
        "width": stream.width,
        "height": stream.height,
        "frames": total,
        "frame_rate": float(rate) if rate else None,
        "dataset": joint_set.name,
        "joint_names": list(joint_set.names),
        "skeleton": [list(edge) for edge in joint_set.skeleton_indices()],
        "coordinates": "0-based frame pixels, (x, y), integer values at pixel centres",
        "model": model.info.path,
        "decoder": model.info.decoder,
        "flip_test": model.info.flip_test,
        "boxes": "track" if options.track else boxes,
        "smooth": (
            "none"
            if options.smooth == "none"
            else {
                "filter": "one_euro",
                "min_cutoff": options.min_cutoff,
                "beta": options.beta,
                "d_cutoff": options.d_cutoff,
                "speed_unit": "person size (mean of the keypoints' box width and height)",
            }
        ),  # fmt: skip
        "codec": codec,
    }


def _frame_pts(frame, index: int, stream, first: int | None) -> int:
    """The frame's pts in the stream's time base (from the index and the average rate when
    the container gives none)."""
    if frame.pts is not None:
        return int(frame.pts)
    rate = stream.average_rate or Fraction(25)
    return int(round(index / rate / stream.time_base)) + (first or 0)


class _Stop(ValueError):
    """A frame the run cannot go on from: its size differs from the stream's (the output has
    one size), or a box the user gave does not fit it."""


def _reason(error) -> str:
    """An FFmpeg error's own words (its strerror), without PyAV's errno and file name."""
    return getattr(error, "strerror", None) or one_line(error)


def _decoded_frames(av, container, stream, errors: list[str]):
    """Yields the stream's decoded frames. A demuxing or decoding error ends them: the frames
    the decoder still holds are yielded first, and the error's reason is appended to `errors`.
    """
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
        return
    except av.FFmpegError as e:
        errors.append(_reason(e))
    # A decoder that broke may refuse the flush as well; the break itself is reported above.
    with contextlib.suppress(av.FFmpegError):
        yield from stream.codec_context.decode(None)


def open_video(av, path: str):
    """(container, video stream) of `path`; ValueError naming it when it is not a video."""
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise ValueError(f"{path}: not a video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threads: decoding overlaps the network
    return container, stream


class _Run:
    """The per-frame work of one video (`predict_video`), its state and its two output files."""

    def __init__(self, model: Predictor, options: VideoOptions, source: boxes.BoxSource, stream):
        self.model, self.options, self.stream = model, options, stream
        self.boxes = _Boxes(source, options)
        self.smoother = tracking.PoseSmoother(options.filter_params())
        self.skipped: list[str] = []
        self.first_pts: int | None = None
        self.last_seconds: float | None = None
        self.step = 0.0  # the last interval between frames, seconds
        self.encoder: _Encoder | None = None
        self.jsonl = None

    def outputs(self, stack, av, paths: tuple[str, str], header: dict) -> None:
        """Where `open` will write, at the first frame predicted (none: nothing written)."""
        self._outputs = (stack, av, paths, header)

    def open(self) -> None:
        """Opens the outputs under temporary names, renamed onto their paths when the stack
        closes (the encoder closed first, so the MP4's index is written before the rename)."""
        stack, av, paths, header = self._outputs
        video_tmp = stack.enter_context(files.atomic_path(paths[0], local=True))
        jsonl_tmp = stack.enter_context(files.atomic_path(paths[1], local=True))
        # Closed by `stack`, with the renames (a `with` block cannot span the frames' loop).
        self.jsonl = stack.enter_context(open(jsonl_tmp, "w", encoding="utf-8"))  # noqa: SIM115
        rate = self.stream.average_rate or Fraction(25)
        s = self.stream
        self.encoder = _Encoder(av, video_tmp, s.width, s.height, s.time_base, rate)
        stack.callback(self.encoder.close)
        header["codec"] = self.encoder.codec
        self._write_line(header)

    def _write_line(self, record: dict) -> None:
        self.jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.jsonl.flush()  # a reader (or a run that dies) sees whole lines only

    def frame(self, frame, index: int) -> None:
        """Predicts, smooths, draws, encodes and records one decoded frame."""
        image = frame.to_ndarray(format="rgb24")
        if image.shape[:2] != (self.stream.height, self.stream.width):
            raise _Stop(
                f"frame {index} is {image.shape[1]}x{image.shape[0]}, the video "
                f"{self.stream.width}x{self.stream.height} (a size change mid-stream)"
            )
        pts = _frame_pts(frame, index, self.stream, self.first_pts)
        self.first_pts = pts if self.first_pts is None else self.first_pts
        seconds = float(pts * self.stream.time_base)
        if self.last_seconds is not None and seconds > self.last_seconds:
            self.step = seconds - self.last_seconds
        self.last_seconds = seconds
        found, tracked = self.boxes(index, image, self.skipped)
        try:
            people = client.predict_people_on_host(
                self.model, None, found.boxes, found.scores, pixels=image
            )
        except ValueError as e:  # found boxes are screened: a --box that does not fit
            raise _Stop(f"frame {index}: {one_line(e)}") from None
        if self.encoder is None:
            self.open()
        keypoints, ids = self.smoother.update(seconds, people.boxes, people.keypoints)
        if not self.boxes.observe(people):
            self.smoother.reset()  # lost: whoever the next frame finds starts a new track
        people = dataclasses.replace(people, keypoints=keypoints)
        drawing.draw_skeletons(
            image, keypoints, self.model.info.joint_set, people.scores,
            min_score=self.options.min_joint_score,
            colors=[drawing.person_color(i) for i in ids],
        )  # fmt: skip
        self.encoder.write(image, pts - self.first_pts)
        track_flag = tracked if self.options.track else None
        self._write_line(_frame_record(index, seconds, people, ids, track_flag))


def predict_video(
    model: Predictor,
    path: str,
    output_dir: str,
    name: str,
    options: VideoOptions,
    source: boxes.BoxSource | None = None,
    source_name: str = "whole frame",
    progress=sys.stderr,
) -> VideoResult:
    """Predicts every frame of one video; writes NAME.mp4 and NAME.jsonl (module docstring).

    Args:
        model: any `Predictor` (its `keypoints` on crops).
        path: the video file.
        output_dir: where the two files go (created).
        name: their stem.
        options: tracking, smoothing and drawing (`video_options`).
        source: the frames' person boxes (None: the whole frame); keys are frame indices.
        source_name: how the JSONL header names the source.
        progress: a text stream for the progress line (None: none).

    Returns:
        A `VideoResult`; its `problem` is one line naming the file when the video could not be
        used (nothing written) or broke (the frames before the break written).

    Raises:
        ValueError: PyAV is missing (`MISSING_EXTRA`), or an output would overwrite the input.
    """
    av = import_av()
    paths = (os.path.join(output_dir, f"{name}.mp4"), os.path.join(output_dir, f"{name}.jsonl"))
    if any(os.path.realpath(p) == os.path.realpath(path) for p in paths):
        raise ValueError(
            f"{path}: the output would overwrite the input; choose another --output_dir"
        )
    try:
        container, stream = open_video(av, path)
    except (ValueError, OSError) as e:
        return VideoResult(path, 0, (), one_line(e))
    total = stream.frames or None
    announced = _announced_end(stream)  # read now: PyAV refuses a closed container's streams
    run = _Run(model, options, source or boxes.WholeImage(), stream)
    header = _header(path, stream, total, model, options, source_name, None)
    meter = _Progress(os.path.basename(path), total, progress)
    done = 0
    errors: list[str] = []
    stopped = None
    with container, contextlib.ExitStack() as stack:
        run.outputs(stack, av, paths, header)
        for frame in _decoded_frames(av, container, stream, errors):
            try:
                run.frame(frame, done)
            except _Stop as e:
                stopped = str(e)
                break
            done += 1
            meter.update(done)
    problem = f"{path}: broken after {done} frames ({errors[0]})" if errors else None
    problem = f"{path}: {stopped}" if stopped else problem
    if done:
        meter.update(done, final=True)
    return _result(path, done, announced, run, problem, paths)


def _announced_end(stream) -> float | None:
    """The end (seconds) the stream's header announces; None when it announces none.

    The header's longest claim counts: its duration, or its frame count at its average rate.
    Either alone misleads: a cut AVI's duration is that of the packets left, and an AVI written
    on a fine time base counts its ticks as frames (and its rate as ticks per second).
    """
    start = float((stream.start_time or 0) * stream.time_base)
    ends = []
    if stream.duration:
        ends.append(start + float(stream.duration * stream.time_base))
    if stream.frames and stream.average_rate:
        ends.append(start + stream.frames / float(stream.average_rate))
    return max(ends) if ends else None


def _short_of(announced: float | None, last_seconds: float | None, step: float) -> float | None:
    """`announced` (the header's end, seconds) when the frames decoded stop more than a frame
    interval (`step`, the last one seen) before it; None when not short or unknown."""
    if last_seconds is None or announced is None:
        return None
    return announced if announced - (last_seconds + step) > max(step, 1e-3) else None


def _result(path, done, announced: float | None, run: _Run, problem, paths) -> VideoResult:
    if done == 0:
        return VideoResult(path, 0, (), problem or f"{path}: no video frames")
    end = _short_of(announced, run.last_seconds, run.step) if problem is None else None
    if end is not None:
        problem = (
            f"{path}: ended after {done} frames at {run.last_seconds:.3f} s; its container "
            f"announces {end:.3f} s (truncated?)"
        )
    first = run.skipped[0] if run.skipped else ""
    return VideoResult(path, done, paths, problem, (len(run.skipped), first))


def run_videos(
    kind: str,
    model_path: str,
    spec: str,
    output_dir: str,
    options: VideoOptions,
    source: boxes.BoxSource | None = None,
    source_name: str = "whole frame",
) -> int:
    """`predict --video`: every video of `spec` (`list_videos`) into `output_dir`, the people
    of each frame from `source` (keys: frame indices; None: the whole frame); prints a line per
    video and `predict: error: ...` for each one that failed; returns the exit status (1 when
    any failed)."""
    import_av()  # the missing extra is said before the model loads
    paths = list_videos(spec)
    names = client.output_names(paths)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f"--output_dir={output_dir}: not a directory")
    model = predictor.open_predictor(kind, model_path)
    info = model.info
    print(f"{info.path} ({info.describe()}): decoder={info.decoder}, flip_test={info.flip_test}")
    failed = 0
    for path, name in zip(paths, names, strict=True):
        result = predict_video(
            model, path, output_dir, name, options, source, source_name=source_name
        )
        if result.outputs:
            print(f"  {path}: {result.frames} frames -> {' and '.join(result.outputs)}")
        if result.skipped_boxes[0]:
            count, first = result.skipped_boxes
            print(f"  {path}: {count} box(es) did not fit their frame (first: {first})")
        if result.problem:
            cli.error("predict", result.problem)
            failed += 1
    print(
        f"{len(paths) - failed} video(s) -> {os.path.abspath(output_dir)}"
        + (f"; {failed} failed (named on stderr)" if failed else "")
    )
    return 1 if failed else 0
