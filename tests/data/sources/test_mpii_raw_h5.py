"""Tests of pose-hg's raw MPII `annot.h5` (every person, raw objpos/scale, `istrain`/`multi`):
a tiny file in its layout, and one rebuilt from pose-hg's valid.h5 (the real annot.h5 is too
large for shared/data)."""

import pathlib

import h5py
import numpy as np
import pytest

from stacked_hourglass import convert
from stacked_hourglass.data import features
from stacked_hourglass.data.sources import mpii, source_items

DATA = pathlib.Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
VALID_H5 = DATA / "pose-hg-train" / "data" / "mpii" / "annot" / "valid.h5"


def _char_codes(names) -> np.ndarray:
    """Names as pose-hg's convert_annot.py stores them: 16 floats of character codes."""
    codes = np.zeros((len(names), 16))
    for r, name in enumerate(names):
        codes[r, : len(name)] = [ord(c) for c in name]
    return codes


def _write_raw(path, rows: list[dict]) -> None:
    keys = ("index", "person", "center", "scale", "part", "visible", "normalize", "torsoangle",
            "multi", "istrain")  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["name"] = "mpii"
        f["imgname"] = _char_codes([r["imgname"] for r in rows])
        for key in keys:
            f[key] = np.array([r.get(key, 0) for r in rows], np.float64 if key != "index" else int)


def _person(imgname, index, person, objpos, scale, istrain=1, joints=None, normalize=10.0):
    part = -np.ones((16, 2))
    visible = np.zeros(16)
    if istrain == 1:
        part = np.zeros((16, 2))
        for j, (x, y, v) in (joints or {}).items():
            part[j], visible[j] = (x, y), v
    elif istrain in (0, 2):
        normalize = 1.0
    return dict(imgname=imgname, index=index, person=person, center=objpos, scale=scale,
                part=part, visible=visible, normalize=normalize, istrain=istrain)  # fmt: skip


@pytest.fixture
def raw_h5(tmp_path):
    rows = [
        _person("a.jpg", 0, 0, (100, 120), 1.0, joints={9: (101, 30, 1), 0: (95, 200, 0)}),
        _person("a.jpg", 0, 1, (300, 150), 2.0, joints={12: (310, 100, 1)}),
        _person("b.jpg", 1, 0, (200, 100), 1.5, istrain=2),  # training image, no annopoints
        _person("b.jpg", 1, 1, (220, 110), 1.2, istrain=1),  # in a training image, no joints
        _person("c.jpg", 2, 0, (150, 90), 1.1, istrain=0),  # test image
    ]
    rows[3]["part"] = -np.ones((16, 2))
    _write_raw(tmp_path / "annot.h5", rows)
    (tmp_path / "split.txt").write_text("a.jpg 0 1\n")
    return tmp_path


def test_tiny_raw_h5_train_valid_test(raw_h5):
    assert mpii.is_raw_h5(raw_h5 / "annot.h5")
    entries = mpii.read_split_file(raw_h5 / "split.txt")
    train = mpii.read_annotations(raw_h5 / "annot.h5", raw_h5, "train", raw_h5 / "split.txt")
    assert [type(i).__name__ for i in train] == ["PendingExample", "Skipped", "Skipped"]
    a0 = train[0].example
    # Raw objpos (100, 120) 1-based, scale 1 → centre (99, 119 + 15), scale 1.25 (mpii.lua).
    assert a0.center == (99.0, 134.0) and a0.scale == 1.25
    assert (a0.filename, a0.index, a0.person, a0.normalizer) == ("a.jpg", 0, 0, 10.0)
    np.testing.assert_array_equal(a0.keypoints[9], (100, 29))
    np.testing.assert_array_equal(a0.keypoints[0], (94, 199))
    assert a0.keypoint_status[9] == features.VISIBLE and a0.keypoint_status[0] == features.OCCLUDED
    assert (a0.keypoint_status == features.NOT_ANNOTATED).sum() == 14
    assert [(s.index, s.person, s.reason) for s in train[1:]] == [
        (1, 0, source_items.NO_KEYPOINTS),
        (1, 1, source_items.NO_KEYPOINTS),
    ]
    # Without a split file train has the validation person too.
    all_train = mpii.read_h5(raw_h5 / "annot.h5", raw_h5, "train")
    assert [(i.example.index, i.example.person) for i in all_train[:2]] == [(0, 0), (0, 1)]

    (valid,) = mpii.read_h5(raw_h5 / "annot.h5", raw_h5, "valid", entries)
    assert (valid.example.index, valid.example.person) == (0, 1)
    assert valid.example.center == (299.0, 149.0 + 30.0) and valid.example.scale == 2.5

    (test,) = mpii.read_annotations(raw_h5 / "annot.h5", raw_h5, "test")
    assert (test.example.index, test.example.person, test.example.filename) == (2, 0, "c.jpg")
    assert test.example.center == pytest.approx((149.0, 89.0 + 15 * 1.1))
    assert test.example.scale == pytest.approx(1.375)
    assert not test.example.keypoint_status.any() and not test.example.keypoints.any()
    assert test.example.normalizer == 0.0  # annot.h5's placeholder 1 is not a head size


