"""The synthetic generator's output is frozen: the same (split, index, seed) → the same people.

The hashes were computed with the single-module generator before it became the
`data/sources/synthetic/` package; a refactoring that changes any pixel, coordinate or the order
of the random draws fails here. Pixel and annotation hashes are numpy-only and hold on any
platform; the serialised-record hashes include TensorFlow's JPEG encoder, so they are checked
only on the TensorFlow release they were made with.
"""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.sources import synthetic

GOLDEN_TF = "2.21.0"
# (split, index, seed): (sha256 of the serialised record, sha256 of the scene's arrays)
GOLDEN = {
    ("train", 0, 0): (
        "ccb6369bd1f090be88e5e65114ee377f44d8d41b5a8b6176dbc49852a7ceeecd",
        "57fd83bfbb4ef98461966e17030cd04b71c3a7c23b3952a6ebfd4902eb924933",
    ),
    ("train", 7, 0): (
        "ec57a413c9d22fd304c52a30300b5d00dc49601a04ed781e4e01c23ca1c7b62a",
        "0a2cae83797d6172d738ff816063f4cd9af9720c01fde6153fc31726aa8d8659",
    ),
    ("valid", 3, 5): (
        "99e570db8c548cc0e62acddbb6c610ccaf21e47b62ddea4dfaabd17b5e6566cf",
        "cbc777cae1607f23f340422dfb5b418ac5b9dc5cc2c3ef3755f9709177dd1b5a",
    ),
    ("test", 11, 2): (
        "8ffafd4d41bffd243c1249aa97ff35737da060fc501e89b6d894bca9093d28ec",
        "541fcebf8d84c683133a98726f02a3ec47aa2f6f7ea149bdce415e9960a20b6b",
    ),
    ("train", 42, 1): (
        "a7879250667ef9948a73f86bcd783b8a67fccf40d99e937b34e3873defb70438",
        "352d218966b1c8ae1ef69580cd38053fd1d64b02e4b8ba0ebd67f72d48d715bc",
    ),
}


def _scene_hash(scene: synthetic.Scene) -> str:
    digest = hashlib.sha256()
    for array in (
        scene.image, scene.background, scene.keypoints, scene.keypoint_status,
        np.asarray(scene.headbox, np.float64),
        np.asarray([scene.normalizer, scene.scale, *scene.center], np.float64),
    ):  # fmt: skip
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_scene_pixels_and_annotation_unchanged(key):
    split, index, seed = key
    assert (
        _scene_hash(synthetic.render_scene(synthetic.example_rng(split, index, seed)))
        == (GOLDEN[key][1])
    )


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_serialised_records_unchanged(key):
    if tf.__version__ != GOLDEN_TF:
        pytest.skip(f"JPEG bytes are pinned for TensorFlow {GOLDEN_TF}, not {tf.__version__}")
    record = features.serialize_example(synthetic.make_example(*key))
    assert hashlib.sha256(record).hexdigest() == GOLDEN[key][0]
