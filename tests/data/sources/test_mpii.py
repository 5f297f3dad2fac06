"""Tests of the MPII readers (.mat, pose-hg .h5, HRNet .json): the real annotation files, a
tiny official-layout .mat, and files that are broken in the ways users break them."""

import json
import pathlib

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import mpii, source_items
from stacked_hourglass.utils import digest

DATA = pathlib.Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
VALID_H5 = DATA / "pose-hg-train" / "data" / "mpii" / "annot" / "valid.h5"
TEST_JSON = DATA / "mmpose" / "tests" / "data" / "mpii" / "test_mpii.json"
DETECTIONS = DATA / "pytorch-pose" / "evaluation" / "data" / "detections_our_format.mat"


def _need(*paths):
    for path in paths:
        if not path.is_file():
            pytest.skip(f"real data file {path} is absent (see shared/data/SOURCES.md)")


def _jpeg(height, width) -> bytes:
    # A solid image encodes fast; its size only matters for the far-outside-the-image check.
    return tf.io.encode_jpeg(tf.fill([height, width, 3], tf.constant(90, tf.uint8))).numpy()


def _read(paths, num_joints=16):
    return [
        features.parse_example_numpy(raw.numpy(), num_joints)
        for path in paths
        for raw in tf.data.TFRecordDataset(str(path))
    ]


def _h5():
    with h5py.File(VALID_H5, "r") as f:
        return {k: f[k][()] for k in f}


def test_valid_h5_subset_round_trip(tmp_path):
    _need(VALID_H5)
    h5 = _h5()
    names = [n.decode() for n in h5["imgname"]]
    images = tmp_path / "images"
    images.mkdir()
    jpeg = _jpeg(720, 1280)
    present = sorted(set(names[:50]))
    for name in present:
        (images / name).write_bytes(jpeg)

    items = mpii.read_annotations(VALID_H5, images, split="valid")
    assert len(items) == 2958
    result = shards.write_split(
        items, len(items), tmp_path / "out", "valid", "mpii", num_shards=2, num_workers=2,
        sources=[VALID_H5], show_progress=False,
    )  # fmt: skip
    rows = [i for i, n in enumerate(names) if n in set(present)]
    assert result.num_records == len(rows) >= 50
    assert result.manifest.skipped_by_reason == {source_items.MISSING_IMAGE: 2958 - len(rows)}
    assert result.manifest.sources[0]["sha256"] == digest.sha256_file(VALID_H5)

    records = _read(result.shard_paths)
    assert [r[features.SOURCE_INDEX] for r in records] == [int(h5["index"][i]) for i in rows]
    for r, record in zip(rows, records, strict=True):
        part, visible = h5["part"][r], h5["visible"][r]
        annotated = np.any(part != 0, axis=1)
        expected_status = np.where(annotated, np.where(visible > 0, 2, 1), 0)
        np.testing.assert_array_equal(record[features.KEYPOINT_STATUS], expected_status)
        expected = np.where(annotated[:, None], part - 1, 0)  # 1-based → 0-based
        np.testing.assert_allclose(record[features.KEYPOINTS], expected, atol=1e-4)
        np.testing.assert_allclose(record[features.CENTER], h5["center"][r] - 1, atol=1e-4)
        assert record[features.SCALE] == pytest.approx(h5["scale"][r], rel=1e-6)
        assert record[features.NORMALIZER] == pytest.approx(h5["normalize"][r], rel=1e-6)
        assert record[features.SOURCE_PERSON] == int(h5["person"][r])
        assert record[features.IMAGE_FILENAME] == names[r]
        assert (record[features.IMAGE_HEIGHT], record[features.IMAGE_WIDTH]) == (720, 1280)
        assert record[features.IMAGE_ENCODED] == jpeg
        assert record[features.SOURCE_DATASET] == "mpii"


