"""Reading and writing evaluation files: prediction and ground-truth layouts, strict JSON."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io

from stacked_hourglass.evaluation import formats


def _preds(n=3, k=16):
    # Distinct values so that a wrong transposition cannot go unnoticed.
    return np.arange(n * k * 2, dtype=np.float64).reshape(n, k, 2) + 1.0


@pytest.mark.parametrize(
    "orientation, perm",
    [("[N,K,2]", (0, 1, 2)), ("[K,2,N]", (1, 2, 0)), ("[2,K,N]", (2, 1, 0))],
)
@pytest.mark.parametrize("fmt", ["h5", "mat", "mat73"])
def test_load_predictions_detects_orientation(tmp_path, orientation, perm, fmt):
    expected = _preds()
    stored = np.transpose(expected, perm).astype(np.float32)
    if fmt == "mat":
        path = tmp_path / "p.mat"
        scipy.io.savemat(path, {"preds": stored})
    else:
        # A v7.3 .mat is an HDF5 file: read through h5py whatever its extension.
        path = tmp_path / ("p.h5" if fmt == "h5" else "p.mat")
        with h5py.File(path, "w") as f:
            f["preds"] = stored
    loaded = formats.load_predictions(path)
    assert loaded.dtype == np.float64 and loaded.shape == (3, 16, 2), orientation
    np.testing.assert_array_equal(loaded, expected)


def test_load_predictions_flic_and_explicit_k(tmp_path):
    path = tmp_path / "flic.h5"
    with h5py.File(path, "w") as f:
        f["preds"] = np.transpose(_preds(5, 11), (2, 1, 0))
    np.testing.assert_array_equal(formats.load_predictions(path), _preds(5, 11))
    with pytest.raises(ValueError, match=r"unrecognised.*\(2, 11, 5\)"):
        formats.load_predictions(path, num_joints=16)


def test_load_predictions_ambiguous_shape_names_file_and_shape(tmp_path):
    # (2, 16, 2) is both [N=2, K=16, 2] and [2, K=16, N=2].
    path = tmp_path / "ambiguous.h5"
    with h5py.File(path, "w") as f:
        f["preds"] = np.zeros((2, 16, 2))
    with pytest.raises(ValueError, match=r"ambiguous.h5.*ambiguous.*\(2, 16, 2\)"):
        formats.load_predictions(path)


def test_load_predictions_errors_name_file_and_field(tmp_path):
    path = tmp_path / "nopreds.h5"
    with h5py.File(path, "w") as f:
        f["coords"] = np.zeros((3, 16, 2))
    with pytest.raises(ValueError, match=r"nopreds.h5: missing field\(s\) \['preds'\].*coords"):
        formats.load_predictions(path)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match="junk.mat"):
        formats.load_predictions(junk)
    with pytest.raises(ValueError, match="no such file"):
        formats.load_predictions(tmp_path / "absent.h5")


def test_load_ground_truth_both_formats(tmp_path):
    # Two people, 16 joints; person 1's joint 3 is not annotated.
    gt = _preds(2, 16)
    gt[1, 3] = 0.0
    boxes = np.array([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 6.0, 8.0]])  # head sizes 30, 6
    mat = tmp_path / "detections_our_format.mat"
    scipy.io.savemat(
        mat,
        {
            "pos_gt_src": np.transpose(gt, (1, 2, 0)),  # (K, 2, N)
            "jnt_missing": np.transpose(np.all(gt == 0, axis=2)).astype(np.uint8),  # (K, N)
            # [:, :, i] = [[x1, y1], [x2, y2]]
            "headboxes_src": np.transpose(boxes.reshape(2, 2, 2), (1, 2, 0)),
        },
    )
    g, missing, norm, headboxes = formats.load_ground_truth(mat)
    np.testing.assert_array_equal(g, gt)
    assert missing.sum() == 1 and missing[1, 3]
    np.testing.assert_allclose(norm, [30.0, 6.0])
    np.testing.assert_array_equal(headboxes, boxes)

    h5 = tmp_path / "valid.h5"
    with h5py.File(h5, "w") as f:
        f["part"] = gt
        f["normalize"] = np.array([30.0, 6.0])
    g, missing, norm, headboxes = formats.load_ground_truth(h5)
    np.testing.assert_array_equal(g, gt)
    assert missing.sum() == 1 and missing[1, 3] and headboxes is None
    np.testing.assert_array_equal(norm, [30.0, 6.0])
    with pytest.raises(ValueError, match="11"):
        formats.load_ground_truth(h5, num_joints=11)

    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["part"] = gt
    with pytest.raises(ValueError, match=r"bad.h5: missing field\(s\) \['normalize'\]"):
        formats.load_ground_truth(bad)
    bad_mat = tmp_path / "bad.mat"
    scipy.io.savemat(bad_mat, {"pos_gt_src": np.transpose(gt, (1, 2, 0))})
    with pytest.raises(ValueError, match=r"bad.mat: missing field\(s\).*jnt_missing"):
        formats.load_ground_truth(bad_mat)


def test_write_predictions_h5_roundtrip(tmp_path):
    preds0 = _preds() - 1.0  # 0-based
    path = formats.write_predictions_h5(
        tmp_path / "sub" / "preds.h5",
        preds0,
        coordinate_base=0,
        extra={"index": np.arange(3)},
    )
    with h5py.File(path, "r") as f:
        assert f["preds"].shape == (3, 16, 2) and f["preds"].dtype == np.float64
        np.testing.assert_array_equal(f["index"][()], np.arange(3))
    # Written 1-based: 0-based input + 1.
    np.testing.assert_array_equal(formats.load_predictions(path), preds0 + 1.0)
    formats.write_predictions_h5(path, preds0 + 1.0, coordinate_base=1)
    np.testing.assert_array_equal(formats.load_predictions(path), preds0 + 1.0)
    assert [p.name for p in path.parent.iterdir()] == ["preds.h5"]  # no temporary left over
    with pytest.raises(ValueError, match="coordinate_base"):
        formats.write_predictions_h5(path, preds0, coordinate_base=2)


def test_write_json_is_strict_json(tmp_path):
    path = formats.write_json(
        tmp_path / "f.json",
        {"a": np.float64("nan"), "b": np.arange(3), "c": {"d": np.int64(4)}, "e": 0.5},
    )
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == {"a": None, "b": [0, 1, 2], "c": {"d": 4}, "e": 0.5}