def test_raw_h5_refusals(raw_h5):
    annot = raw_h5 / "annot.h5"
    with pytest.raises(ValueError, match="raw annot.h5 .*split 'valid' needs a split file"):
        mpii.read_annotations(annot, raw_h5, "valid")
    with pytest.raises(ValueError, match="name a split"):
        mpii.read_h5(annot, raw_h5)
    with pytest.raises(ValueError, match="annot.h5: pose-hg's raw annot.h5 .* no split file"):
        mpii.read_split_file(annot)
    (raw_h5 / "wrong.txt").write_text("b.jpg 0 1\nz.jpg 9 0\n")
    with pytest.raises(ValueError, match="split file says index 0 is b.jpg, .* says a.jpg"):
        mpii.read_annotations(annot, raw_h5, "valid", raw_h5 / "wrong.txt")
    (raw_h5 / "absent.txt").write_text("z.jpg 9 0\n")
    (skipped,) = mpii.read_annotations(annot, raw_h5, "valid", raw_h5 / "absent.txt")
    assert skipped.reason == mpii.NOT_IN_ANNOTATIONS
    with h5py.File(raw_h5 / "broken.h5", "w") as f:
        f["imgname"], f["multi"] = _char_codes(["a.jpg"]), np.zeros(1)
    with pytest.raises(ValueError, match="broken.h5: missing datasets .*istrain"):
        mpii.read_annotations(raw_h5 / "broken.h5", raw_h5, "train")


def test_raw_h5_through_the_command_line(raw_h5, capsys):
    out = raw_h5 / "out"
    args = ["--dataset=mpii", f"--annotations={raw_h5 / 'annot.h5'}", f"--images={raw_h5}",
            f"--output_dir={out}", "--num_workers=1"]  # fmt: skip
    assert convert.main([*args, "--split=train"]) == 1  # no images → everybody skipped
    captured = capsys.readouterr()
    assert "Note: no --split_file, so train includes the Tompson validation people." in captured.out
    assert "missing_image: 2" in captured.err and "no_keypoints: 2" in captured.err
    assert convert.main([*args, "--split=valid"]) == 1
    assert "split 'valid' needs a split file" in capsys.readouterr().err
    assert not out.exists()


def _valid_h5() -> dict:
    if not VALID_H5.is_file():
        pytest.skip(f"real data file {VALID_H5} is absent (see shared/data/SOURCES.md)")
    with h5py.File(VALID_H5, "r") as f:
        return {k: f[k][()] for k in f}


def test_raw_h5_rebuilt_from_valid_h5_reads_like_valid_h5(tmp_path):
    # valid.h5's people as pose-hg's convert_annot.py would have written them into annot.h5:
    # raw objpos/scale (valid.h5's are adjusted), names as character codes, file order by
    # (index, person) mixed with test and extra training people.
    v = _valid_h5()
    raw_scale = v["scale"] / 1.25
    raw_center = v["center"] - np.stack([np.zeros_like(raw_scale), 15 * raw_scale], axis=1)
    rows = [
        dict(imgname=v["imgname"][r].decode(), index=int(v["index"][r]),
             person=int(v["person"][r]), center=raw_center[r], scale=raw_scale[r],
             part=v["part"][r], visible=v["visible"][r], normalize=v["normalize"][r], istrain=1)
        for r in range(len(raw_scale))
    ]  # fmt: skip
    extra_train = _person("extra.jpg", 1, 7, (50, 60), 1.0, joints={6: (50, 80, 1)})
    rows += [extra_train, _person("test.jpg", 2, 0, (10, 20), 2.0, istrain=0)]
    rows.sort(key=lambda r: (-r["index"], r["person"]))  # not valid.h5's order
    _write_raw(tmp_path / "annot.h5", rows)

    expected = mpii.read_h5(VALID_H5, tmp_path)
    valid = mpii.read_annotations(tmp_path / "annot.h5", tmp_path, "valid", VALID_H5)
    assert len(valid) == len(expected) == 2958
    for got, want in zip(valid, expected, strict=True):  # valid.h5's order
        g, w = got.example, want.example
        assert (g.filename, g.index, g.person) == (w.filename, w.index, w.person)
        np.testing.assert_allclose(g.center, w.center, atol=1e-9)
        assert g.scale == pytest.approx(w.scale, rel=1e-12)
        np.testing.assert_array_equal(g.keypoints, w.keypoints)
        np.testing.assert_array_equal(g.keypoint_status, w.keypoint_status)
        assert g.normalizer == w.normalizer and g.headbox is None
    train = mpii.read_annotations(tmp_path / "annot.h5", tmp_path, "train", VALID_H5)
    assert [(i.example.filename, i.example.index, i.example.person) for i in train] == [
        ("extra.jpg", 1, 7)
    ]
    (test,) = mpii.read_annotations(tmp_path / "annot.h5", tmp_path, "test")
    assert test.example.filename == "test.jpg"


@pytest.mark.parametrize("value", [np.nan, 1.5])
def test_a_person_number_that_is_not_whole_is_one_line(raw_h5, value):
    """Found by the fuzz: NaN cast to int64 became a garbage number, with only numpy's warning."""
    with h5py.File(raw_h5 / "annot.h5", "r+") as f:
        person = f["person"][...]
        person[1] = value
        del f["person"]
        f["person"] = person
    with pytest.raises(ValueError, match="annot.h5: person holds values that are not whole"):
        mpii.read_annotations(raw_h5 / "annot.h5", raw_h5, "train")
