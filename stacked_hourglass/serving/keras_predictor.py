"""The `predictor.Predictor` of a Keras model directory (its final model or latest checkpoint).

The decoder and the flip test are the caller's (`predictor.read_info`): a model directory has
none baked in. Images go through the host path (`client.predict_on_host`, the crop rule of
`box_crop`), as a LiteRT model's do.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import run_dir
from stacked_hourglass.model import inference
from stacked_hourglass.serving import client
from stacked_hourglass.serving.predictor import ModelInfo, People


class KerasPredictor:
    """A stacked hourglass `keras.Model` with its `ModelInfo`.

    Attributes:
        info: from `predictor.read_info("model_dir", ...)`.
        model: the Keras model (dict outputs `heatmaps_i`).
    """

    def __init__(self, info: ModelInfo, model: keras.Model):
        self.info = info
        self.model = model
        self._flip = info.joint_set.flip_permutation() if info.flip_test else None
        self._codec = info.codec()

    @classmethod
    def load(cls, info: ModelInfo) -> KerasPredictor:
        """Loads the model of `info.path` (`run_dir.load_model`)."""
        return cls(info, run_dir.load_model(info.path))

    def heatmaps(self, crops) -> tf.Tensor:
        """Crops float32 [B, S, S, 3] in [0, 1] → heatmaps float32 [B, H, H, K]."""
        return inference.predict_heatmaps(self.model, crops, self._flip)

    def keypoints(self, crops) -> tuple[np.ndarray, np.ndarray]:
        """Crops → (keypoints [B, K, 2] in crop pixels, scores [B, K]), numpy."""
        heatmaps = self.heatmaps(tf.convert_to_tensor(crops, tf.float32))
        keypoints, scores = self._codec.decode(heatmaps)
        return keypoints.numpy(), scores.numpy()

    def predict_image(self, path: str, box=None) -> client.Prediction:
        """One image file (cropped on the host) → `client.Prediction`."""
        return client.predict_on_host(self, path, box)

    def predict_people(self, image, boxes, box_scores=None, pixels=None) -> People:
        """One image and N boxes: one decode, N host crops, one batch (`Predictor`)."""
        return client.predict_people_on_host(self, image, boxes, box_scores, pixels)
