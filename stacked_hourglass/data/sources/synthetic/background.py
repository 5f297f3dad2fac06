"""Backgrounds (textures the people stand on) and occluders (objects drawn over them)."""

from __future__ import annotations

import math

import numpy as np

from stacked_hourglass.data.sources.synthetic.raster import (
    OCCLUDER,
    draw_ellipse,
    draw_polygon,
    random_color,
)


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


def _texture(rng: np.random.Generator, kind: int, height: int, width: int) -> np.ndarray:
    """One background texture, float32 [height, width, 3]: 0 smooth colour noise, 1 a gradient,
    2 stripes, 3 blobs over noise."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    base = random_color(rng, 30, 225)
    if kind == 0:
        noise = _smooth_noise(rng, height, width, (2, 7), 70.0)
        noise += base
        return noise
    if kind == 1:
        a = rng.uniform(0, 2 * math.pi)
        t = (xs * math.cos(a) + ys * math.sin(a)) / float(max(height, width))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        out = np.multiply.outer(t, random_color(rng, 30, 225) - base)
        out += base
        return out
    if kind == 2:
        a = rng.uniform(0, math.pi)
        period = rng.uniform(6.0, 40.0)
        t = (xs * math.cos(a) + ys * math.sin(a)) * np.float32(2 * math.pi / period)
        s = np.sin(t + np.float32(rng.uniform(0, 2 * math.pi)))
        if rng.random() < 0.5:
            s = np.sign(s)  # hard-edged stripes: straight edges that look a bit like limbs
        out = np.multiply.outer(0.5 + 0.5 * s, random_color(rng, 30, 225) - base)
        out += base
        return out
    canvas = _smooth_noise(rng, height, width, (2, 5), 40.0)
    canvas += base
    for _ in range(int(rng.integers(3, 9))):
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        size = rng.uniform(8, 0.3 * max(height, width), 2)
        color = random_color(rng)
        if rng.random() < 0.5:
            draw_ellipse(canvas, None, 0, centre, size[0], size[1], rng.uniform(0, math.pi), color)
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


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background, float32 [height, width, 3] in 0–255.

    One of: smooth colour noise, a gradient, stripes, or blobs over noise; sometimes blended with
    a second one; always with some fine pixel noise (JPEG-like grain).
    """
    image = _texture(rng, int(rng.integers(4)), height, width)
    if rng.random() < 0.35:
        mix = np.float32(rng.uniform(0.25, 0.6))
        other = _texture(rng, int(rng.integers(4)), height, width)
        other -= image
        other *= mix
        image += other
    # Grain: a small random tile repeated (far cheaper than per-pixel normal draws).
    sigma = rng.uniform(0.0, 8.0)
    tile = rng.normal(0.0, sigma, (37, 41, 3)).astype(np.float32)
    reps = (height // 37 + 1, width // 41 + 1, 1)
    image += np.tile(tile, reps)[:height, :width]
    return np.clip(image, 0.0, 255.0, out=image)


def draw_occluder(rng, canvas, owner, centre, size):
    """Draws a random ellipse or (mostly upright) rectangle of half-size `size` at `centre`."""
    color = random_color(rng)
    if rng.random() < 0.5:
        draw_ellipse(
            canvas,
            owner,
            OCCLUDER,
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
        OCCLUDER,
        [ctr + u + v, ctr - u + v, ctr - u - v, ctr + u - v],
        color,
        shade=float(rng.uniform(0.0, 0.3)),
    )
