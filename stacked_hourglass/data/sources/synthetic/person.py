"""People: a person's colours (`Style`) and drawing a posed body (`render_person`).

Two cues make left/right learnable: a face (skin-coloured with eyes and a mouth) on people facing
the camera, hair all over the head of people facing away; and limbs of the person's left side are
drawn darker than those of the right side.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stacked_hourglass.data.sources.synthetic.body import (
    R_FOOT,
    R_FOREARM,
    R_HAND,
    R_NECK,
    R_SHIN,
    R_THIGH,
    R_UPPER_ARM,
    Body,
)
from stacked_hourglass.data.sources.synthetic.params import JOINT_SET
from stacked_hourglass.data.sources.synthetic.raster import (
    draw_capsule,
    draw_ellipse,
    draw_polygon,
    random_color,
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
    shirt = random_color(rng)
    pants = random_color(rng)
    # Lower limb segments differ from upper ones by shade (sleeves/trouser legs) or are bare
    # skin; the factor varies so that the network must use shape as well as colour.
    sleeve = skin if rng.random() < 0.5 else np.clip(shirt * rng.uniform(0.7, 1.3), 0, 255)
    shin = skin if rng.random() < 0.25 else np.clip(pants * rng.uniform(0.75, 1.25), 0, 255)
    shoes = random_color(rng, 10, 120)
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


def _limb_color(style: Style, base, side: int, part: int):
    return np.clip(_side_color(base, side) * style.limb_jitter[side, part], 0, 255)


def _draw_legs(canvas, owner, owner_id, body: Body, style: Style) -> None:
    kp, idx, h = body.keypoints, JOINT_SET.index, body.height
    for side in style.side_order:
        s = "rl"[side]
        hip, knee, ankle = kp[idx(f"{s}_hip")], kp[idx(f"{s}_knee")], kp[idx(f"{s}_ankle")]
        draw_capsule(canvas, owner, owner_id, ankle, body.feet[side], R_FOOT * h, style.shoes)
        draw_capsule(
            canvas,
            owner,
            owner_id,
            knee,
            ankle,
            R_SHIN * h,
            _limb_color(style, style.shin, side, 3),
        )
        draw_capsule(
            canvas,
            owner,
            owner_id,
            hip,
            knee,
            R_THIGH * h,
            _limb_color(style, style.pants, side, 2),
        )


def _draw_torso(canvas, owner, owner_id, body: Body, style: Style) -> None:
    """Shoulders to hips, widened by the limbs' thickness so limbs attach inside it; a belt."""
    kp, idx, h = body.keypoints, JOINT_SET.index, body.height
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


def _draw_arms(canvas, owner, owner_id, body: Body, style: Style) -> None:
    kp, idx, h = body.keypoints, JOINT_SET.index, body.height
    for side in style.side_order:
        s = "rl"[side]
        sh, el, wr = kp[idx(f"{s}_shoulder")], kp[idx(f"{s}_elbow")], kp[idx(f"{s}_wrist")]
        draw_capsule(
            canvas,
            owner,
            owner_id,
            sh,
            el,
            R_UPPER_ARM * h,
            _limb_color(style, style.shirt, side, 0),
        )
        draw_capsule(
            canvas,
            owner,
            owner_id,
            el,
            wr,
            R_FOREARM * h,
            _limb_color(style, style.sleeve, side, 1),
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
            R_HAND * h,
            math.atan2(hand[1], hand[0]),
            style.skin * np.float32(0.9),
            shade=0.25,
        )


def _draw_head(canvas, owner, owner_id, body: Body, style: Style) -> None:
    """Neck and head; a face (skin, eyes, mouth) when the person faces the camera."""
    kp, idx, h = body.keypoints, JOINT_SET.index, body.height
    draw_capsule(
        canvas, owner, owner_id, kp[idx("thorax")], kp[idx("upper_neck")], R_NECK * h, style.skin,
        shade=0.2,
    )  # fmt: skip
    centre, half_len, half_wid, angle = body.head_ellipse()
    draw_ellipse(canvas, owner, owner_id, centre, half_len, half_wid, angle, style.hair)
    if not body.facing_camera:
        return
    # Face: the lower part of the head is skin with eyes and a mouth, hair remains on top.
    ax, ay = body.head_axis
    px, py = -ay, ax  # across the head
    fc = (centre[0] - 0.22 * half_len * ax, centre[1] - 0.22 * half_len * ay)
    draw_ellipse(canvas, owner, owner_id, fc, 0.75 * half_len, 0.85 * half_wid, angle, style.skin)
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
        canvas, owner, owner_id, mouth, 0.5 * eye_r, 1.6 * eye_r, angle,
        np.array([150, 50, 50], np.float32), shade=0.0,
    )  # fmt: skip


def render_person(
    canvas: np.ndarray, owner: np.ndarray | None, owner_id: int, body: Body, style: Style
) -> None:
    """Draws a body into `canvas` (float32 [h, w, 3], 0–255) and marks its pixels in `owner`.

    Order: legs, torso, arms, neck, head (arms in front of the torso, head over raised arms).
    """
    _draw_legs(canvas, owner, owner_id, body, style)
    _draw_torso(canvas, owner, owner_id, body, style)
    _draw_arms(canvas, owner, owner_id, body, style)
    _draw_head(canvas, owner, owner_id, body, style)
