r"""The One-Euro filter (Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012), vectorised over any array of values.

Each value is an exponential low-pass filter whose cutoff frequency rises with the value's speed:

    te      = t - t_prev                            (seconds: timestamps, any frame rate)
    alpha(f) = 1 / (1 + 1 / (2 pi f te))            (a first-order low-pass at cutoff f Hz)
    dx      = (x - x_prev_raw) / te / scale         (speed in `scale` units per second)
    dx_hat  = dx_hat + alpha(d_cutoff) (dx - dx_hat)
    f       = min_cutoff + beta |dx_hat|
    x_hat   = x_hat + alpha(f) (x - x_hat)

At rest the cutoff is `min_cutoff` (strong smoothing: jitter removed); a moving value raises it
(little lag). The speed is measured in units of `scale` per second, as MediaPipe's landmark filter
measures it in units of the person's size (its `value_scale`, 1 / the landmarks' box size), so one
`beta` suits people of any size in pixels; the filtered values themselves stay in pixels.

Lag: a value moving at constant speed v (pixels/s) is followed, once `dx_hat` has settled on v,
by `x_hat = x - v tau` exactly, with tau = 1 / (2 pi f) and f = min_cutoff + beta v / scale (the
steady state of the discrete filter: e = (1 - alpha) (e + v te) gives e = v te (1 - alpha) /
alpha = v tau). So the lag is under `scale / (2 pi beta)` at any speed: `lag_bound`.

The raw speed uses the previous raw value (MediaPipe's choice; Casiez et al.'s reference code
differences the filtered one): a constant speed is then measured exactly.
"""

from __future__ import annotations

import math

import numpy as np


def alpha(cutoff, te):
    """The smoothing factor of a first-order low-pass at `cutoff` Hz for a step of `te` s."""
    r = 2.0 * math.pi * np.asarray(cutoff, np.float64) * te
    return r / (r + 1.0)


def steady_lag(speed, scale, min_cutoff: float, beta: float):
    """The lag (pixels) behind a value moving at constant `speed` (pixels/s), once settled:
    speed / (2 pi (min_cutoff + beta |speed| / scale))."""
    speed = np.abs(np.asarray(speed, np.float64))
    return speed / (2.0 * math.pi * (min_cutoff + beta * speed / scale))


def lag_bound(scale, beta: float):
    """The lag's supremum over all speeds: scale / (2 pi beta) (pixels; infinite for beta 0)."""
    return math.inf if beta <= 0 else float(scale) / (2.0 * math.pi * beta)


class OneEuroFilter:
    """One-Euro filters over an array of values sharing timestamps (e.g. keypoints [K, 2]).

    Args:
        min_cutoff: cutoff frequency at rest, Hz (> 0).
        beta: cutoff increase per unit of speed, Hz per (`scale` per second), >= 0.
        d_cutoff: cutoff frequency of the speed's own low-pass, Hz (> 0).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(
                f"One-Euro filter: need min_cutoff > 0, d_cutoff > 0 and beta >= 0 "
                f"(got {min_cutoff}, {d_cutoff}, {beta})"
            )
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._time = None
        self._raw = None
        self._value = None
        self._speed = None

    def __call__(self, time: float, values, scale=1.0) -> np.ndarray:
        """Filters one sample.

        Args:
            time: the sample's timestamp, seconds. A timestamp not after the previous one (a
                repeated frame) returns the previous output unchanged.
            values: float [...] the raw values (the first call's shape is kept).
            scale: float, or an array broadcasting to `values`: the unit of speed (e.g. the
                person's size in pixels); > 0.

        Returns:
            float64 [...] the filtered values (the first sample as it is).
        """
        values = np.asarray(values, np.float64)
        if self._time is None:
            self._time, self._raw, self._value = float(time), values, values
            self._speed = np.zeros_like(values)
            return values.copy()
        te = float(time) - self._time
        if te <= 0:
            return self._value.copy()
        speed = (values - self._raw) / (te * np.asarray(scale, np.float64))
        self._speed = self._speed + alpha(self.d_cutoff, te) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + alpha(cutoff, te) * (values - self._value)
        self._time, self._raw = float(time), values
        return self._value.copy()
