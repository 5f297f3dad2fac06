"""Drawing poses: skeleton overlays for TensorBoard, `predict` and dataset inspection
(matplotlib), and a numpy rasteriser fast enough for every frame of a video (`draw_skeletons`).
"""

from __future__ import annotations

import io

import numpy as np

from stacked_hourglass import joints as joints_lib


def _pyplot():
    # Agg: no display on servers; imported lazily so that importing this module stays cheap.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# One colour per person (matplotlib's tab10, cycled): distinguishable on photos and in print.
PERSON_COLORS = (
    "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple",
    "tab:cyan", "tab:pink", "tab:olive", "tab:brown", "tab:gray",
)  # fmt: skip


def draw_pose(ax, keypoints, joint_set: joints_lib.JointSet, scores=None, visible=None, color=None):
    """Draws a skeleton on a matplotlib axis.

    Args:
        ax: matplotlib Axes showing the image (pixel coordinates, y down).
        keypoints: [K, 2] (x, y) 0-based pixels of that image.
        joint_set: names, skeleton edges, left/right.
        scores: optional [K] in [0, 1]; joints are coloured by score (viridis) when given.
        visible: optional [K] bool; joints and limbs of False joints are not drawn.
        color: one colour for the whole skeleton (limbs and joint outlines: several people);
            None: limbs by side (right red, left blue) and joints by score.
    """
    keypoints = np.asarray(keypoints, np.float64)
    k = joint_set.num_joints
    visible = np.ones(k, bool) if visible is None else np.asarray(visible, bool)
    for a, b in joint_set.skeleton_indices():
        if visible[a] and visible[b]:
            side = joint_set.names[a][:2] + joint_set.names[b][:2]
            limb = "tab:red" if "r_" in side else "tab:blue" if "l_" in side else "gold"
            limb = color or limb
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], "-", color=limb, lw=2.5)
    shown = np.flatnonzero(visible)
    if scores is not None:
        colors = np.clip(np.asarray(scores, np.float64)[shown], 0.0, 1.0)
        ax.scatter(
            keypoints[shown, 0],
            keypoints[shown, 1],
            c=colors,
            cmap="viridis",
            vmin=0,
            vmax=1,
            s=30,
            edgecolors=color or "white",
            linewidths=0.8,
            zorder=3,
        )
    else:
        ax.scatter(
            keypoints[shown, 0],
            keypoints[shown, 1],
            c="white",
            s=20,
            edgecolors="black",
            linewidths=0.8,
            zorder=3,
        )


def render_pose(image, keypoints, joint_set, scores=None, visible=None, title=None, dpi=100):
    """Renders an image with its skeleton to a uint8 RGB array [H', W', 3]."""
    return _render(
        image, lambda ax: draw_pose(ax, keypoints, joint_set, scores, visible), title, dpi
    )


def render_people(image, keypoints, joint_set, scores=None, boxes=None, title=None, dpi=100):
    """Renders an image with every person's skeleton (and box), a colour per person
    (`PERSON_COLORS`), to a uint8 RGB array [H', W', 3]; no people: the plain image.

    Args:
        image: uint8 [H, W, 3].
        keypoints: [N, K, 2] (x, y) 0-based pixels.
        joint_set: names and skeleton.
        scores: optional [N, K]; joints are filled by score (viridis).
        boxes: optional [N, 4] (x1, y1, x2, y2) 0-based pixels, drawn as outlines.
    """

    def draw(ax):
        for i in range(len(keypoints)):
            color = PERSON_COLORS[i % len(PERSON_COLORS)]
            if boxes is not None:
                x1, y1, x2, y2 = (float(v) for v in boxes[i])
                ax.plot([x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1], "--", color=color, lw=1)
            draw_pose(ax, keypoints[i], joint_set, None if scores is None else scores[i],
                      color=color)  # fmt: skip

    return _render(image, draw, title, dpi)


