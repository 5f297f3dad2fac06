"""PCK curves as PNG files, like the paper's PCKh figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_pck_curves(curves: dict, path, title: str) -> Path:
    """Draws detection rate against normalised distance, one line per table column.

    Args:
        curves: a `pck.pck_curve` result: "thresholds" [T] and, per column (and "Mean"),
            [T] percentages. "uMean" is not drawn (it nearly coincides with "Mean").
        path: output PNG path; its folder is created.
        title: figure title (e.g. the prediction file and the Head convention).

    Returns:
        The path written.
    """
    # Imported here, with the non-interactive backend chosen on a figure object rather than
    # through pyplot, so importing this module never changes matplotlib's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    thresholds = np.asarray(curves["thresholds"], dtype=np.float64)
    series = [k for k in curves if k not in ("thresholds", "uMean")]
    figure = Figure(figsize=(6.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for key in series:
        mean = key == "Mean"
        axes.plot(
            thresholds,
            np.asarray(curves[key], dtype=np.float64),
            label=key,
            linewidth=2.5 if mean else 1.5,
            linestyle="--" if mean else "-",
            color="black" if mean else None,
        )
    axes.set_xlim(float(thresholds.min()), float(thresholds.max()))
    axes.set_ylim(0.0, 100.0)
    axes.set_xlabel("Normalized distance")
    axes.set_ylabel("Detection rate, %")
    axes.set_title(title)
    axes.grid(True, alpha=0.4)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
