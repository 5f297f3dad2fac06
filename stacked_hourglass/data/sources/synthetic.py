"""Synthetic people: a dataset that needs no download, so convert → train → evaluate → export →
predict can run anywhere.

Each image holds one annotated person (a 2-D kinematic stick body drawn as filled, shaded limbs, a
torso polygon and a head ellipse) on a textured background, with distractor people beside or behind
it and random occluders over it. Joints use the MPII set and conventions (`joints.SYNTHETIC`):
left/right are the person's own sides, so a person facing the camera has the right side on the
image left. Two cues make left/right learnable: a face (skin-coloured with eyes and a mouth) on
people facing the camera, hair all over the head of people facing away; and limbs of the person's
left side are drawn darker than those of the right side.

Coordinates: 0-based pixels, (x, y) order, the centre of pixel (0, 0) at (0.0, 0.0), y downward.

Randomness: every example has its own `np.random.default_rng([seed, split_code, index])` stream, so
an example depends only on (split, index, seed), splits use disjoint streams, nothing reads or
touches a global RNG, and examples can be generated in any order or in parallel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features

JOINT_SET = joints.SYNTHETIC

# Per-split stream codes (mixed into the seed). Fixed constants rather than a hash of the name so
# the data cannot change with Python's hash randomisation.
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}

# Owner labels of the owner map (which object covers each pixel, for keypoint visibility).
_BACKGROUND, _MAIN, _DISTRACTOR, _OCCLUDER = 0, 1, 2, 3

# Body proportions as fractions of stature (standing height) H, after Drillis & Contini (1966)
# segment lengths; the head is slightly enlarged (0.14 instead of ~0.13) so that it stays
# readable on small people.
_HEAD = 0.14  # upper_neck → head_top
_NECK = 0.05  # thorax → upper_neck
_TORSO = 0.29  # pelvis → thorax
_SHOULDER_HALF = 0.115  # thorax → shoulder joint, sideways (biacromial ≈ 0.23 H)
_HIP_HALF = 0.07  # pelvis → hip joint, sideways
_UPPER_ARM = 0.186
_FOREARM = 0.146
_HAND = 0.06  # drawn hand beyond the wrist
_THIGH = 0.245
_SHIN = 0.246
_FOOT = 0.05  # drawn foot beyond the ankle (mostly pointing at the viewer, so short)

# Limb radii (half thickness) as fractions of H.
_R_UPPER_ARM = 0.03
_R_FOREARM = 0.024
_R_HAND = 0.03  # half-width of the hand blob
_R_THIGH = 0.045
_R_SHIN = 0.034
_R_FOOT = 0.024
_R_NECK = 0.026
_HEAD_HALF_WIDTH = 0.055

# Crop convention (DESIGN.md §1): crop side 200·scale contains the person with a margin,
# person extent ≈ 200·scale / 1.25.
_SCALE_MARGIN = 1.25


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


@dataclasses.dataclass(frozen=True)
class PoseParams:
    """A body pose in body units (stature H = 1), before placement in an image.

    Limb angles are in degrees, measured from the torso's downward direction, positive away from
    the body's midline on that limb's own side (so 90 is a limb held straight out sideways).
    Relative angles (elbow, knee) add to their parent limb's angle.

    Attributes:
        facing_camera: True when the person faces the viewer (right side on the image left).
        rotation: in-plane rotation of the whole body about its centre, degrees, clockwise on
            screen.
        lean: torso lean relative to the rotated vertical, degrees.
        head_tilt: head direction relative to the torso, degrees.
        shoulder_width: multiplier of shoulder and hip width (<1: body turned partly sideways).
        arm: (right, left) upper-arm angles.
        elbow: (right, left) forearm angles relative to the upper arm.
        leg: (right, left) thigh angles.
        knee: (right, left) shin angles relative to the thigh.
        arm_length: (right, left) multipliers of arm segment lengths (foreshortening).
        leg_length: (right, left) multipliers of leg segment lengths (foreshortening).
        proportions: multiplier of all segment lengths except the head (build variation).
    """

    facing_camera: bool = True
    rotation: float = 0.0
    lean: float = 0.0
    head_tilt: float = 0.0
    shoulder_width: float = 1.0
    arm: tuple[float, float] = (15.0, 15.0)
    elbow: tuple[float, float] = (0.0, 0.0)
    leg: tuple[float, float] = (5.0, 5.0)
    knee: tuple[float, float] = (0.0, 0.0)
    arm_length: tuple[float, float] = (1.0, 1.0)
    leg_length: tuple[float, float] = (1.0, 1.0)
    proportions: float = 1.0


@dataclasses.dataclass(frozen=True)
class Body:
    """A posed body in image pixels.

    Attributes:
        keypoints: float64 [16, 2] (x, y) in `JOINT_SET` order.
        hands: float64 [2, 2] ends of the (right, left) hands beyond the wrists.
        feet: float64 [2, 2] ends of the (right, left) feet beyond the ankles.
        height: stature H in pixels (all radii scale with it).
        head_axis: unit (x, y) vector from upper_neck towards head_top.
        facing_camera: copied from the pose.
    """

    keypoints: np.ndarray
    hands: np.ndarray
    feet: np.ndarray
    height: float
    head_axis: tuple[float, float]
    facing_camera: bool

    def head_ellipse(self) -> tuple[tuple[float, float], float, float, float]:
        """((cx, cy), half-length along the head axis, half-width, axis angle in radians)."""
        neck = self.keypoints[JOINT_SET.index("upper_neck")]
        top = self.keypoints[JOINT_SET.index("head_top")]
        # Centre slightly above the mid-point and half-length slightly over half: head_top then
        # lies just inside the drawn head (hair), as annotators place it on the skull's top.
        centre = neck + 0.52 * (top - neck)
        half_length = 0.53 * float(np.hypot(*(top - neck)))
        angle = math.atan2(self.head_axis[1], self.head_axis[0])
        return (
            (float(centre[0]), float(centre[1])),
            half_length,
            _HEAD_HALF_WIDTH * self.height,
            angle,
        )

    def extent(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) around everything drawn for this body (limb thickness included)."""
        pts = np.concatenate([self.keypoints, self.hands, self.feet], axis=0)
        pad = 0.05 * self.height
        return (
            float(pts[:, 0].min() - pad),
            float(pts[:, 1].min() - pad),
            float(pts[:, 0].max() + pad),
            float(pts[:, 1].max() + pad),
        )