def _render(image, draw, title, dpi):
    """The image, with what `draw(ax)` adds in its pixel coordinates, as uint8 RGB."""
    plt = _pyplot()
    image = np.asarray(image)
    h, w = image.shape[:2]
    scale = max(1.0, 256.0 / max(h, w))
    fig = plt.figure(figsize=(w * scale / dpi, h * scale / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image)
    draw(ax)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.text(2, 2, title, color="white", fontsize=8, va="top", backgroundcolor="black")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    buffer.seek(0)
    rgb = plt.imread(buffer, format="png")[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def save_pose_png(path, image, keypoints, joint_set, scores=None, visible=None, title=None):
    """Writes an image with its skeleton drawn as a PNG file."""
    plt = _pyplot()
    plt.imsave(path, render_pose(image, keypoints, joint_set, scores, visible, title))


def person_color(index: int) -> tuple[int, int, int]:
    """The RGB (0-255) of person `index`'s colour, `PERSON_COLORS` cycled: the overlays of
    images and the frames of videos colour people alike."""
    from matplotlib import colors  # the names' RGB; no pyplot, no backend

    rgb = colors.to_rgb(PERSON_COLORS[index % len(PERSON_COLORS)])
    return tuple(int(round(255 * c)) for c in rgb)


def _capsule_windows(p, q, reach: float):
    """Pixel coordinates (xs, ys) int64 [n, M, M] of windows along the segment p-q, each pixel
    in exactly one window's `owned` mask [n, M, M]: the one whose stretch of the segment its
    projection falls on (the two end windows also own what lies beyond the ends).

    Windows of about the capsule's width make the cost follow the capsule's area: one box
    around a long diagonal limb would hold several times more pixels."""
    d = q - p
    length = float(np.hypot(d[0], d[1]))
    n = max(1, int(np.ceil(length / (2.0 * reach + 3.0))))
    centres = p + d * ((np.arange(n, dtype=np.float32) + 0.5) / n)[:, None]
    half = int(np.ceil(0.5 * length / n + reach)) + 1
    offsets = np.arange(-half, half + 1)
    xs = np.rint(centres[:, 0]).astype(np.int64)[:, None, None] + offsets[None, None, :]
    ys = np.rint(centres[:, 1]).astype(np.int64)[:, None, None] + offsets[None, :, None]
    if length > 0:
        t = ((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / (length * length)
        chunk = np.clip(np.floor(t * n), 0, n - 1)
        owned = chunk == np.arange(n)[:, None, None]
    else:
        t, owned = np.zeros(xs.shape, np.float32), np.ones(xs.shape, bool)
    return xs, ys, np.clip(t, 0.0, 1.0), owned


def draw_capsule(image: np.ndarray, p, q, radius: float, color) -> None:
    """Paints the segment p-q, `radius` pixels thick on each side with round ends, in place.

    Coverage is antialiased: a pixel centre at distance d from the segment gets
    clip(radius + 0.5 - d, 0, 1) of `color`; each pixel is painted once. p == q paints a disc.

    Args:
        image: uint8 [H, W, 3], modified.
        p, q: (x, y) 0-based pixels, pixel (0, 0)'s centre at (0, 0); may lie outside.
        radius: half the line width, pixels (> 0).
        color: RGB, 0-255.
    """
    h, w = image.shape[:2]
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        return
    xs, ys, t, owned = _capsule_windows(p, q, radius + 1.0)
    distance = np.hypot(xs - (p[0] + t * (q[0] - p[0])), ys - (p[1] + t * (q[1] - p[1])))
    cover = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    keep = owned & (cover > 0) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    if not keep.any():
        return
    xs, ys = np.broadcast_arrays(xs, ys)
    ys, xs, cover = ys[keep], xs[keep], cover[keep][:, None].astype(np.float32)
    pixels = image[ys, xs].astype(np.float32)
    image[ys, xs] = np.rint(pixels + cover * (np.asarray(color, np.float32) - pixels))


def _limb_color(joint_set: joints_lib.JointSet, a: int, b: int, color) -> np.ndarray:
    """The person's colour on the right side, lighter on the left, darker in the middle."""
    sides = {joints_lib.side_and_part(joint_set.names[i])[0] for i in (a, b)} - {""}
    color = np.asarray(color, np.float32)
    if sides == {"left"}:
        return color + 0.45 * (255.0 - color)
    return color if sides == {"right"} else 0.7 * color


def draw_skeletons(
    image: np.ndarray,
    keypoints,
    joint_set: joints_lib.JointSet,
    scores=None,
    min_score: float = 0.0,
    colors=None,
    radius: float | None = None,
) -> np.ndarray:
    """Draws people's skeletons on an image, in place: limbs, then joint dots.

    Args:
        image: uint8 [H, W, 3] RGB, modified and returned.
        keypoints: float [N, K, 2] (x, y) 0-based pixels of N people.
        joint_set: the joints' names (left/right shading) and skeleton edges.
        scores: float [N, K] or None; joints under `min_score` and their limbs are not drawn.
        min_score: see `scores`.
        colors: N RGB colours; None: `person_color(n)`.
        radius: limb half-width, pixels; None: max(1, min(H, W) / 240) (3 px on a 720p frame).

    Returns:
        `image`.
    """
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, joint_set.num_joints, 2)
    n = len(keypoints)
    shown = np.ones((n, joint_set.num_joints), bool)
    if scores is not None:
        shown = np.asarray(scores).reshape(n, -1) >= min_score
    radius = radius or max(1.0, min(image.shape[:2]) / 240.0)
    for person in range(n):
        color = colors[person] if colors is not None else person_color(person)
        points = keypoints[person]
        for a, b in joint_set.skeleton_indices():
            if shown[person, a] and shown[person, b]:
                draw_capsule(
                    image, points[a], points[b], radius, _limb_color(joint_set, a, b, color)
                )
        for k in np.flatnonzero(shown[person]):
            draw_capsule(image, points[k], points[k], 1.5 * radius, color)
            draw_capsule(image, points[k], points[k], 0.75 * radius, (255, 255, 255))
    return image
