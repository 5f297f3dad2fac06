"""`predict --video` (`serving.video_lib`): videos the tests write with PyAV (a bright figure
moving across a dark frame), read back: frames, timestamps, the JSONL, the drawn video, --track's
fallback, and one line for each bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from fractions import Fraction

import numpy as np
import pytest

from stacked_hourglass import joints
from stacked_hourglass.serving import box_crop, boxes, predictor, tracking, video_lib
from stacked_hourglass.serving.video_options import VideoOptions

av = pytest.importorskip("av")

RAW = VideoOptions(smooth="none")


def _frame(index: int, height: int, width: int, noise=None) -> np.ndarray:
    """A dark frame with a bright 'person' block that moves 3 px right per frame."""
    image = np.full((height, width, 3), 40, np.uint8) if noise is None else noise
    x = 4 + 3 * index
    image[height // 6 : height - height // 6, x : x + width // 5] = (230, 200, 170)
    return image


def write_video(path, times, size=(48, 64), codec="libx264", noise_seed=None, options=None,
                tick=Fraction(1, 1000)):  # fmt: skip
    """Writes frames at `times` (seconds, on a time base of `tick` s); returns the path."""
    height, width = size
    rng = np.random.default_rng(noise_seed)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = tick
        for i, seconds in enumerate(times):
            noise = None if noise_seed is None else rng.integers(0, 255, (*size, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(_frame(i, height, width, noise), format="rgb24")
            frame.pts, frame.time_base = round(seconds / tick), tick
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def read_video(path):
    """(decoded RGB frames, their timestamps in seconds, codec name) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), float(f.pts * stream.time_base))
                  for f in container.decode(stream)]  # fmt: skip
        name = stream.codec_context.name
    return [f for f, _ in frames], [t for _, t in frames], name


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    return lines[0], lines[1:]


@pytest.fixture(scope="module")
def model(flip_export):
    return predictor.open_predictor("saved_model", flip_export["export_dir"])