@dataclasses.dataclass(frozen=True)
class Style:
    """Colours (RGB, 0–255, float32 [3]) of one person.

    `limb_jitter` multiplies each limb's colour (index: [right/left, upper arm/forearm/thigh/shin])
    so that colour alone never identifies a part exactly.
    """

    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    sleeve: np.ndarray  # forearm colour (skin for short sleeves)
    pants: np.ndarray
    shin: np.ndarray  # shin colour (skin for shorts)
    shoes: np.ndarray
    limb_jitter: np.ndarray  # [2, 4]
    side_order: tuple[int, int]  # which side's limbs are drawn first


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


# --------------------------------------------------------------------------------------------
# Pose


def _mixture(rng: np.random.Generator, options) -> float:
    """Samples uniform(lo, hi) from one of several (weight, lo, hi) ranges."""
    weights = np.array([o[0] for o in options], np.float64)
    k = rng.choice(len(options), p=weights / weights.sum())
    return float(rng.uniform(options[k][1], options[k][2]))


def sample_pose(rng: np.random.Generator, config: SyntheticConfig | None = None) -> PoseParams:
    """Samples a plausible pose: joint angles within anatomical limits, mostly upright.

    The 2-D projection of a 3-D pose can bend a limb either way, so elbows and knees get a range on
    both sides of straight, wider on the side a real joint flexes.
    """
    config = config or SyntheticConfig()
    if rng.random() < config.upright_fraction:
        rotation = rng.uniform(-config.upright_rotation_deg, config.upright_rotation_deg)
    else:
        rotation = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)

    def arm():
        # Hanging, raised sideways, overhead, or across the body.
        return _mixture(rng, [(0.45, -10, 40), (0.25, 30, 110), (0.15, 100, 170), (0.15, -40, 0)])

    def elbow():
        return _mixture(rng, [(0.4, -20, 20), (0.45, -145, -20), (0.15, 20, 70)])

    def leg():
        return _mixture(rng, [(0.7, -8, 25), (0.2, 20, 55), (0.1, -15, 85)])

    def knee():
        return _mixture(rng, [(0.6, -10, 10), (0.25, -70, -10), (0.15, 10, 60)])

    def length(p_short, lo):
        return float(rng.uniform(lo, 1.0)) if rng.random() < p_short else 1.0

    return PoseParams(
        facing_camera=bool(rng.random() >= config.facing_away_fraction),
        rotation=float(rotation),
        lean=float(rng.uniform(-12, 12)),
        head_tilt=float(rng.uniform(-20, 20)),
        shoulder_width=float(rng.uniform(0.6, 1.1)),
        arm=(arm(), arm()),
        elbow=(elbow(), elbow()),
        leg=(leg(), leg()),
        knee=(knee(), knee()),
        arm_length=(length(0.3, 0.6), length(0.3, 0.6)),
        leg_length=(length(0.2, 0.8), length(0.2, 0.8)),
        proportions=float(rng.uniform(0.93, 1.07)),
    )


