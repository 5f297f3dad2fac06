"""Rasterisation: anti-aliased shapes composited into a float32 canvas.

Each shape is drawn only inside its bounding box (a few thousand pixels per shape), so the numpy
work stays small. Every drawing function also marks the pixels a shape covers (alpha > 0.5) in an
optional `owner` map with `owner_id`: which object covers each pixel, used to decide whether a
keypoint is visible.
"""

from __future__ import annotations

import math

import numpy as np

# Owner labels of the owner map.
BACKGROUND, MAIN, DISTRACTOR, OCCLUDER = 0, 1, 2, 3


def random_color(rng, lo=15.0, hi=240.0):
    """A random RGB colour, float32 [3], each channel uniform in [lo, hi)."""
    return rng.uniform(lo, hi, 3).astype(np.float32)


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