def test_frames_timestamps_jsonl_and_output_video(model, tmp_path):
    times = [i / 25 for i in range(6)]
    path = write_video(tmp_path / "walk.mp4", times)
    result = video_lib.predict_video(model, str(path), str(tmp_path / "out"), "walk", RAW,
                                     progress=None)  # fmt: skip
    assert (result.frames, result.problem) == (6, None)
    header, frames = read_jsonl(tmp_path / "out" / "walk.jsonl")
    assert header["joint_names"] == list(joints.MPII.names)
    assert (header["width"], header["height"], header["frames"]) == (64, 48, 6)
    assert header["codec"] == "libx264" and header["smooth"] == "none"
    assert [f["frame"] for f in frames] == list(range(6))
    np.testing.assert_allclose([f["time"] for f in frames], times, atol=1e-6)
    person = frames[0]["people"][0]
    assert person["box"] == [-0.5, -0.5, 63.5, 47.5] and person["id"] == 0
    # The keypoints of the first frame: the crop rule, the model, back to frame pixels.
    decoded, _, _ = read_video(path)
    crop, matrix, _ = box_crop.crop_on_host(decoded[0], None, model.info.input_size)
    keypoints, scores = model.keypoints(crop[None])
    np.testing.assert_allclose(person["keypoints"], box_crop.to_original(keypoints[0], matrix),
                               atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(person["scores"], scores[0], atol=1e-4)
    # The drawn video: as many frames, at the same times, H.264.
    drawn, drawn_times, codec = read_video(tmp_path / "out" / "walk.mp4")
    assert len(drawn) == 6 and codec == "h264" and drawn[0].shape == (48, 64, 3)
    np.testing.assert_allclose(drawn_times, times, atol=1e-3)


def test_variable_frame_rate_odd_size_and_smoothing(model, tmp_path):
    times = [0.0, 0.04, 0.1, 0.11, 0.25]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:  # odd sides need 4:4:4 in the input
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 63, 47, "yuv444p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, seconds in enumerate(times):
            frame = av.VideoFrame.from_ndarray(_frame(i, 47, 63), format="rgb24")
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out"
    smooth = video_lib.predict_video(model, str(path), str(out), "vfr", VideoOptions(),
                                     progress=None)  # fmt: skip
    assert (smooth.frames, smooth.problem) == (5, None)
    header, frames = read_jsonl(out / "vfr.jsonl")
    assert header["frames"] is None  # Matroska announces no count
    assert header["smooth"]["min_cutoff"] == 1.0
    np.testing.assert_allclose([f["time"] for f in frames], times, atol=1e-6)
    drawn, drawn_times, _ = read_video(out / "vfr.mp4")
    assert drawn[0].shape == (48, 64, 3)  # one row and column repeated for 4:2:0
    np.testing.assert_allclose(drawn_times, times, atol=1e-3)
    # Smoothed keypoints: the first frame as predicted, the later ones between the raw
    # prediction and the previous output (a low-pass, per coordinate).
    video_lib.predict_video(model, str(path), str(out), "raw", RAW, progress=None)
    _, raw = read_jsonl(out / "raw.jsonl")
    got = np.array([f["people"][0]["keypoints"] for f in frames])
    want = np.array([f["people"][0]["keypoints"] for f in raw])
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    low, high = np.minimum(got[:-1], want[1:]), np.maximum(got[:-1], want[1:])
    assert np.all((got[1:] >= low - 2e-3) & (got[1:] <= high + 2e-3))


@dataclasses.dataclass
class FakeModel:
    """A `Predictor` whose joints form a fixed pattern in the crop, their scores scripted per
    call (so the tracking decisions are known)."""

    info: predictor.ModelInfo
    scores_per_call: list

    def keypoints(self, crops):
        n, s = len(crops), self.info.input_size
        k = self.info.joint_set.num_joints
        grid = np.stack(np.meshgrid(np.linspace(0.3, 0.7, 4), np.linspace(0.2, 0.8, 4)), -1)
        points = np.broadcast_to(grid.reshape(k, 2) * s, (n, k, 2)).astype(np.float32)
        return points, np.full((n, k), self.scores_per_call.pop(0), np.float32)


class RecordingSource:
    """A box source (`boxes.BoxSource`) that remembers which frames asked it."""

    needs_pixels, skip_bad_boxes = True, True

    def __init__(self):
        self.keys = []

    def boxes(self, key, image=None):
        self.keys.append(key)
        # The second box does not fit the frame: skipped, counted.
        return boxes.make_boxes([[10, 5, 40, 45], [500, 500, 600, 600]], [0.8, 0.9], ["a", "b"])


def test_track_follows_the_joints_and_falls_back_to_the_source(tmp_path):
    info = predictor.ModelInfo("saved_model", "fake", joints.MPII, 64, "quarter", 1.0, False, 0)
    fake = FakeModel(info, [0.9, 0.9, 0.1, 0.9, 0.9])
    path = write_video(tmp_path / "track.mp4", [i / 25 for i in range(5)])
    source = RecordingSource()
    options = VideoOptions(track=True, smooth="none", track_min_score=0.25)
    result = video_lib.predict_video(fake, str(path), str(tmp_path), "t", options, source,
                                     progress=None)  # fmt: skip
    assert result.problem is None
    assert result.skipped_boxes[0] == 2 and result.skipped_boxes[1].startswith("frame 0: b: box")
    header, frames = read_jsonl(tmp_path / "t.jsonl")
    assert header["boxes"] == "track"
    # Frame 2's mean score (0.1) is under 0.25: frame 3 asks the source again.
    assert [f["tracked"] for f in frames] == [False, True, True, False, True]
    assert source.keys == [0, 3]
    # The person found again is a new track.
    assert [f["people"][0]["id"] for f in frames] == [0, 0, 0, 1, 1]
    # Frame 1's box: frame 0's joints' box, enlarged 1.25 times.
    first = frames[0]["people"][0]
    expected = tracking.keypoint_box(first["keypoints"], first["scores"], 0.2)
    np.testing.assert_allclose(frames[1]["people"][0]["box"], expected, atol=1e-3)
    assert frames[1]["people"][0]["box_score"] == pytest.approx(0.9)


class TwoPeople:
    """Two boxes moving right 2 px per frame, listed in the opposite order every other frame."""

    needs_pixels, skip_bad_boxes = False, True

    def boxes(self, key, image=None):
        left, right = [2 + 2 * key, 4, 26 + 2 * key, 44], [34 + 2 * key, 4, 58 + 2 * key, 44]
        rows = [left, right] if key % 2 == 0 else [right, left]
        return boxes.make_boxes(rows, [0.9, 0.8], ["first", "second"])


def test_several_people_keep_their_ids_and_are_smoothed_apart(model, tmp_path):
    path = write_video(tmp_path / "two.mp4", [i / 25 for i in range(4)])
    result = video_lib.predict_video(model, str(path), str(tmp_path / "o"), "two",
                                     VideoOptions(), TwoPeople(), source_name="two",
                                     progress=None)  # fmt: skip
    assert result.problem is None
    header, frames = read_jsonl(tmp_path / "o" / "two.jsonl")
    assert header["boxes"] == "two"
    # The person whose box starts on the left is id 0 in every frame, wherever it is listed.
    for index, frame in enumerate(frames):
        left = min(frame["people"], key=lambda person: person["box"][0])
        assert left["id"] == 0 and left["box"][0] == 2 + 2 * index
        assert sorted(person["id"] for person in frame["people"]) == [0, 1]


def test_bad_videos_are_one_line_and_keep_the_frames_done(model, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    result = video_lib.predict_video(model, str(text), str(tmp_path / "o"), "n", RAW,
                                     progress=None)  # fmt: skip
    assert result.problem.startswith(f"{text}: not a video (") and result.outputs == ()
    # Zero frames: nothing written.
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    result = video_lib.predict_video(model, str(empty), str(tmp_path / "o"), "e", RAW,
                                     progress=None)  # fmt: skip
    assert result.problem == f"{empty}: no video frames"
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    # A --box that does not fit the frames: one line, nothing written.
    good = write_video(tmp_path / "good.mp4", [0.0, 0.04])
    outside = boxes.FixedBox(np.array([500, 500, 600, 600], np.float32))
    result = video_lib.predict_video(model, str(good), str(tmp_path / "o"), "g", RAW, outside,
                                     progress=None)  # fmt: skip
    assert result.problem == (
        f"{good}: frame 0: box[0] = [500 500 600 600] lies outside the 64x48 (width x height) image"
    )
    assert result.outputs == () and not list((tmp_path / "o").glob("g.*"))
    # An MP4 (index first) cut short: the decoder breaks, or the frames end early, depending on
    # where the cut falls; either way one line, and the frames before it are kept.
    whole = write_video(tmp_path / "whole.mp4", [i / 25 for i in range(12)], noise_seed=0,
                        options={"movflags": "faststart"})  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 5])
    result = video_lib.predict_video(model, str(cut), str(tmp_path / "o"), "cut", RAW,
                                     progress=None)  # fmt: skip
    assert 0 < result.frames < 12
    assert re.fullmatch(
        rf"{re.escape(str(cut))}: (broken after {result.frames} frames \(.+\)|ended after "
        rf"{result.frames} frames at [0-9.]+ s; its container announces 0.480 s \(truncated\?\))",
        result.problem,
    )
    _, frames = read_jsonl(tmp_path / "o" / "cut.jsonl")
    assert [f["frame"] for f in frames] == list(range(result.frames))
    assert len(read_video(tmp_path / "o" / "cut.mp4")[0]) == result.frames
    # An AVI cut short ends quietly: fewer frames than its header announces.
    avi = write_video(tmp_path / "whole.avi", [i / 25 for i in range(12)], codec="mpeg4",
                      noise_seed=1, tick=Fraction(1, 25))  # fmt: skip
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    result = video_lib.predict_video(model, str(tmp_path / "cut.avi"), str(tmp_path / "o"),
                                     "cut_avi", RAW, progress=None)  # fmt: skip
    last = (result.frames - 1) / 25
    assert result.problem == (
        f"{tmp_path / 'cut.avi'}: ended after {result.frames} frames at {last:.3f} s; its "
        "container announces 0.480 s (truncated?)"
    )
    # The whole AVI is not short.
    whole_avi = video_lib.predict_video(model, str(avi), str(tmp_path / "o"), "avi", RAW,
                                        progress=None)  # fmt: skip
    assert (whole_avi.frames, whole_avi.problem) == (12, None)
    assert len(read_video(tmp_path / "o" / "cut_avi.mp4")[0]) == result.frames > 0