def test_h5_statuses_over_the_whole_file():
    _need(VALID_H5)
    h5 = _h5()
    items = mpii.read_h5(VALID_H5, "/nonexistent")
    status = np.stack([item.example.keypoint_status for item in items])
    # SOURCES.md: 3088 joints not annotated, 10243 annotated but occluded.
    assert (status == features.NOT_ANNOTATED).sum() == 3088
    assert (status == features.OCCLUDED).sum() == 10243
    assert items[0].example.headbox is None
    assert items[0].example.filename == h5["imgname"][0].decode()


def test_json_matches_valid_h5_rows(tmp_path):
    _need(VALID_H5, TEST_JSON)
    h5 = _h5()
    items = mpii.read_annotations(TEST_JSON, tmp_path, split="valid")
    assert len(items) == 5
    for r, item in enumerate(items):
        example = item.example
        # Raw objpos/scale adjusted here == pose-hg's pre-adjusted values (both shifted by -1).
        np.testing.assert_allclose(example.center, h5["center"][r] - 1, atol=1e-4)
        assert example.scale == pytest.approx(h5["scale"][r], rel=1e-6)
        part = h5["part"][r]
        annotated = np.any(part != 0, axis=1)
        np.testing.assert_array_equal(example.keypoint_status != 0, annotated)
        assert set(example.keypoint_status[annotated]) == {features.VISIBLE}
        # valid.h5 truncates the sub-pixel neck/head to integers: within 1 px.
        diff = np.abs(example.keypoints - np.where(annotated[:, None], part - 1, 0))
        assert diff.max() < 1.0
        assert example.normalizer == 0.0 and example.headbox is None
        assert (example.index, example.person) == (r, -1)


def test_json_with_ground_truth_headboxes(tmp_path):
    _need(VALID_H5, TEST_JSON, DETECTIONS)
    boxes = scipy.io.loadmat(DETECTIONS)["headboxes_src"][:, :, :5]
    scipy.io.savemat(tmp_path / "gt.mat", {"headboxes_src": boxes})
    items = mpii.read_json(TEST_JSON, tmp_path, ground_truth=tmp_path / "gt.mat")
    normalize = _h5()["normalize"][:5]
    for r, item in enumerate(items):
        assert item.example.normalizer == pytest.approx(normalize[r], abs=1e-4)
        (x1, y1), (x2, y2) = boxes[:, :, r]
        np.testing.assert_allclose(item.example.headbox, (x1 - 1, y1 - 1, x2 - 1, y2 - 1))
    scipy.io.savemat(tmp_path / "gt4.mat", {"headboxes_src": boxes[:, :, :4]})
    with pytest.raises(ValueError, match="4 head boxes"):
        mpii.read_json(TEST_JSON, tmp_path, ground_truth=tmp_path / "gt4.mat")


def test_official_mat_valid(official_mpii):
    items = mpii.read_annotations(
        official_mpii / "mpii.mat", official_mpii / "images", "valid", official_mpii / "split.txt"
    )
    assert len(items) == 1
    example = items[0].example
    # objpos (300, 150) 1-based, scale 2 → center (299, 149 + 30), scale 2.5.
    assert example.center == (299.0, 179.0) and example.scale == 2.5
    assert example.headbox == (289.0, 39.0, 319.0, 69.0)
    assert example.normalizer == pytest.approx(0.6 * np.hypot(30, 30))
    np.testing.assert_array_equal(example.keypoints[12], (309, 99))
    np.testing.assert_array_equal(example.keypoints[13], (329, 100))
    assert example.keypoint_status.tolist() == [0] * 12 + [2, 2] + [0, 0]
    assert (example.index, example.person, example.filename) == (0, 1, "a.jpg")


