"""Tests of the FLIC reader against pose-hg-train's person-centric .h5 files."""

import pathlib

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import items as item_types
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import flic

DATA = pathlib.Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
FLIC_MAT = DATA / "joint-cnn-mrf" / "data_FLIC.mat"
ANNOT = DATA / "pose-hg-train" / "data" / "flic" / "annot"


def _need(*paths):
    for path in paths:
        if not path.is_file():
            pytest.skip(f"real data file {path} is absent (see shared/data/SOURCES.md)")


def _h5(name):
    with h5py.File(ANNOT / name, "r") as f:
        return {k: f[k][()] for k in f}


@pytest.fixture(scope="module")
def flic_items():
    """Both splits read once (loadmat of the 5003 examples takes a moment)."""
    _need(FLIC_MAT)
    return {s: flic.read_examples_mat(FLIC_MAT, "/no/images", s) for s in ("train", "valid")}


@pytest.mark.parametrize(
    "split,h5_name", [("valid", "valid_personcentric.h5"), ("train", "train_personcentric.h5")]
)
def test_matches_pose_hg_personcentric(flic_items, split, h5_name):
    _need(ANNOT / h5_name)
    h5 = _h5(h5_name)
    items = flic_items[split]
    assert len(items) == len(h5["index"])  # valid 1016 (FLIC test set), train 3987
    examples = [item.example for item in items]
    np.testing.assert_array_equal([e.index for e in examples], h5["index"])
    assert [e.filename for e in examples] == [n.decode() for n in h5["imgname"]]
    keypoints = np.stack([e.keypoints for e in examples])
    np.testing.assert_array_equal(keypoints, h5["part"] - 1)  # exactly, after the 1-based shift
    np.testing.assert_allclose([e.normalizer for e in examples], h5["normalize"], rtol=1e-12)
    # pose-hg's centre is float32 in its 1-based frame: ours is the same point, 0-based.
    centers = np.asarray([e.center for e in examples])
    np.testing.assert_allclose(centers, h5["center"].astype(np.float64) - 1, atol=1e-4)
    np.testing.assert_array_equal([e.scale for e in examples], h5["scale"])
    assert all((e.keypoint_status == features.VISIBLE).all() for e in examples)
    assert all(e.headbox is None and e.person == 0 for e in examples)


def test_observer_centric_h5_differs_only_by_swaps(flic_items):
    # Guard on the documentation: we produce person-centric labels, not pose-hg's valid.h5.
    _need(ANNOT / "valid.h5")
    observer = _h5("valid.h5")["part"]
    ours = np.stack([item.example.keypoints for item in flic_items["valid"]]) + 1
    swapped_rows = np.any(ours != observer, axis=(1, 2))
    assert swapped_rows.sum() == 48  # SOURCES.md


def test_round_trip_subset(tmp_path, flic_items):
    _need(ANNOT / "valid_personcentric.h5")
    h5 = _h5("valid_personcentric.h5")
    images = tmp_path / "images"
    names = [n.decode() for n in h5["imgname"]]
    jpeg = tf.io.encode_jpeg(tf.fill([480, 720, 3], tf.constant(60, tf.uint8))).numpy()
    present = sorted(set(names[:20]))
    for name in present:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(jpeg)
    items = flic.read_examples_mat(FLIC_MAT, images, "valid")
    result = shards.write_split(
        items, len(items), tmp_path / "out", "valid", "flic", num_shards=2, num_workers=2,
        sources=[FLIC_MAT], show_progress=False,
    )  # fmt: skip
    rows = [i for i, n in enumerate(names) if n in set(present)]
    assert result.num_records == len(rows) >= 20
    assert result.manifest["skipped_by_reason"] == {item_types.MISSING_IMAGE: 1016 - len(rows)}
    assert result.manifest["joint_names"][0] == "l_shoulder"
    records = [
        features.parse_example_numpy(raw.numpy(), 11)
        for path in result.shard_paths
        for raw in tf.data.TFRecordDataset(str(path))
    ]
    for r, record in zip(rows, records, strict=True):
        np.testing.assert_allclose(record[features.KEYPOINTS], h5["part"][r] - 1, atol=1e-4)
        np.testing.assert_allclose(record[features.CENTER], h5["center"][r] - 1, atol=1e-4)
        assert record[features.SCALE] == pytest.approx(2.2)
        assert record[features.NORMALIZER] == pytest.approx(h5["normalize"][r], rel=1e-6)
        assert record[features.SOURCE_INDEX] == h5["index"][r]
        assert (record[features.IMAGE_HEIGHT], record[features.IMAGE_WIDTH]) == (480, 720)


def _tiny_examples_mat(path, coords):
    fields = ("coords", "torsobox", "filepath", "imgdims", "istrain", "istest")
    examples = np.zeros((1, 1), dtype=[(f, object) for f in fields])
    box, dims = np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([[480, 720, 3]])
    examples[0, 0] = (coords, box, "a.jpg", dims, 0, 1)
    scipy.io.savemat(path, {"examples": examples})


def test_nan_joint_is_skipped(tmp_path):
    coords = np.full((2, 29), np.nan)
    for modec in flic.MODEC_IDS.values():
        coords[:, modec - 1] = (100.0 + modec, 200.0)
    coords[0, 2] = np.nan  # l_wrist x
    _tiny_examples_mat(tmp_path / "examples.mat", coords)
    (item,) = flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "valid")
    assert item.example.center == (19.0, 239.0)  # (10 + 30) / 2 - 1, 240 - 1
    skipped = item_types.complete_item(item)
    assert isinstance(skipped, item_types.Skipped) and skipped.reason == item_types.NAN_ANNOTATION
    assert skipped.filename == "a.jpg" and "person/keypoints" in skipped.detail
    assert flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "train") == []
    with pytest.raises(ValueError, match="split"):
        flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "test")


def test_unreadable_examples_mat(tmp_path):
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mat: not a readable FLIC annotation file"):
        flic.read_examples_mat(tmp_path / "empty.mat", tmp_path, "train")
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="other.mat: no 'examples' variable"):
        flic.read_examples_mat(tmp_path / "other.mat", tmp_path, "train")
    examples = np.zeros((1, 1), dtype=[("coords", object), ("filepath", object)])
    examples[0, 0] = (np.zeros((2, 29)), "a.jpg")
    scipy.io.savemat(tmp_path / "partial.mat", {"examples": examples})
    with pytest.raises(ValueError, match="partial.mat: examples has no field 'torsobox'"):
        flic.read_examples_mat(tmp_path / "partial.mat", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="nope.mat does not exist"):
        flic.read_examples_mat(tmp_path / "nope.mat", tmp_path, "train")
