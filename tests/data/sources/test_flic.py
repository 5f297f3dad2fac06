"""Tests of the FLIC reader against pose-hg-train's observer-centric (train.h5, valid.h5) and
person-centric (*_personcentric.h5) files."""

import pathlib

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.records import items as item_types
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import flic, source_items

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
    """{(split, labels): items}, each read once (loadmat of the 5003 examples takes a moment)."""
    _need(FLIC_MAT)
    return {
        (s, labels): flic.read_examples_mat(FLIC_MAT, "/no/images", s, labels)
        for s in ("train", "valid")
        for labels in flic.LABELS
    }


@pytest.mark.parametrize(
    "split,labels,h5_name",
    [
        ("valid", "person", "valid_personcentric.h5"),
        ("train", "person", "train_personcentric.h5"),
        ("valid", "observer", "valid.h5"),
        ("train", "observer", "train.h5"),
    ],
)
def test_matches_pose_hg(flic_items, split, labels, h5_name):
    _need(ANNOT / h5_name)
    h5 = _h5(h5_name)
    items = flic_items[split, labels]
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


@pytest.mark.parametrize("split,num_swapped", [("valid", 48), ("train", 199)])
def test_observer_labels_swap_left_and_right_of_people_seen_from_the_back(
    flic_items, split, num_swapped
):
    observer = np.stack([i.example.keypoints for i in flic_items[split, "observer"]])
    person = np.stack([i.example.keypoints for i in flic_items[split, "person"]])
    swapped = np.any(observer != person, axis=(1, 2))
    assert swapped.sum() == num_swapped
    names = joints.FLIC.names
    ls, rs, lh, rh = (names.index(n) for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip"))
    # Swapped = the person-centric l_shoulder is left of the r_shoulder (seen from the back) ...
    np.testing.assert_array_equal(swapped, person[:, ls, 0] < person[:, rs, 0])
    # ... by exactly the left/right swap; observer "l_*" is always the joint on the image's right.
    perm = joints.FLIC.flip_permutation()
    np.testing.assert_array_equal(observer[swapped], person[swapped][:, perm])
    assert (observer[:, ls, 0] > observer[:, rs, 0]).all()
    assert (observer[:, lh, 0] > observer[:, rh, 0]).all()  # hips agree on every FLIC person
    # Everything else (normalizer: the person-centric torso, as pose-hg's files) is unchanged.
    for a, b in zip(flic_items[split, "observer"], flic_items[split, "person"], strict=True):
        assert (a.example.normalizer, a.example.center) == (b.example.normalizer, b.example.center)


def test_default_labels_are_observer_centric(flic_items, tmp_path):
    _need(ANNOT / "valid.h5")
    default = flic.read_examples_mat(FLIC_MAT, tmp_path, "valid")
    np.testing.assert_array_equal(
        np.stack([i.example.keypoints for i in default]), _h5("valid.h5")["part"] - 1
    )
    with pytest.raises(ValueError, match="FLIC labels must be one of observer, person"):
        flic.read_examples_mat(FLIC_MAT, tmp_path, "valid", "camera")


def test_round_trip_subset(tmp_path, flic_items):
    _need(ANNOT / "valid.h5")
    h5 = _h5("valid.h5")
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
    assert result.manifest.skipped_by_reason == {source_items.MISSING_IMAGE: 1016 - len(rows)}
    assert result.manifest.joint_names[0] == "l_shoulder"
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


def _modec_coords(points: dict[str, tuple[float, float]]) -> np.ndarray:
    coords = np.full((2, 29), np.nan)
    for name, modec in flic.MODEC_IDS.items():
        coords[:, modec - 1] = points.get(name, (100.0 + modec, 200.0))
    return coords


def test_tiny_file_observer_and_person_labels(tmp_path):
    # Raw (person-centric) labels of a person seen from the back: their left on the image's left.
    back = {
        "l_shoulder": (50.0, 100.0), "r_shoulder": (90.0, 101.0), "l_hip": (55.0, 200.0),
        "r_hip": (85.0, 201.0), "l_wrist": (20.0, 150.0), "r_wrist": (120.0, 150.0),
    }  # fmt: skip
    _tiny_examples_mat(tmp_path / "examples.mat", _modec_coords(back))
    (person,) = flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "valid", "person")
    (observer,) = flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "valid")
    names = joints.FLIC.names
    for name, (x, y) in back.items():
        np.testing.assert_array_equal(person.example.keypoints[names.index(name)], (x - 1, y - 1))
        other = name.replace("l_", "x_").replace("r_", "l_").replace("x_", "r_")
        np.testing.assert_array_equal(observer.example.keypoints[names.index(other)],
                                      (x - 1, y - 1))  # fmt: skip
    nose = names.index("nose")
    np.testing.assert_array_equal(observer.example.keypoints[nose], person.example.keypoints[nose])
    # ‖r_shoulder − l_hip‖ of the person-centric labels in both.
    expected = pytest.approx(np.hypot(90 - 55, 101 - 200))
    assert observer.example.normalizer == person.example.normalizer == expected


def test_nan_joint_is_skipped(tmp_path):
    coords = np.full((2, 29), np.nan)
    for modec in flic.MODEC_IDS.values():
        coords[:, modec - 1] = (100.0 + modec, 200.0)
    coords[0, 2] = np.nan  # l_wrist x
    _tiny_examples_mat(tmp_path / "examples.mat", coords)
    (item,) = flic.read_examples_mat(tmp_path / "examples.mat", tmp_path, "valid")
    assert item.example.center == (19.0, 239.0)  # (10 + 30) / 2 - 1, 240 - 1
    skipped = item_types.complete_item(item)
    assert (
        isinstance(skipped, source_items.Skipped) and skipped.reason == source_items.NAN_ANNOTATION
    )
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