def test_official_mat_train_excludes_valid_and_skips(official_mpii):
    items = mpii.read_annotations(
        official_mpii / "mpii.mat", official_mpii / "images", "train", official_mpii / "split.txt"
    )
    kinds = [
        (type(i).__name__, *((i.index, i.person) if isinstance(i, source_items.Skipped)
                             else (i.example.index, i.example.person)))
        for i in items
    ]  # fmt: skip
    assert kinds == [
        ("PendingExample", 0, 0),
        ("Skipped", 1, 0),
        ("PendingExample", 1, 1),
        ("PendingExample", 1, 2),
    ]
    assert items[1].reason == source_items.NO_CENTER and "annorect(1)" in items[1].detail
    a0 = items[0].example
    assert a0.center == (99.0, 119.0 + 15.0) and a0.scale == 1.25
    np.testing.assert_array_equal(a0.keypoints[9], (100.5, 29.25))
    assert a0.keypoint_status[9] == features.VISIBLE and a0.keypoint_status[0] == features.OCCLUDED
    assert items[2].example.keypoint_status[8] == features.VISIBLE  # is_visible missing
    assert items[3].example.keypoint_status[15] == features.OCCLUDED  # is_visible "0"

    result = shards.write_split(
        items, len(items), official_mpii / "out", "train", "mpii", num_shards=1, show_progress=False
    )
    assert result.num_records == 3
    assert result.manifest.skipped_by_reason == {source_items.NO_CENTER: 1}
    records = _read(result.shard_paths)
    np.testing.assert_allclose(records[0][features.KEYPOINTS][9], (100.5, 29.25))
    np.testing.assert_allclose(records[0][features.HEADBOX], (89, 19, 109, 44))


def test_official_mat_test_split_has_no_keypoints(official_mpii):
    items = mpii.read_annotations(official_mpii / "mpii.mat", official_mpii / "images", "test")
    assert len(items) == 1
    example = items[0].example
    assert (example.index, example.person) == (2, 0)
    assert example.center == pytest.approx((149.0, 89.0 + 15 * 1.1))
    assert not example.keypoint_status.any() and not example.keypoints.any()
    result = shards.write_split(
        items, 1, official_mpii / "out", "test", "mpii", num_shards=1, show_progress=False
    )
    (record,) = _read(result.shard_paths)
    assert not record[features.KEYPOINT_STATUS].any()
    assert result.shard_paths[0].name == "test-00000-of-00001.tfrecord"


