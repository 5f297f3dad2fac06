"""The generator's knobs (`SyntheticConfig`) and its joint set."""

from __future__ import annotations

import dataclasses

from stacked_hourglass import joints

JOINT_SET = joints.SYNTHETIC


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator. Defaults are what the demo trains on.

    Attributes:
        image_size_range: (min, max) image width and height in pixels, sampled independently.
        person_height_range: (min, max) stature of the annotated person in pixels (log-uniform).
        upright_fraction: fraction of people within ±`upright_rotation_deg` of upright; the rest
            are rotated up to ±`max_rotation_deg`.
        upright_rotation_deg: rotation range of upright people, degrees.
        max_rotation_deg: rotation range of the others, degrees.
        facing_away_fraction: fraction of people seen from the back.
        max_distractors: at most this many other people per image.
        distractor_front_fraction: fraction of distractors drawn in front of the person.
        occluder_fraction: fraction of images with occluders (1–2 rectangles/ellipses).
        truncated_fraction: fraction of images where the person may extend past the border.
        jpeg_quality: JPEG quality of the encoded image.
    """

    image_size_range: tuple[int, int] = (160, 320)
    person_height_range: tuple[float, float] = (80.0, 220.0)
    upright_fraction: float = 0.65
    upright_rotation_deg: float = 10.0
    max_rotation_deg: float = 40.0
    facing_away_fraction: float = 0.3
    max_distractors: int = 3
    distractor_front_fraction: float = 0.2
    occluder_fraction: float = 0.4
    truncated_fraction: float = 0.12
    jpeg_quality: int = 90
