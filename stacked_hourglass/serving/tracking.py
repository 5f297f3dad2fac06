"""People from frame to frame: the tracking box, matching people across frames, and smoothing
each person's keypoints (pure numpy; `video_lib` runs them per frame).

* `keypoint_box`: the box `--track` crops the next frame with: the bounding box of the joints
  scoring at least `min_score`, enlarged `TRACK_ENLARGE` times about its centre (the scheme of
  MediaPipe's pose tracker, which crops each frame around the previous frame's landmarks and runs
  its detector only when the landmarks' confidence drops). The joints' box is tighter than a
  person box (the body's outline lies outside its joints: head top, hands, feet), hence the
  enlargement before `box_crop` adds its own margin.
* `match_boxes`: greedy matching by intersection over union: the pair of boxes (previous frame,
  this frame) with the highest IoU first, then the next among the remaining ones, down to
  `MIN_IOU`. A person unmatched in this frame starts a new track; a track unmatched ends.
* `PoseSmoother`: a `one_euro.OneEuroFilter` per track (per person, per joint, per coordinate),
  fed with the frames' timestamps, the speed measured in units of the person's size: the mean of
  the width and height of the keypoints' bounding box (MediaPipe's landmark "object scale").

Boxes are float [N, 4] (x1, y1, x2, y2) in 0-based pixels, pixel (0, 0)'s centre at (0, 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stacked_hourglass.serving import one_euro

# Enlargement of the confident joints' box for the next frame's crop.
TRACK_ENLARGE = 1.25
# Two boxes of consecutive frames are the same person from this IoU up (a person moving a
# third of the box's width between frames still overlaps by 0.5).
MIN_IOU = 0.3


def keypoint_box(keypoints, scores, min_score: float, enlarge: float = TRACK_ENLARGE):
    """The box around the joints scoring at least `min_score`, enlarged about its centre.

    Args:
        keypoints: float [K, 2] (x, y) pixels.
        scores: float [K].
        min_score: joints below it are left out.
        enlarge: the box's width and height are multiplied by it.

    Returns:
        float32 [4] x1, y1, x2, y2, or None when fewer than two joints qualify or they span no
        area (a line or a point cannot frame a person).
    """
    keypoints = np.asarray(keypoints, np.float64)
    chosen = keypoints[np.asarray(scores) >= min_score]
    if len(chosen) < 2:
        return None
    low, high = chosen.min(axis=0), chosen.max(axis=0)
    if np.any(high - low <= 0) or not np.all(np.isfinite(chosen)):
        return None
    center, half = 0.5 * (low + high), 0.5 * enlarge * (high - low)
    return np.concatenate([center - half, center + half]).astype(np.float32)


def person_size(keypoints) -> np.ndarray:
    """float64 [N]: the mean of the width and height of each person's keypoints' box (pixels,
    at least 1), from keypoints [N, K, 2]."""
    keypoints = np.asarray(keypoints, np.float64)
    extent = keypoints.max(axis=1) - keypoints.min(axis=1)
    return np.maximum(extent.mean(axis=-1), 1.0)


def iou(a, b) -> np.ndarray:
    """float64 [N, M]: intersection over union of boxes a [N, 4] and b [M, 4] (0 when a box has
    no area)."""
    a = np.asarray(a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, np.float64).reshape(1, -1, 4)
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(previous, current, min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Greedy IoU matching: [(index in previous, index in current)], highest IoU first, each box
    matched at most once, pairs under `min_iou` left unmatched."""
    overlaps = iou(previous, current)
    pairs = []
    while overlaps.size and overlaps.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(overlaps), overlaps.shape)
        pairs.append((int(i), int(j)))
        overlaps[i, :] = -1.0
        overlaps[:, j] = -1.0
    return pairs


@dataclasses.dataclass
class _Track:
    id: int
    box: np.ndarray
    filter: one_euro.OneEuroFilter | None


class PoseSmoother:
    """Tracks people across frames by their boxes and smooths each one's keypoints.

    Args:
        filter_params: (min_cutoff, beta, d_cutoff) of the One-Euro filters, or None: no
            smoothing (people are still matched, so ids stay stable).
    """

    def __init__(self, filter_params: tuple[float, float, float] | None):
        if filter_params is not None:
            one_euro.OneEuroFilter(*filter_params)  # checks the values once, up front
        self._params = filter_params
        self._tracks: list[_Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Ends every track (the next people start new ones, unsmoothed)."""
        self._tracks = []

    def update(self, time: float, boxes, keypoints) -> tuple[np.ndarray, list[int]]:
        """One frame's people → (keypoints float32 [N, K, 2] smoothed, ids [N]).

        Args:
            time: the frame's timestamp, seconds.
            boxes: float [N, 4] the boxes the people were cropped with (matched to the previous
                frame's).
            keypoints: float [N, K, 2] pixels.
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        keypoints = np.asarray(keypoints, np.float64)
        previous = self._tracks
        matched = dict(
            (j, previous[i])
            for i, j in match_boxes([t.box for t in previous] or np.zeros((0, 4)), boxes)
        )
        sizes = person_size(keypoints) if len(keypoints) else np.zeros(0)
        tracks, out = [], keypoints.copy()
        for j, box in enumerate(boxes):
            track = matched.get(j)
            if track is None:
                flt = one_euro.OneEuroFilter(*self._params) if self._params else None
                track = _Track(self._next_id, box, flt)
                self._next_id += 1
            track.box = box
            if track.filter is not None:
                out[j] = track.filter(time, keypoints[j], sizes[j])
            tracks.append(track)
        self._tracks = tracks
        return out.astype(np.float32), [t.id for t in tracks]
