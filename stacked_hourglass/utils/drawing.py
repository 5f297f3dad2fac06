"""Drawing poses: skeleton overlays for TensorBoard, `predict` and dataset inspection."""

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
