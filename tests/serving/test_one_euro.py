"""`serving.one_euro`: hand-computed steps, the jitter of a still pose, the lag behind a joint
moving at constant speed (any frame rate)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stacked_hourglass.serving import one_euro


def test_first_steps_by_hand():
    flt = one_euro.OneEuroFilter(min_cutoff=1.0, beta=2.0, d_cutoff=1.0)
    assert flt(0.0, [0.0]) == [0.0]  # the first sample as it is
    # te = 0.1 s: alpha(1 Hz) = 2 pi 0.1 / (1 + 2 pi 0.1); speed 10 units/s (scale 1), filtered
    # to 10 alpha(1 Hz); cutoff 1 + 2 * that; the value moves alpha(cutoff) of the way to 1.
    a1 = 2 * math.pi * 0.1 / (1 + 2 * math.pi * 0.1)
    cutoff = 1.0 + 2.0 * 10.0 * a1
    expected = 2 * math.pi * cutoff * 0.1 / (1 + 2 * math.pi * cutoff * 0.1)
    np.testing.assert_allclose(flt(0.1, [1.0]), [expected], rtol=1e-12)
    # A repeated timestamp (a duplicated frame) keeps the output.
    np.testing.assert_allclose(flt(0.1, [5.0]), [expected], rtol=1e-12)


def test_scale_is_the_unit_of_speed():
    # Values and scale both x10: the same filter in other units gives x10 the output.
    small = one_euro.OneEuroFilter(1.0, 5.0, 1.0)
    large = one_euro.OneEuroFilter(1.0, 5.0, 1.0)
    rng = np.random.default_rng(0)
    for i, x in enumerate(rng.normal(size=(20, 3))):
        np.testing.assert_allclose(large(i / 30, 10 * x, 10.0), 10 * small(i / 30, x, 1.0))


def test_bad_parameters_are_one_line():
    with pytest.raises(ValueError, match="need min_cutoff > 0"):
        one_euro.OneEuroFilter(0.0, 1.0, 1.0)


def _jitter(track: np.ndarray) -> float:
    """The standard deviation of the frame-to-frame steps of [T, ...] positions."""
    return float(np.diff(track, axis=0).std())


def test_still_pose_jitter_drops_by_more_than_half():
    # 16 joints of a still person 100 px in size, 1 px of noise (1 % of the size, about a
    # quarter of a 64-cell heatmap's cell) at 30 frames/s, the package's default parameters.
    rng = np.random.default_rng(1)
    pose = rng.uniform(0, 100, (16, 2))
    raw = pose + rng.normal(0.0, 1.0, (300, 16, 2))
    flt = one_euro.OneEuroFilter(min_cutoff=1.0, beta=10.0, d_cutoff=1.0)
    smoothed = np.stack([flt(i / 30, frame, 100.0) for i, frame in enumerate(raw)])
    settled = slice(30, None)  # after the first second
    ratio = _jitter(smoothed[settled]) / _jitter(raw[settled])
    assert ratio < 0.5, ratio
    # ... and the positions scatter less around the true pose too.
    assert np.std(smoothed[settled] - pose) < 0.6 * np.std(raw[settled] - pose)


@pytest.mark.parametrize("variable_rate", [False, True])
def test_constant_speed_is_followed_with_the_derived_lag(variable_rate):
    # A joint at 50 px/s, person size 100 px: once the speed estimate has settled, the lag is
    # v / (2 pi (min_cutoff + beta v / size)) (module docstring) at any frame timing, and
    # under size / (2 pi beta) at any speed.
    rng = np.random.default_rng(2)
    steps = rng.uniform(0.01, 0.07, 300) if variable_rate else np.full(300, 1 / 30)
    times = np.concatenate([[0.0], np.cumsum(steps)])
    speed, size = 50.0, 100.0
    flt = one_euro.OneEuroFilter(min_cutoff=1.0, beta=10.0, d_cutoff=1.0)
    out = np.array([flt(t, [speed * t], size)[0] for t in times])
    lag = speed * times[-1] - out[-1]
    expected = one_euro.steady_lag(speed, size, 1.0, 10.0)
    assert expected == pytest.approx(50.0 / (2 * math.pi * (1.0 + 10.0 * 0.5)))
    assert lag == pytest.approx(expected, rel=1e-6)
    assert lag < one_euro.lag_bound(size, 10.0) == pytest.approx(100.0 / (2 * math.pi * 10.0))
