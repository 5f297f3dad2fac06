"""Pose sampling and body geometry: a 2-D kinematic stick body in body units, placed in pixels.

Left/right are the person's own sides, so a person facing the camera has the right side on the
image left. Coordinates: 0-based pixels, (x, y) order, y downward.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stacked_hourglass.data.sources.synthetic.params import JOINT_SET, SyntheticConfig

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

# Limb radii (half thickness) as fractions of H (the renderer draws limbs this thick).
R_UPPER_ARM = 0.03
R_FOREARM = 0.024
R_HAND = 0.03  # half-width of the hand blob
R_THIGH = 0.045
R_SHIN = 0.034
R_FOOT = 0.024
R_NECK = 0.026
_HEAD_HALF_WIDTH = 0.055


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
