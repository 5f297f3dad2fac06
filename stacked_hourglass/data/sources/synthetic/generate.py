"""Examples: per-example random streams, JPEG encoding, `make_example` and `generate_examples`.

Every example has its own `np.random.default_rng([seed, split_code, index])` stream, so an
example depends only on (split, index, seed), splits use disjoint streams, nothing reads or
touches a global RNG, and examples can be generated in any order or in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.sources.synthetic.params import SyntheticConfig
from stacked_hourglass.data.sources.synthetic.scene import render_scene

# Per-split stream codes (mixed into the seed). Fixed constants rather than a hash of the name so
# the data cannot change with Python's hash randomisation.
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}


def example_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one example: a function of (seed, split, index) only."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(_SPLIT_CODES)}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 [h, w, 3] image (TensorFlow's encoder: deterministic per build)."""
    return tf.io.encode_jpeg(tf.constant(image), quality=quality).numpy()


def make_example(
    split: str, index: int, seed: int = 0, config: SyntheticConfig | None = None
) -> features.PersonExample:
    """Example `index` of `split` (random access; equal to the one `generate_examples` yields)."""
    config = config or SyntheticConfig()
    scene = render_scene(example_rng(split, index, seed), config, keep_background=False)
    h, w = scene.image.shape[:2]
    return features.PersonExample(
        image_encoded=encode_jpeg(scene.image, config.jpeg_quality),
        filename=f"synthetic_{split}_{index:06d}.jpg",
        height=h,
        width=w,
        center=scene.center,
        scale=scene.scale,
        keypoints=scene.keypoints,
        keypoint_status=scene.keypoint_status,
        normalizer=scene.normalizer,
        headbox=scene.headbox,
        dataset="synthetic",
        index=index,
        person=0,
    )


def generate_examples(
    split: str, num_examples: int, seed: int = 0, config: SyntheticConfig | None = None
) -> Iterator[features.PersonExample]:
    """Yields `num_examples` synthetic people of `split` ("train", "valid" or "test").

    Deterministic given the arguments (byte-identical JPEGs for one TensorFlow build); the splits
    draw from disjoint random streams. Example i is `make_example(split, i, seed, config)`.
    """
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    example_rng(split, 0, seed)  # fail on bad arguments now, not at the first next()
    return (make_example(split, i, seed, config) for i in range(num_examples))
