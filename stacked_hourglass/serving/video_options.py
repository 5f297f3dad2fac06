"""The options of `predict --video` (`video_lib`), their flags and their defaults, written once.

This module imports neither TensorFlow nor PyAV, so that `predict` defines and checks the flags
before anything heavy loads. The values and why (see also `one_euro` and `tracking`):

* `--smooth=one_euro` (default) | `none`. The One-Euro filter's speed is measured in person
  sizes per second (the person's size: the mean of the width and height of the keypoints' box,
  as MediaPipe scales its landmark filter), so the values below hold for people of any size in
  pixels and any frame size:
  - `--min_cutoff=1.0` Hz: the cutoff at rest, Casiez et al.'s suggested starting point; at 30
    frames/s it removes about three quarters of a still joint's frame-to-frame jitter.
  - `--beta=10.0`: the cutoff rises by 10 Hz per person size per second of speed. The lag behind
    a joint moving at constant speed is then below size / (2 pi beta) = 1.6 % of the person's
    size at any speed: under one heatmap cell (a 64-cell heatmap spans 1.25 box sides, a cell
    is 2 % of the box), so the filter's lag stays below the network's own resolution.
    MediaPipe's pose landmark filter uses min_cutoff 0.05 and beta 80 at the same scale (and
    0.1 / 40 for its world landmarks, in metres): values for a network whose jitter is smaller
    than a heatmap decoder's quarter-cell steps; with ours their speed term, driven by the
    jitter itself, keeps the cutoff high and removes much less of it.
  - `--d_cutoff=1.0` Hz: the speed's own low-pass (Casiez et al.'s and MediaPipe's value).
* `--track`: one person, cropped in each frame with the previous frame's box of its joints
  scoring at least `--min_joint_score`, enlarged 1.25 times (`tracking.keypoint_box`); when the
  joints' mean score falls under `--track_min_score` the next frame goes back to the box source
  (the detector or detections when given, its best box; else the whole frame), as MediaPipe's
  pose tracker goes back to its detector.
  - `--track_min_score=0.25`: a trained network's heatmap peaks are about 1 at a visible joint
    (the training target's peak) and near its noise floor (about 0.1) where there is no person;
    0.25 tells the two apart with room for occluded joints.
  - `--min_joint_score=0.2`: joints under it make no tracking box and are not drawn.
"""

from __future__ import annotations

import dataclasses

from absl import flags

SMOOTHERS = ("one_euro", "none")


def _option(default, help_text: str, **extra):
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


@dataclasses.dataclass(frozen=True)
class VideoOptions:
    """How `video_lib.predict_video` finds, smooths and draws people (module docstring)."""

    track: bool = _option(
        False, "Video: one person, cropped around the previous frame's joints (see predict)."
    )
    track_min_score: float = _option(
        0.25, "Video --track: below this mean joint score the next frame uses the box source."
    )
    min_joint_score: float = _option(
        0.2, "Video: joints under this score are not drawn and make no tracking box."
    )
    smooth: str = _option("one_euro", "Video: keypoint smoothing over time.", choices=SMOOTHERS)
    min_cutoff: float = _option(1.0, "Video one_euro: cutoff frequency at rest, Hz.")
    beta: float = _option(
        10.0, "Video one_euro: cutoff increase (Hz) per person size per second of speed."
    )
    d_cutoff: float = _option(1.0, "Video one_euro: cutoff of the speed's low-pass, Hz.")

    def __post_init__(self):
        if self.smooth not in SMOOTHERS:
            raise ValueError(f"--smooth={self.smooth}: expected one of {', '.join(SMOOTHERS)}")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(
                f"--min_cutoff={self.min_cutoff}, --d_cutoff={self.d_cutoff}, --beta={self.beta}:"
                " need min_cutoff > 0, d_cutoff > 0 and beta >= 0"
            )

    def filter_params(self) -> tuple[float, float, float] | None:
        """(min_cutoff, beta, d_cutoff) of the One-Euro filter, None without smoothing."""
        if self.smooth == "none":
            return None
        return (self.min_cutoff, self.beta, self.d_cutoff)


def define_flags(fv: flags.FlagValues) -> None:
    """`--video` and one flag per `VideoOptions` field, its default and help from the field."""
    flags.DEFINE_string(
        "video", None, "Video file(s), comma-separated, or a directory of videos.", flag_values=fv
    )
    for field in dataclasses.fields(VideoOptions):
        help_text = field.metadata["help"]
        if "choices" in field.metadata:
            flags.DEFINE_enum(
                field.name, field.default, list(field.metadata["choices"]), help_text,
                flag_values=fv,
            )  # fmt: skip
        elif field.type == "bool":
            flags.DEFINE_boolean(field.name, field.default, help_text, flag_values=fv)
        else:
            flags.DEFINE_float(field.name, field.default, help_text, flag_values=fv)


def from_flags(fv: flags.FlagValues) -> VideoOptions:
    """The `VideoOptions` of parsed flags (raises ValueError naming a bad value)."""
    return VideoOptions(**{f.name: fv[f.name].value for f in dataclasses.fields(VideoOptions)})