class BreakingContainer:
    """A container whose demuxer fails after `packets` packets, as a damaged file's does."""

    def __init__(self, container, packets: int):
        self._container, self._packets = container, packets

    def demux(self, stream):
        for i, packet in enumerate(self._container.demux(stream)):
            if i == self._packets:
                raise av.error.InvalidDataError(1094995529, "Invalid data found")
            yield packet


def test_a_decoding_error_ends_the_frames_after_the_buffered_ones(tmp_path):
    path = write_video(tmp_path / "v.mp4", [i / 25 for i in range(10)], noise_seed=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        errors = []
        broken = BreakingContainer(container, packets=6)
        frames = list(video_lib._decoded_frames(av, broken, stream, errors))
    # Six packets in, six frames out: those the decoder still held were flushed.
    assert (len(frames), errors) == (6, ["Invalid data found"])


def test_a_broken_video_keeps_valid_outputs(model, tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mp4", [i / 25 for i in range(8)])
    real = video_lib._decoded_frames

    def breaking(av_module, container, stream, errors):
        return real(av_module, BreakingContainer(container, 5), stream, errors)

    monkeypatch.setattr(video_lib, "_decoded_frames", breaking)
    result = video_lib.predict_video(model, str(path), str(tmp_path / "o"), "v", RAW,
                                     progress=None)  # fmt: skip
    assert result.problem == f"{path}: broken after 5 frames (Invalid data found)"
    _, frames = read_jsonl(tmp_path / "o" / "v.jsonl")
    assert [f["frame"] for f in frames] == list(range(5))
    drawn, times, _ = read_video(tmp_path / "o" / "v.mp4")
    assert len(drawn) == 5
    np.testing.assert_allclose(times, [i / 25 for i in range(5)], atol=1e-3)


@pytest.fixture
def run_predict(run_predict):
    """conftest's `run_predict`, keeping only the error lines of stderr (not the progress)."""

    def run(*argv):
        status, out, err = run_predict(*argv)
        return status, out, [line for line in err if "error" in line]

    return run


def test_command_folder_of_videos(run_predict, flip_export, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "good.mp4", [i / 25 for i in range(3)])
    (folder / "notes.mp4").write_text("not a video\n")
    status, out, errors = run_predict(
        f"--saved_model={flip_export['export_dir']}", f"--video={folder}",
        f"--output_dir={tmp_path / 'out'}", "--smooth=none",
    )  # fmt: skip
    assert status == 1
    assert len(errors) == 1 and errors[0].startswith(f"predict: error: {folder / 'notes.mp4'}: not")
    assert "good.mp4: 3 frames" in out and "1 video(s)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.jsonl", "good.mp4"]
    status, _, errors = run_predict(
        f"--saved_model={flip_export['export_dir']}", f"--video={folder}", "--image=x.jpg",
        f"--output_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert (status, errors) == (
        1,
        ["predict: error: --video takes neither --image nor --coco_results"],
    )


def test_missing_extra_is_one_line(run_predict, flip_export, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    status, _, errors = run_predict(
        f"--saved_model={flip_export['export_dir']}", f"--video={tmp_path}",
        f"--output_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert status == 1
    assert errors == ["predict: error: --video needs PyAV: pip install stacked_hourglass[video]"]