def pose_body(params: PoseParams, height: float, center: tuple[float, float]) -> Body:
    """Places a pose in an image: stature `height` pixels, body centre at `center` (x, y).

    The body centre is the mid-point of pelvis and thorax; rotation is about it.
    """
    idx = JOINT_SET.index
    p = params.proportions
    lean = math.radians(params.lean)
    up = (math.sin(lean), -math.cos(lean))  # torso axis, pelvis → thorax (y grows downward)
    lateral = (math.cos(lean), math.sin(lean))  # image-right perpendicular to the torso
    tilt = lean + math.radians(params.head_tilt)
    head_up = (math.sin(tilt), -math.cos(tilt))
    # Image-x direction of the person's (right, left) side: a person facing the camera has the
    # right side on the image left.
    sides = (-1.0, 1.0) if params.facing_camera else (1.0, -1.0)

    def add(a, b, s=1.0):
        return (a[0] + s * b[0], a[1] + s * b[1])

    def direction(side_sign, angle_deg):
        # 0° points down the torso; positive turns towards the limb's own side.
        a = math.radians(angle_deg)
        c, s = math.cos(a), math.sin(a) * side_sign
        return (-c * up[0] + s * lateral[0], -c * up[1] + s * lateral[1])

    pts = [None] * JOINT_SET.num_joints
    pelvis = (0.0, 0.0)
    thorax = add(pelvis, up, _TORSO * p)
    pts[idx("pelvis")] = pelvis
    pts[idx("thorax")] = thorax
    pts[idx("upper_neck")] = add(thorax, head_up, _NECK * p)
    pts[idx("head_top")] = add(pts[idx("upper_neck")], head_up, _HEAD)
    hands, feet = [], []
    for k, (side, sign) in enumerate(zip(("r", "l"), sides, strict=True)):
        width = params.shoulder_width * p
        shoulder = add(add(thorax, lateral, sign * _SHOULDER_HALF * width), up, -0.015)
        hip = add(pelvis, lateral, sign * _HIP_HALF * width)
        a_len, l_len = params.arm_length[k] * p, params.leg_length[k] * p
        upper = params.arm[k]
        fore = upper + params.elbow[k]
        elbow = add(shoulder, direction(sign, upper), _UPPER_ARM * a_len)
        wrist = add(elbow, direction(sign, fore), _FOREARM * a_len)
        thigh = params.leg[k]
        shin = thigh + params.knee[k]
        knee = add(hip, direction(sign, thigh), _THIGH * l_len)
        ankle = add(knee, direction(sign, shin), _SHIN * l_len)
        pts[idx(f"{side}_shoulder")] = shoulder
        pts[idx(f"{side}_elbow")] = elbow
        pts[idx(f"{side}_wrist")] = wrist
        pts[idx(f"{side}_hip")] = hip
        pts[idx(f"{side}_knee")] = knee
        pts[idx(f"{side}_ankle")] = ankle
        hands.append(add(wrist, direction(sign, fore), _HAND * a_len))
        # Feet point at the viewer and a little outwards: short, turned out from the shin.
        feet.append(add(ankle, direction(sign, shin + 70.0), _FOOT))

    all_pts = np.array(pts + hands + feet, np.float64)
    body_centre = 0.5 * (all_pts[idx("pelvis")] + all_pts[idx("thorax")])
    rot = math.radians(params.rotation)
    c, s = math.cos(rot), math.sin(rot)
    # Clockwise on screen for positive angles (y points down).
    matrix = np.array([[c, -s], [s, c]])
    placed = (all_pts - body_centre) @ matrix.T * height + np.asarray(center, np.float64)
    n = JOINT_SET.num_joints
    hx = c * head_up[0] - s * head_up[1]
    hy = s * head_up[0] + c * head_up[1]
    return Body(
        keypoints=placed[:n],
        hands=placed[n : n + 2],
        feet=placed[n + 2 : n + 4],
        height=float(height),
        head_axis=(hx, hy),
        facing_camera=params.facing_camera,
    )


# --------------------------------------------------------------------------------------------
# Rasterisation: anti-aliased shapes composited into a float32 canvas, restricted to each shape's
# bounding box (a few thousand pixels per shape) so the numpy work stays small.


