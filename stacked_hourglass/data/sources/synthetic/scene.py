"""Scenes: one annotated person with distractor people and occluders, and its annotation.

The annotation follows MPII's conventions (`JOINT_SET`, keypoint status 0/1/2, PCKh normalizer
from a head box) and the crop convention of DESIGN.md, *Conventions* (centre and scale of a
square crop).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stacked_hourglass.data import features
from stacked_hourglass.data.sources.synthetic.background import draw_occluder, render_background
from stacked_hourglass.data.sources.synthetic.body import Body, pose_body, sample_pose
from stacked_hourglass.data.sources.synthetic.params import JOINT_SET, SyntheticConfig
from stacked_hourglass.data.sources.synthetic.person import Style, render_person, sample_style
from stacked_hourglass.data.sources.synthetic.raster import DISTRACTOR, MAIN

# Crop convention (DESIGN.md, *Conventions*): crop side 200·scale contains the person with a margin,
# person extent ≈ 200·scale / 1.25.
SCALE_MARGIN = 1.25


@dataclasses.dataclass
class Scene:
    """A rendered example before encoding (exposed for tests, plots and debugging).

    Attributes:
        image: uint8 [h, w, 3].
        background: uint8 [h, w, 3], the background alone (before any person or occluder), or
            None when not kept.
        keypoints: float64 [16, 2] (x, y); (0, 0) where not annotated.
        keypoint_status: int64 [16], features.NOT_ANNOTATED / OCCLUDED / VISIBLE.
        headbox: (x1, y1, x2, y2) around the head.
        normalizer: 0.6 × head-box diagonal (MPII head size).
        center: (x, y) crop centre (the body's centre).
        scale: crop side / 200.
        body: the annotated person's body.
    """

    image: np.ndarray
    background: np.ndarray | None
    keypoints: np.ndarray
    keypoint_status: np.ndarray
    headbox: tuple[float, float, float, float]
    normalizer: float
    center: tuple[float, float]
    scale: float
    body: Body


def _headbox(body: Body) -> tuple[float, float, float, float]:
    """Axis-aligned box around the head ellipse, 10% larger (hair, annotator margin)."""
    (cx, cy), a, b, angle = body.head_ellipse()
    ex = 1.1 * math.hypot(a * math.cos(angle), b * math.sin(angle))
    ey = 1.1 * math.hypot(a * math.sin(angle), b * math.cos(angle))
    return (cx - ex, cy - ey, cx + ex, cy + ey)


def _place_range(lo_ext, hi_ext, size, rng, allow_out):
    """Offset for an object spanning [lo_ext, hi_ext] (relative) to fit in [0, size - 1]."""
    lo, hi = -lo_ext, size - 1 - hi_ext
    if allow_out:
        slack = 0.25 * (hi_ext - lo_ext)
        lo, hi = lo - slack, hi + slack
    if lo > hi:  # larger than the image: centre it, jittered
        mid = 0.5 * (lo + hi)
        return float(mid + rng.uniform(-0.1, 0.1) * (hi_ext - lo_ext))
    return float(rng.uniform(lo, hi))


def _place_person(rng: np.random.Generator, config: SyntheticConfig):
    """Samples the person's stature and pose, the image size and the person's place in it.

    Returns:
        (body, (image height, image width), (cx, cy) body centre, width of the body's extent).
    """
    lo_h, hi_h = config.person_height_range
    height = float(math.exp(rng.uniform(math.log(lo_h), math.log(hi_h))))
    params = sample_pose(rng, config)
    x1, y1, x2, y2 = pose_body(params, height, (0.0, 0.0)).extent()

    lo_s, hi_s = config.image_size_range
    img_w = int(rng.integers(int(min(max(lo_s, 1.05 * (x2 - x1)), hi_s)), hi_s + 1))
    img_h = int(rng.integers(int(min(max(lo_s, 1.05 * (y2 - y1)), hi_s)), hi_s + 1))
    allow_out = rng.random() < config.truncated_fraction
    cx = _place_range(x1, x2, img_w, rng, allow_out)
    cy = _place_range(y1, y2, img_h, rng, allow_out)
    return pose_body(params, height, (cx, cy)), (img_h, img_w), (cx, cy), x2 - x1


def _draw_people(rng, config, canvas, owner, body: Body, style: Style, centre, body_width):
    """Draws the distractors behind, the person, then the distractors in front.

    Distractors stand beside or behind (or occasionally in front of) the person, never centred
    on it, since the crop position is what tells the network whom to annotate.
    """
    cx, cy = centre
    height = body.height
    num_distractors = int(rng.choice(config.max_distractors + 1, p=_distractor_probs(config)))
    front = []
    for _ in range(num_distractors):
        d_height = height * float(rng.uniform(0.6, 1.25))
        d_params = sample_pose(rng, config)
        dx1, _, dx2, _ = pose_body(d_params, d_height, (0.0, 0.0)).extent()
        # Side by side, overlapping at most about half of the narrower body.
        gap = 0.5 * (body_width + (dx2 - dx1)) * float(rng.uniform(0.65, 1.3))
        dx = gap if rng.random() < 0.5 else -gap
        dy = float(rng.normal(0.0, 0.15)) * height
        d_body = pose_body(d_params, d_height, (cx + dx, cy + dy))
        d_style = sample_style(rng)
        if rng.random() < config.distractor_front_fraction:
            front.append((d_body, d_style))
        else:
            render_person(canvas, owner, DISTRACTOR, d_body, d_style)
    render_person(canvas, owner, MAIN, body, style)
    for d_body, d_style in front:
        render_person(canvas, owner, DISTRACTOR, d_body, d_style)


def _draw_occluders(rng, config, canvas, owner, body: Body) -> None:
    """In a `config.occluder_fraction` of images, 1-2 occluders near random joints."""
    if rng.random() < config.occluder_fraction:
        for _ in range(int(rng.integers(1, 3))):
            target = body.keypoints[int(rng.integers(JOINT_SET.num_joints))]
            centre = target + rng.normal(0.0, 0.08 * body.height, 2)
            size = rng.uniform(0.06, 0.18, 2) * body.height
            draw_occluder(rng, canvas, owner, centre, size)


def _crop(rng, body: Body) -> tuple[tuple[float, float], float]:
    """(centre, scale) of the square of side 1.25 × the person's extent around the body's centre,
    jittered a little (as human-made centres and scales are) but always containing the whole
    person."""
    bx1, by1, bx2, by2 = body.extent()
    extent = max(bx2 - bx1, by2 - by1)
    jitter = rng.uniform(-0.03, 0.03, 2) * extent
    center = (float(0.5 * (bx1 + bx2) + jitter[0]), float(0.5 * (by1 + by2) + jitter[1]))
    scale = float(SCALE_MARGIN * extent * rng.uniform(0.97, 1.08) / features.PIXELS_PER_SCALE)
    return center, scale


def render_scene(
    rng: np.random.Generator, config: SyntheticConfig | None = None, keep_background: bool = True
) -> Scene:
    """Renders one annotated person with distractors and occluders; all randomness from `rng`.

    `keep_background=False` skips the copy of the bare background (`Scene.background` is then
    None); the image is the same either way.
    """
    config = config or SyntheticConfig()
    # The order of the draws below is part of the data: changing it changes every example.
    body, (img_h, img_w), centre, body_width = _place_person(rng, config)
    style = sample_style(rng)
    canvas = render_background(rng, img_h, img_w)
    background = np.clip(np.rint(canvas), 0, 255).astype(np.uint8) if keep_background else None
    owner = np.zeros((img_h, img_w), np.uint8)
    _draw_people(rng, config, canvas, owner, body, style, centre, body_width)
    _draw_occluders(rng, config, canvas, owner, body)

    headbox = _headbox(body)
    normalizer = 0.6 * math.hypot(headbox[2] - headbox[0], headbox[3] - headbox[1])
    keypoints, status = _annotate(body, owner, normalizer)
    center, scale = _crop(rng, body)
    image = np.clip(np.rint(canvas, out=canvas), 0, 255, out=canvas).astype(np.uint8)
    return Scene(
        image=image,
        background=background,
        keypoints=keypoints,
        keypoint_status=status,
        headbox=tuple(float(v) for v in headbox),
        normalizer=float(normalizer),
        center=center,
        scale=scale,
        body=body,
    )


def _distractor_probs(config: SyntheticConfig) -> np.ndarray:
    base = np.array([0.35, 0.35, 0.2, 0.1][: config.max_distractors + 1], np.float64)
    if base.size < config.max_distractors + 1:
        base = np.concatenate([base, np.full(config.max_distractors + 1 - base.size, 0.05)])
    return base / base.sum()


def _annotate(body: Body, owner: np.ndarray, normalizer: float) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints and their status from what ended up covering each joint.

    Visible (2): the pixel at the joint belongs to the person. Occluded (1): covered by an
    occluder or another person, or outside the image by at most one head size. Not annotated
    (0, keypoint (0, 0)): further outside the image, where an annotator could not place it.
    """
    h, w = owner.shape
    kp = body.keypoints.copy()
    status = np.full(JOINT_SET.num_joints, features.VISIBLE, np.int64)
    top, neck = JOINT_SET.index("head_top"), JOINT_SET.index("upper_neck")
    for j in range(JOINT_SET.num_joints):
        x, y = kp[j]
        outside = max(0.0, -x, x - (w - 1), -y, y - (h - 1))
        if outside > normalizer:
            status[j] = features.NOT_ANNOTATED
            kp[j] = 0.0
            continue
        if outside > 0.0:
            status[j] = features.OCCLUDED
            continue
        if j == top:  # head_top sits on the outline: probe just inside the head
            x, y = kp[j] + 0.15 * (kp[neck] - kp[j])
        xi = min(max(int(round(x)), 0), w - 1)
        yi = min(max(int(round(y)), 0), h - 1)
        if owner[yi, xi] != MAIN:
            status[j] = features.OCCLUDED
    return kp, status
