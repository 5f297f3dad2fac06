"""`utils.drawing`'s numpy rasteriser against the coverage formula computed over whole images."""

from __future__ import annotations

import numpy as np
import pytest

from stacked_hourglass import joints
from stacked_hourglass.utils import drawing


def _expected(shape, p, q, radius, color, background):
    """Every pixel blended once with coverage clip(radius + 0.5 - distance to p-q, 0, 1)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    d = q - p
    length2 = d @ d
    t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / length2, 0, 1) if length2 else 0.0
    distance = np.hypot(xs - p[0] - t * d[0], ys - p[1] - t * d[1])
    cover = np.clip(radius + 0.5 - distance, 0, 1)[..., None]
    return np.rint(background + cover * (np.asarray(color) - background))


@pytest.mark.parametrize(
    "p, q, radius",
    [
        ((5, 7), (50, 44), 3.0),  # diagonal, many windows
        ((-20, 10), (30, 70), 2.5),  # starts and ends outside the image
        ((20.3, 15.6), (20.3, 15.6), 4.0),  # a disc
        ((3, 30), (58, 30), 1.0),  # horizontal
    ],
)
def test_capsule_matches_the_coverage_formula(p, q, radius):
    background = 100.0  # a pixel blended twice would show
    image = np.full((48, 60, 3), background, np.uint8)
    drawing.draw_capsule(image, p, q, radius, (250, 20, 60))
    expected = _expected(image.shape, p, q, radius, (250, 20, 60), background)
    # float32 distances against float64: a pixel right at a coverage edge may round 1 apart.
    assert np.abs(image.astype(int) - expected).max() <= 1
    assert np.mean(image.astype(int) != expected) < 0.01


def test_capsule_outside_or_not_finite_draws_nothing():
    image = np.zeros((10, 10, 3), np.uint8)
    drawing.draw_capsule(image, (-50, -50), (-40, -45), 2.0, (255, 255, 255))
    drawing.draw_capsule(image, (np.nan, 3), (5, 5), 2.0, (255, 255, 255))
    assert not image.any()


def test_skeletons_one_colour_per_person_low_scores_hidden():
    image = np.zeros((80, 120, 3), np.uint8)
    k = joints.MPII.num_joints
    people = np.zeros((2, k, 2), np.float32)
    people[0] = np.linspace([10, 10], [40, 70], k)
    people[1] = np.linspace([70, 10], [100, 70], k)
    scores = np.ones((2, k))
    scores[1] = 0.0  # the second person: nothing shown
    out = drawing.draw_skeletons(image, people, joints.MPII, scores, min_score=0.5, radius=1.5)
    assert out is image
    assert image[:, :60].any() and not image[:, 60:].any()
    # Joint dots are white at their centres; limbs carry the person's colour (right side).
    x, y = np.rint(people[0, 0]).astype(int)
    assert tuple(image[y, x]) == (255, 255, 255)
    assert (image[:, :60].reshape(-1, 3) == drawing.person_color(0)).all(axis=1).any()