def _box(canvas, x_lo, y_lo, x_hi, y_hi):
    h, w = canvas.shape[:2]
    x0, y0 = max(int(math.floor(x_lo)), 0), max(int(math.floor(y_lo)), 0)
    x1, y1 = min(int(math.ceil(x_hi)) + 1, w), min(int(math.ceil(y_hi)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _composite(canvas, owner, owner_id, box, alpha, color, darken=None):
    """Blends `color` (darkened by `darken` ∈ [0, 1] per pixel) into the canvas with `alpha`."""
    x0, y0, x1, y1 = box
    region = canvas[y0:y1, x0:x1]
    if darken is None:
        delta = color - region
    else:
        delta = np.multiply.outer(1.0 - darken, color)
        delta -= region
    delta *= alpha[..., None]
    region += delta
    if owner is not None:
        np.putmask(owner[y0:y1, x0:x1], alpha > 0.5, owner_id)


def draw_capsule(canvas, owner, owner_id, p, q, radius, color, shade=0.35):
    """Draws a segment p→q (x, y) with round ends, `radius` pixels thick on each side.

    `shade` darkens towards the edges like a lit cylinder, which shows limb outlines and overlaps.
    """
    r = max(radius, 0.7)
    box = _box(
        canvas,
        min(p[0], q[0]) - r - 1,
        min(p[1], q[1]) - r - 1,
        max(p[0], q[0]) + r + 1,
        max(p[1], q[1]) + r + 1,
    )
    if box is None:
        return
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(p[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(p[1])
    dx, dy = np.float32(q[0] - p[0]), np.float32(q[1] - p[1])
    l2 = dx * dx + dy * dy
    if l2 > 1e-6:
        t = np.clip((xs * dx + ys * dy) * (1.0 / l2), 0.0, 1.0)
        ex, ey = xs - t * dx, ys - t * dy
    else:
        ex, ey = xs + 0.0 * ys, ys + 0.0 * xs
    d2 = ex * ex + ey * ey
    d = np.sqrt(d2)
    alpha = np.clip(np.float32(r + 0.5) - d, 0.0, 1.0)
    darken = np.minimum(d2 * np.float32(shade / (r * r)), np.float32(shade))
    _composite(canvas, owner, owner_id, box, alpha, color, darken)


def draw_ellipse(canvas, owner, owner_id, center, half_a, half_b, angle, color, shade=0.3):
    """Draws an ellipse: semi-axis `half_a` along `angle` (radians from +x), `half_b` across."""
    ext_x = math.hypot(half_a * math.cos(angle), half_b * math.sin(angle)) + 1
    ext_y = math.hypot(half_a * math.sin(angle), half_b * math.cos(angle)) + 1
    box = _box(canvas, center[0] - ext_x, center[1] - ext_y, center[0] + ext_x, center[1] + ext_y)
    if box is None:
        return
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(center[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(center[1])
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (xs * c + ys * s) * np.float32(1.0 / max(half_a, 0.5))
    v = (ys * c - xs * s) * np.float32(1.0 / max(half_b, 0.5))
    rho2 = u * u + v * v
    # (ρ − 1)·min(a, b) approximates the signed distance to the outline: enough for 1-px AA.
    alpha = np.clip(0.5 - (np.sqrt(rho2) - 1.0) * np.float32(min(half_a, half_b)), 0.0, 1.0)
    darken = np.minimum(rho2, 1.0) * np.float32(shade)
    _composite(canvas, owner, owner_id, box, alpha, color, darken)


def draw_polygon(canvas, owner, owner_id, vertices, color, shade=0.0):
    """Draws a convex polygon given by (x, y) `vertices` in either winding order."""
    v = np.asarray(vertices, np.float64)
    box = _box(canvas, v[:, 0].min() - 1, v[:, 1].min() - 1, v[:, 0].max() + 1, v[:, 1].max() + 1)
    if box is None:
        return
    x0, y0, x1, y1 = box
    edges = np.roll(v, -1, axis=0) - v
    area2 = np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    if area2 < 0:  # make normals point outwards whatever the winding
        normals = -normals
    offsets = np.sum(normals * v, axis=1)
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    sd = None
    for (nx, ny), off in zip(normals.astype(np.float32), offsets.astype(np.float32), strict=True):
        e = xs * nx + ys * ny - off
        sd = e if sd is None else np.maximum(sd, e)
    alpha = np.clip(0.5 - sd, 0.0, 1.0)
    darken = None
    if shade:
        # Darker towards the outline: gives the torso some volume.
        depth = np.float32(max(0.25 * min(x1 - x0, y1 - y0), 1.0))
        darken = np.float32(shade) * np.clip(1.0 + sd / depth, 0.0, 1.0) ** 2
    _composite(canvas, owner, owner_id, box, alpha, color, darken)


# --------------------------------------------------------------------------------------------
# People


def _color(rng, lo=15.0, hi=240.0):
    return rng.uniform(lo, hi, 3).astype(np.float32)


def sample_style(rng: np.random.Generator) -> Style:
    """Samples skin, hair and clothing colours for one person."""
    t = rng.random()
    skin = (1 - t) * np.array([236, 200, 172]) + t * np.array([92, 58, 40])
    skin = (skin + rng.uniform(-10, 10, 3)).astype(np.float32)
    hair_palette = np.array(
        [[25, 20, 18], [60, 40, 25], [110, 72, 40], [205, 175, 115], [165, 160, 155], [140, 50, 25]]
    )
    hair = (hair_palette[rng.integers(len(hair_palette))] + rng.uniform(-12, 12, 3)).astype(
        np.float32
    )
    shirt = _color(rng)
    pants = _color(rng)
    # Lower limb segments differ from upper ones by shade (sleeves/trouser legs) or are bare
    # skin; the factor varies so that the network must use shape as well as colour.
    sleeve = skin if rng.random() < 0.5 else np.clip(shirt * rng.uniform(0.7, 1.3), 0, 255)
    shin = skin if rng.random() < 0.25 else np.clip(pants * rng.uniform(0.75, 1.25), 0, 255)
    shoes = _color(rng, 10, 120)
    return Style(
        skin=skin,
        hair=hair,
        shirt=shirt,
        sleeve=sleeve.astype(np.float32),
        pants=pants,
        shin=shin.astype(np.float32),
        shoes=shoes,
        limb_jitter=rng.uniform(0.92, 1.08, (2, 4)).astype(np.float32),
        side_order=(0, 1) if rng.random() < 0.5 else (1, 0),
    )


def _side_color(color, side):
    """The left/right cue: the person's right side lighter, left side darker (side 0 = right)."""
    if side == 0:
        return color * np.float32(0.85) + np.float32(0.15 * 255)
    return color * np.float32(0.78)


def render_person(
    canvas: np.ndarray, owner: np.ndarray | None, owner_id: int, body: Body, style: Style
) -> None:
    """Draws a body into `canvas` (float32 [h, w, 3], 0–255) and marks its pixels in `owner`.

    Order: legs, torso, arms, neck, head (arms in front of the torso, head over raised arms).
    """
    kp = body.keypoints
    idx = JOINT_SET.index
    h = body.height

    def limb_color(base, side, part):
        return np.clip(_side_color(base, side) * style.limb_jitter[side, part], 0, 255)

    for side in style.side_order:
        s = "rl"[side]
        hip, knee, ankle = kp[idx(f"{s}_hip")], kp[idx(f"{s}_knee")], kp[idx(f"{s}_ankle")]
        draw_capsule(canvas, owner, owner_id, ankle, body.feet[side], _R_FOOT * h, style.shoes)
        draw_capsule(
            canvas, owner, owner_id, knee, ankle, _R_SHIN * h, limb_color(style.shin, side, 3)
        )
        draw_capsule(
            canvas, owner, owner_id, hip, knee, _R_THIGH * h, limb_color(style.pants, side, 2)
        )

    # Torso: shoulders to hips, widened by the limbs' thickness so limbs attach inside it.
    rs, ls = kp[idx("r_shoulder")], kp[idx("l_shoulder")]
    rh, lh = kp[idx("r_hip")], kp[idx("l_hip")]
    across_top = (rs - ls) / max(float(np.hypot(*(rs - ls))), 1e-6)
    across_bottom = (rh - lh) / max(float(np.hypot(*(rh - lh))), 1e-6)
    thorax, pelvis = kp[idx("thorax")], kp[idx("pelvis")]
    torso_up = (thorax - pelvis) / max(float(np.hypot(*(thorax - pelvis))), 1e-6)
    top = 0.03 * h * torso_up
    bottom = -0.03 * h * torso_up
    draw_polygon(
        canvas,
        owner,
        owner_id,
        [
            rs + 0.02 * h * across_top + top,
            ls - 0.02 * h * across_top + top,
            lh - 0.035 * h * across_bottom + bottom,
            rh + 0.035 * h * across_bottom + bottom,
        ],
        style.shirt,
        shade=0.3,
    )
    # A belt line separates shirt and trousers and marks the pelvis level.
    draw_capsule(
        canvas,
        owner,
        owner_id,
        rh + 0.03 * h * across_bottom,
        lh - 0.03 * h * across_bottom,
        0.025 * h,
        style.pants,
        shade=0.2,
    )

    for side in style.side_order:
        s = "rl"[side]
        sh, el, wr = kp[idx(f"{s}_shoulder")], kp[idx(f"{s}_elbow")], kp[idx(f"{s}_wrist")]
        draw_capsule(
            canvas, owner, owner_id, sh, el, _R_UPPER_ARM * h, limb_color(style.shirt, side, 0)
        )
        draw_capsule(
            canvas, owner, owner_id, el, wr, _R_FOREARM * h, limb_color(style.sleeve, side, 1)
        )
        # The hand is a blob wider than the wrist, so the wrist shows even on bare forearms.
        hand = body.hands[side] - wr
        hand_len = float(np.hypot(*hand))
        draw_ellipse(
            canvas,
            owner,
            owner_id,
            wr + 0.55 * hand,
            0.55 * hand_len + 0.01 * h,
            _R_HAND * h,
            math.atan2(hand[1], hand[0]),
            style.skin * np.float32(0.9),
            shade=0.25,
        )

    draw_capsule(
        canvas, owner, owner_id, thorax, kp[idx("upper_neck")], _R_NECK * h, style.skin, shade=0.2
    )
    centre, half_len, half_wid, angle = body.head_ellipse()
    draw_ellipse(canvas, owner, owner_id, centre, half_len, half_wid, angle, style.hair)
    if body.facing_camera:
        # Face: the lower part of the head is skin with eyes and a mouth, hair remains on top.
        ax, ay = body.head_axis
        px, py = -ay, ax  # across the head
        fc = (centre[0] - 0.22 * half_len * ax, centre[1] - 0.22 * half_len * ay)
        draw_ellipse(
            canvas, owner, owner_id, fc, 0.75 * half_len, 0.85 * half_wid, angle, style.skin
        )
        eye_r = max(0.12 * half_wid, 0.6)
        dark = np.array([20, 15, 15], np.float32)
        for k in (-1.0, 1.0):
            eye = (
                fc[0] + 0.1 * half_len * ax + k * 0.4 * half_wid * px,
                fc[1] + 0.1 * half_len * ay + k * 0.4 * half_wid * py,
            )
            draw_ellipse(canvas, owner, owner_id, eye, eye_r, eye_r, 0.0, dark, shade=0.0)
        mouth = (fc[0] - 0.4 * half_len * ax, fc[1] - 0.4 * half_len * ay)
        draw_ellipse(
            canvas,
            owner,
            owner_id,
            mouth,
            0.5 * eye_r,
            1.6 * eye_r,
            angle,
            np.array([150, 50, 50], np.float32),
            shade=0.0,
        )


# --------------------------------------------------------------------------------------------
# Backgrounds


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] smooth-step interpolation weights from a coarse grid to `n_out` samples."""
    if n_in == 1:
        return np.ones((n_out, 1), np.float32)
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n_in - 2)
    f = pos - i0
    f = f * f * (3.0 - 2.0 * f)  # smooth step: no visible creases at grid lines
    m = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    m[rows, i0] = 1.0 - f
    m[rows, i0 + 1] += f
    return m


def _smooth_noise(rng, h, w, cells, amplitude):
    gh, gw = int(rng.integers(cells[0], cells[1] + 1)), int(rng.integers(cells[0], cells[1] + 1))
    grid = rng.uniform(-amplitude, amplitude, (gh, gw, 3)).astype(np.float32)
    grid += rng.uniform(-amplitude, amplitude, (gh, gw, 1)).astype(np.float32)  # luminance
    rows = (_interp_matrix(h, gh) @ grid.reshape(gh, gw * 3)).reshape(h, gw, 3)
    return _interp_matrix(w, gw) @ rows  # batched over rows: [h, w, 3], contiguous


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background, float32 [height, width, 3] in 0–255.

    One of: smooth colour noise, a gradient, stripes, or blobs over noise; sometimes blended with
    a second one; always with some fine pixel noise (JPEG-like grain).
    """
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]

    def one(kind):
        base = _color(rng, 30, 225)
        if kind == 0:
            noise = _smooth_noise(rng, height, width, (2, 7), 70.0)
            noise += base
            return noise
        if kind == 1:
            a = rng.uniform(0, 2 * math.pi)
            t = (xs * math.cos(a) + ys * math.sin(a)) / float(max(height, width))
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
            out = np.multiply.outer(t, _color(rng, 30, 225) - base)
            out += base
            return out
        if kind == 2:
            a = rng.uniform(0, math.pi)
            period = rng.uniform(6.0, 40.0)
            t = (xs * math.cos(a) + ys * math.sin(a)) * np.float32(2 * math.pi / period)
            s = np.sin(t + np.float32(rng.uniform(0, 2 * math.pi)))
            if rng.random() < 0.5:
                s = np.sign(s)  # hard-edged stripes: straight edges that look a bit like limbs
            out = np.multiply.outer(0.5 + 0.5 * s, _color(rng, 30, 225) - base)
            out += base
            return out
        canvas = _smooth_noise(rng, height, width, (2, 5), 40.0)
        canvas += base
        for _ in range(int(rng.integers(3, 9))):
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            size = rng.uniform(8, 0.3 * max(height, width), 2)
            color = _color(rng)
            if rng.random() < 0.5:
                draw_ellipse(
                    canvas, None, 0, centre, size[0], size[1], rng.uniform(0, math.pi), color
                )
            else:
                a = rng.uniform(0, math.pi)
                c, s = math.cos(a) * 0.5, math.sin(a) * 0.5
                u = np.array([c * size[0], s * size[0]])
                v = np.array([-s * size[1], c * size[1]])
                ctr = np.asarray(centre)
                draw_polygon(
                    canvas, None, 0, [ctr + u + v, ctr - u + v, ctr - u - v, ctr + u - v], color
                )
        return canvas

    image = one(int(rng.integers(4)))
    if rng.random() < 0.35:
        mix = np.float32(rng.uniform(0.25, 0.6))
        other = one(int(rng.integers(4)))
        other -= image
        other *= mix
        image += other
    # Grain: a small random tile repeated (far cheaper than per-pixel normal draws).
    sigma = rng.uniform(0.0, 8.0)
    tile = rng.normal(0.0, sigma, (37, 41, 3)).astype(np.float32)
    reps = (height // 37 + 1, width // 41 + 1, 1)
    image += np.tile(tile, reps)[:height, :width]
    return np.clip(image, 0.0, 255.0, out=image)


# --------------------------------------------------------------------------------------------
# Occluders


def _draw_occluder(rng, canvas, owner, centre, size):
    color = _color(rng)
    if rng.random() < 0.5:
        draw_ellipse(
            canvas,
            owner,
            _OCCLUDER,
            centre,
            size[0],
            size[1],
            rng.uniform(0, math.pi),
            color,
            shade=float(rng.uniform(0.0, 0.3)),
        )
        return
    a = rng.uniform(-0.5, 0.5) if rng.random() < 0.7 else rng.uniform(0, math.pi)
    c, s = math.cos(a), math.sin(a)
    u = np.array([c * size[0], s * size[0]])
    v = np.array([-s * size[1], c * size[1]])
    ctr = np.asarray(centre, np.float64)
    draw_polygon(
        canvas,
        owner,
        _OCCLUDER,
        [ctr + u + v, ctr - u + v, ctr - u - v, ctr + u - v],
        color,
        shade=float(rng.uniform(0.0, 0.3)),
    )


# --------------------------------------------------------------------------------------------
# Scenes


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


def render_scene(
    rng: np.random.Generator, config: SyntheticConfig | None = None, keep_background: bool = True
) -> Scene:
    """Renders one annotated person with distractors and occluders; all randomness from `rng`.

    `keep_background=False` skips the copy of the bare background (`Scene.background` is then
    None); the image is the same either way.
    """
    config = config or SyntheticConfig()
    lo_h, hi_h = config.person_height_range
    height = float(math.exp(rng.uniform(math.log(lo_h), math.log(hi_h))))
    params = sample_pose(rng, config)
    probe = pose_body(params, height, (0.0, 0.0))
    x1, y1, x2, y2 = probe.extent()

    lo_s, hi_s = config.image_size_range
    img_w = int(rng.integers(int(min(max(lo_s, 1.05 * (x2 - x1)), hi_s)), hi_s + 1))
    img_h = int(rng.integers(int(min(max(lo_s, 1.05 * (y2 - y1)), hi_s)), hi_s + 1))
    allow_out = rng.random() < config.truncated_fraction
    cx = _place_range(x1, x2, img_w, rng, allow_out)
    cy = _place_range(y1, y2, img_h, rng, allow_out)
    body = pose_body(params, height, (cx, cy))
    style = sample_style(rng)

    canvas = render_background(rng, img_h, img_w)
    background = np.clip(np.rint(canvas), 0, 255).astype(np.uint8) if keep_background else None
    owner = np.zeros((img_h, img_w), np.uint8)

    # Distractors: other people beside or behind (or occasionally in front), never centred on
    # the annotated person, since the crop position is what tells the network whom to annotate.
    num_distractors = int(rng.choice(config.max_distractors + 1, p=_distractor_probs(config)))
    front = []
    for _ in range(num_distractors):
        d_height = height * float(rng.uniform(0.6, 1.25))
        d_params = sample_pose(rng, config)
        dx1, _, dx2, _ = pose_body(d_params, d_height, (0.0, 0.0)).extent()
        # Side by side, overlapping at most about half of the narrower body.
        gap = 0.5 * ((x2 - x1) + (dx2 - dx1)) * float(rng.uniform(0.65, 1.3))
        dx = gap if rng.random() < 0.5 else -gap
        dy = float(rng.normal(0.0, 0.15)) * height
        d_body = pose_body(d_params, d_height, (cx + dx, cy + dy))
        d_style = sample_style(rng)
        if rng.random() < config.distractor_front_fraction:
            front.append((d_body, d_style))
        else:
            render_person(canvas, owner, _DISTRACTOR, d_body, d_style)
    render_person(canvas, owner, _MAIN, body, style)
    for d_body, d_style in front:
        render_person(canvas, owner, _DISTRACTOR, d_body, d_style)

    if rng.random() < config.occluder_fraction:
        for _ in range(int(rng.integers(1, 3))):
            target = body.keypoints[int(rng.integers(JOINT_SET.num_joints))]
            centre = target + rng.normal(0.0, 0.08 * height, 2)
            size = rng.uniform(0.06, 0.18, 2) * height
            _draw_occluder(rng, canvas, owner, centre, size)

    headbox = _headbox(body)
    normalizer = 0.6 * math.hypot(headbox[2] - headbox[0], headbox[3] - headbox[1])
    keypoints, status = _annotate(body, owner, normalizer)

    # Crop: the square of side 1.25 × the person's extent around the body's centre, jittered a
    # little (as human-made centres and scales are) but always containing the whole person.
    bx1, by1, bx2, by2 = body.extent()
    extent = max(bx2 - bx1, by2 - by1)
    jitter = rng.uniform(-0.03, 0.03, 2) * extent
    center = (float(0.5 * (bx1 + bx2) + jitter[0]), float(0.5 * (by1 + by2) + jitter[1]))
    scale = float(_SCALE_MARGIN * extent * rng.uniform(0.97, 1.08) / features.PIXELS_PER_SCALE)

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
        if owner[yi, xi] != _MAIN:
            status[j] = features.OCCLUDED
    return kp, status


# --------------------------------------------------------------------------------------------
# Public entry points


def example_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one example: a function of (seed, split, index) only."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(_SPLIT_CODES)}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 [h, w, 3] image (TensorFlow's encoder: deterministic per build)."""
    return tf.io.encode_jpeg(tf.constant(image), quality=quality).numpy()


def make_example(
    split: str, index: int, seed: int = 0, config: SyntheticConfig | None = None
) -> features.PersonExample:
    """Example `index` of `split` (random access; equal to the one `generate_examples` yields)."""
    config = config or SyntheticConfig()
    scene = render_scene(example_rng(split, index, seed), config, keep_background=False)
    h, w = scene.image.shape[:2]
    return features.PersonExample(
        image_encoded=encode_jpeg(scene.image, config.jpeg_quality),
        filename=f"synthetic_{split}_{index:06d}.jpg",
        height=h,
        width=w,
        center=scene.center,
        scale=scene.scale,
        keypoints=scene.keypoints,
        keypoint_status=scene.keypoint_status,
        normalizer=scene.normalizer,
        headbox=scene.headbox,
        dataset="synthetic",
        index=index,
        person=0,
    )


def generate_examples(
    split: str, num_examples: int, seed: int = 0, config: SyntheticConfig | None = None
) -> Iterator[features.PersonExample]:
    """Yields `num_examples` synthetic people of `split` ("train", "valid" or "test").

    Deterministic given the arguments (byte-identical JPEGs for one TensorFlow build); the splits
    draw from disjoint random streams. Example i is `make_example(split, i, seed, config)`.
    """
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    example_rng(split, 0, seed)  # fail on bad arguments now, not at the first next()
    return (make_example(split, i, seed, config) for i in range(num_examples))