def test_official_mat_valid_needs_split_file_and_checks_names(official_mpii):
    with pytest.raises(ValueError, match="split file"):
        mpii.read_annotations(official_mpii / "mpii.mat", official_mpii / "images", "valid")
    (official_mpii / "wrong.txt").write_text("b.jpg 0 1\n")
    with pytest.raises(ValueError, match="a.jpg"):
        mpii.read_annotations(
            official_mpii / "mpii.mat",
            official_mpii / "images",
            "valid",
            official_mpii / "wrong.txt",
        )
    (official_mpii / "bad.txt").write_text("a.jpg zero 1\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        mpii.read_split_file(official_mpii / "bad.txt")


def test_h5_filtered_by_split_file(tmp_path):
    _need(VALID_H5)
    h5 = _h5()
    lines = [f"{h5['imgname'][i].decode()} {int(h5['index'][i])} {int(h5['person'][i])}"
             for i in (0, 2)]  # fmt: skip
    (tmp_path / "split.txt").write_text("\n".join(lines) + "\n")
    valid = mpii.read_annotations(VALID_H5, tmp_path, "valid", tmp_path / "split.txt")
    train = mpii.read_annotations(VALID_H5, tmp_path, "train", tmp_path / "split.txt")
    assert [i.example.index for i in valid] == [int(h5["index"][0]), int(h5["index"][2])]
    assert len(train) == 2956
    # The h5 itself as split file: valid = everything.
    assert len(mpii.read_annotations(VALID_H5, tmp_path, "valid", VALID_H5)) == 2958


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "a.csv").write_text("")
    with pytest.raises(ValueError, match="unknown MPII annotation format"):
        mpii.read_annotations(tmp_path / "a.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        mpii.read_annotations(tmp_path / "nope.mat", tmp_path)


def test_json_bad_row_is_skipped(tmp_path):
    rows = [{"image": "x.jpg", "center": [1, 2], "scale": 1.0, "joints": [[1, 1]] * 15,
             "joints_vis": [1] * 16}]  # fmt: skip
    (tmp_path / "bad.json").write_text(json.dumps(rows))
    (item,) = mpii.read_json(tmp_path / "bad.json", tmp_path)
    assert isinstance(item, source_items.Skipped) and "row 0" in item.detail


# --- files broken the ways users break them: one error naming the file, or a skip naming the field


def test_json_field_that_is_not_a_float_is_a_skip_naming_the_field(tmp_path):
    good = {"image": "x.jpg", "center": [100, 120], "scale": 1.0, "joints": [[1, 1]] * 16,
            "joints_vis": [1] * 16}  # fmt: skip
    rows = [dict(good, scale=10**400), dict(good, center=[1, "a"]), [1, 2], dict(good)]
    del rows[3]["joints_vis"]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    skipped = mpii.read_json(tmp_path / "a.json", tmp_path)
    assert all(isinstance(s, source_items.Skipped) for s in skipped)
    assert "row 0: field 'scale'" in skipped[0].detail and "OverflowError" in skipped[0].detail
    assert "row 1: field 'center'" in skipped[1].detail
    assert "row 2: expected an object, got list" in skipped[2].detail
    assert "row 3: field 'joints_vis': missing" in skipped[3].detail
    assert skipped[0].filename == "x.jpg" and skipped[2].filename == ""


@pytest.mark.parametrize(
    "content,message",
    [
        ("[", "a.json: not a valid MPII annotation file"),
        (str(10**400), "a.json: expected a json list of people, got int"),
        ('{"image": "x.jpg"}', "a.json: expected a json list of people, got dict"),
    ],
)
def test_json_that_is_not_a_list_of_people(tmp_path, content, message):
    (tmp_path / "a.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        mpii.read_annotations(tmp_path / "a.json", tmp_path)


def test_empty_json_list_reads_no_people(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    assert mpii.read_annotations(tmp_path / "a.json", tmp_path) == []


def test_unreadable_mat_h5_and_split_files(tmp_path):
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mat: not a readable MPII annotation file"):
        mpii.read_annotations(tmp_path / "empty.mat", tmp_path)
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="other.mat: no 'RELEASE' variable"):
        mpii.read_annotations(tmp_path / "other.mat", tmp_path)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5: not a readable pose-hg annotation file"):
        mpii.read_annotations(tmp_path / "bad.h5", tmp_path)
    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f["imgname"] = np.array([b"a.jpg"])
    with pytest.raises(ValueError, match="partial.h5: missing datasets"):
        mpii.read_annotations(tmp_path / "partial.h5", tmp_path)
    with pytest.raises(ValueError, match="partial.h5: .*index"):
        mpii.read_split_file(tmp_path / "partial.h5")
    (tmp_path / "split.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="split.txt: split file is neither"):
        mpii.read_split_file(tmp_path / "split.txt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        mpii.read_annotations(tmp_path, tmp_path)


def test_ground_truth_checks(official_mpii, tmp_path):
    (tmp_path / "gt.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="a ground truth file goes with a .json only"):
        mpii.read_annotations(
            official_mpii / "mpii.mat", tmp_path, ground_truth=tmp_path / "gt.mat"
        )
    with pytest.raises(ValueError, match="gt.mat: not a readable ground truth file"):
        mpii.read_headboxes(tmp_path / "gt.mat")
    scipy.io.savemat(tmp_path / "gt3.mat", {"headboxes_src": np.zeros((3, 2, 1))})
    with pytest.raises(ValueError, match="gt3.mat: headboxes_src has shape"):
        mpii.read_headboxes(tmp_path / "gt3.mat")
