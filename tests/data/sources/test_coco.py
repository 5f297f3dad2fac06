"""Tests of the COCO-format source (data/sources/coco.py) through `convert.main` in-process: the
coordinate convention, centre/scale/box/normaliser/visibility/ids on a hand-written file, skip
reasons, the joint set in the manifest, --category and --joints, malformed entries."""

import json

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import convert, joints
from stacked_hourglass.data import features, geometry
from stacked_hourglass.data.records.split import Manifest
from stacked_hourglass.data.sources import coco, source_items

HAND = {
    "id": 2, "name": "hand", "keypoints": ["wrist", "l_tip", "r_tip"], "skeleton": [[1, 2], [1, 3]],
}  # fmt: skip


def _ann(ann_id, image_id, bbox, keypoints=(10, 20, 2, 30, 5, 1, 0, 0, 0), **extra) -> dict:
    n = sum(1 for v in keypoints[2::3] if v)
    return {"id": ann_id, "image_id": image_id, "category_id": 2, "keypoints": list(keypoints),
            "num_keypoints": n, "bbox": bbox, "area": 900.5, "iscrowd": 0, **extra}  # fmt: skip


@pytest.fixture
def hand_file(tmp_path, png_header):
    """`make(annotations=None, categories=None, images=None)` → the convert flags reading a file
    of `HAND` people (`_hand_file`)."""
    return lambda *args, **kwargs: _hand_file(tmp_path, png_header, *args, **kwargs)


def _hand_file(tmp_path, png_header, annotations=None, categories=None, images=None) -> list[str]:
    """A file of `HAND` people on 64x48 images 7 and 9 (and 10, missing, and 11, too large): by
    default two good people and one of each skip reason; returns the convert flags reading it."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    jpeg = tf.io.encode_jpeg(tf.zeros([48, 64, 3], tf.uint8)).numpy()
    (folder / "a.jpg").write_bytes(jpeg)
    (folder / "b.jpg").write_bytes(jpeg)
    (folder / "big.png").write_bytes(png_header(20000, 20000))
    default_images = [
        {"id": 7, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 9, "file_name": "b.jpg", "width": 64, "height": 48},
        {"id": 10, "file_name": "missing.jpg", "width": 64, "height": 48},
        {"id": 11, "file_name": "big.png", "width": 20000, "height": 20000},
    ]
    default_annotations = [
        _ann(11, 7, [4, 2, 40, 30]),
        _ann(12, 9, [0, 0, 10, 20], [5, 5, 2, 6, 6, 2, 7, 7, 2], area=150.0),
        {"id": 13, "image_id": 7, "category_id": 2, "iscrowd": 1},  # crowd: nothing else read
        _ann(14, 7, [1, 1, 10, 10], [0] * 9),
        {"id": 15, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]},  # a box-only "car"
        _ann(16, 99, [1, 1, 10, 10]),
        _ann(17, 7, [1, 1, 0, 5]),
        _ann(18, 9, [100, 100, 10, 10]),
        _ann(19, 10, [1, 1, 10, 10]),
        _ann(20, 11, [1, 1, 10, 10]),
        _ann(21, 9, [1, 1, 10, 10], [10, 20, 2, 500, 5, 2, 0, 0, 0]),  # a joint far outside
    ]
    payload = {
        "images": default_images if images is None else images,
        "annotations": default_annotations if annotations is None else annotations,
        "categories": [{"id": 1, "name": "car"}, HAND] if categories is None else categories,
    }
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(payload))
    return ["--dataset=coco", f"--annotations={path}", f"--images={folder}", "--num_workers=1"]


def _convert(args, out, *extra) -> int:
    return convert.main([*args, f"--output_dir={out}", "--split=valid", *extra])


def _records(out, num_joints) -> list[dict]:
    paths = sorted(str(p) for p in out.glob("valid-*.tfrecord"))
    return [
        features.parse_example_numpy(r.numpy(), num_joints) for r in tf.data.TFRecordDataset(paths)
    ]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_coco_box_and_the_box_rule_by_hand():
    # bbox [4, 2, 40, 30] covers pixels 4..43 x 2..31: centres -0.5 from its continuous edges.
    box = coco.coco_box([4, 2, 40, 30])
    assert box == (3.5, 1.5, 43.5, 31.5)
    assert coco.to_coco_bbox(box) == [4, 2, 40, 30]  # written back as it was read
    center, scale = geometry.box_to_center_scale(np.asarray(box))
    np.testing.assert_array_equal(center, [23.5, 16.5])  # numpy in, float64 numpy out
    assert scale == 1.25 * 40 / 200 == 0.25
    center, scale = geometry.box_to_center_scale(tf.constant([box, (-0.5, -0.5, 9.5, 19.5)]))
    np.testing.assert_allclose(center.numpy(), [[23.5, 16.5], [4.5, 9.5]], rtol=4 * 2.0**-23)
    np.testing.assert_allclose(scale.numpy(), [0.25, 0.125], rtol=4 * 2.0**-23)  # float32 ulps


def test_hand_written_file_converts_as_specified(tmp_path, capsys, hand_file):
    out = tmp_path / "out"
    assert _convert(hand_file(), out) == 0
    stdout = capsys.readouterr().out
    assert "category 'hand' (id 2): 3 joints; flip pairs inferred from names: l_tip/r_tip" in stdout
    first, second = _records(out, 3)
    np.testing.assert_array_equal(first["person/center"], [23.5, 16.5])
    assert first["person/scale"] == 0.25 and first["person/normalizer"] == 40.0
    np.testing.assert_array_equal(first["person/box"], [3.5, 1.5, 43.5, 31.5])
    assert first["person/area"] == 900.5
    np.testing.assert_array_equal(first["person/keypoints"], [[10, 20], [30, 5], [0, 0]])
    np.testing.assert_array_equal(first["person/keypoint_status"], [2, 1, 0])
    assert (first["source/dataset"], first["source/index"], first["source/person"]) == (
        "coco", 7, 11,
    )  # fmt: skip
    assert (first["image/width"], first["image/height"], first["image/filename"]) == (
        64, 48, "a.jpg",
    )  # fmt: skip
    np.testing.assert_array_equal(second["person/center"], [4.5, 9.5])
    assert second["person/scale"] == np.float32(0.125) and second["person/normalizer"] == 20.0
    assert (second["source/index"], second["source/person"], second["person/area"]) == (9, 12, 150)


def test_skips_are_counted_by_reason_and_the_manifest_names_the_file(tmp_path, capsys, hand_file):
    args = hand_file()
    out = tmp_path / "out"
    assert _convert(args, out) == 0
    manifest = Manifest.read(str(out / "valid.manifest.json"))
    assert manifest.skipped_by_reason == {
        source_items.BOX_OUTSIDE: 1, source_items.CROWD: 1, source_items.DEGENERATE_BOX: 1,
        source_items.FAR_OUTSIDE: 1, source_items.IMAGE_TOO_LARGE: 1,
        source_items.MISSING_IMAGE: 1, source_items.NO_KEYPOINTS: 1,
        source_items.OTHER_CATEGORY: 1, source_items.UNKNOWN_IMAGE_ID: 1,
    }  # fmt: skip
    assert [(s["index"], s["person"]) for s in manifest.skipped][:2] == [(7, 13), (7, 14)]
    annotations = args[1].split("=", 1)[1]
    assert manifest.sources[0]["path"] == annotations and len(manifest.sources[0]["sha256"]) == 64
    assert manifest.options["category"] == {"id": 2, "name": "hand"}
    assert manifest.dataset == "coco" and manifest.joint_names == ["wrist", "l_tip", "r_tip"]
    inferred = manifest.joints()
    assert inferred.swap_pairs == (("l_tip", "r_tip"),) and inferred.normalizer == "box"
    assert inferred.skeleton == (("wrist", "l_tip"), ("wrist", "r_tip"))


def test_joints_file_is_recorded_and_must_match_the_category(tmp_path, capsys, hand_file):
    args = hand_file()
    good = tmp_path / "hand_joints.json"
    hand = {"name": "my_hand", "joints": HAND["keypoints"], "flip_pairs": [["l_tip", "r_tip"]],
            "oks_sigmas": [0.05, 0.04, 0.04]}  # fmt: skip
    good.write_text(json.dumps(hand))
    assert _convert(args, tmp_path / "out", f"--joints={good}") == 0
    manifest = Manifest.read(str(tmp_path / "out" / "valid.manifest.json"))
    assert manifest.joint_set == joints.JointSet.from_dict(hand).to_dict()
    assert [s["path"] for s in manifest.sources] == [args[1].split("=", 1)[1], str(good)]
    capsys.readouterr()
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"name": "x", "joints": ["wrist", "tip_l", "tip_r"]}))
    assert _convert(args, tmp_path / "out2", f"--joints={wrong}") == 1
    line = _error_line(capsys)
    assert f"{wrong}: joints ['wrist', 'tip_l', 'tip_r'] are not the keypoints" in line
    assert "['wrist', 'l_tip', 'r_tip'] of" in line and "category 'hand' (id 2)" in line
    wrong.write_text(json.dumps({**hand, "normalizer": "head"}))
    assert _convert(args, tmp_path / "out2", f"--joints={wrong}") == 1
    assert "normalizer 'head', but COCO-format records" in _error_line(capsys)
    assert not (tmp_path / "out2").exists()


def test_category_choice_and_its_errors(tmp_path, capsys, hand_file):
    tool = {"id": 5, "name": "tool", "keypoints": ["tip", "base"]}
    tool_person = {**_ann(12, 9, [0, 0, 10, 20], [5, 5, 2, 6, 6, 1]), "category_id": 5}
    annotations = [_ann(11, 7, [4, 2, 40, 30]), tool_person]
    args = hand_file(annotations, [HAND, tool])
    assert _convert(args, tmp_path / "out") == 1
    assert "2 categories with keypoints ('hand' (id 2), 'tool' (id 5)); pick one with " + (
        "--category=NAME|ID"
    ) in _error_line(capsys)
    for choice in ("tool", "5"):
        out = tmp_path / f"out_{choice}"
        assert _convert(args, out, f"--category={choice}") == 0
        (record,) = _records(out, 2)
        assert record["source/person"] == 12
        manifest = Manifest.read(str(out / "valid.manifest.json"))
        assert manifest.joint_names == ["tip", "base"] and manifest.skipped_by_reason == {
            source_items.OTHER_CATEGORY: 1
        }
    capsys.readouterr()
    assert _convert(args, tmp_path / "bad", "--category=car") == 1
    assert "no keypoint category 'car'; the file has 'hand' (id 2), 'tool' (id 5)" in (
        _error_line(capsys)
    )
    assert _convert(args, tmp_path / "bad", "--category=hand", "--dataset=synthetic") == 1
    assert "--category and --joints are for --dataset=coco only" in _error_line(capsys)


def _one(entry):
    return [_ann(11, 7, [4, 2, 40, 30]), entry]


@pytest.mark.parametrize(
    "annotations,images,message",
    [
        (_one({"image_id": 7, "category_id": 2}), None,
         "annotations[1] needs integer 'id', 'image_id' and 'category_id'"),
        (_one(_ann(12, 7, [1, 1, 5, 5], [1, 2, 2])), None,
         "annotations[1] (id 12): 'keypoints' is not 9 numbers"),
        (_one(_ann(12, 7, "1 1 5 5")), None, "annotations[1] (id 12): 'bbox' is not [x, y, w, h]"),
        (_one(_ann(12, 7, [1, 1, 5, 5], [1, 2, 3] * 3)), None,
         "annotations[1] (id 12): visibility flags must be 0, 1 or 2, got [3, 3, 3]"),
        (_one(_ann(12, 7, [1, 1, 5, 5], iscrowd="no")), None,
         "annotations[1] (id 12): 'iscrowd' is not 0 or 1"),
        (None, [{"id": 7, "width": 64, "height": 48}], "images[0] needs an integer 'id', a"),
        (None, [{"id": 7, "file_name": "a.jpg"}, {"id": 7, "file_name": "b.jpg"}],
         "images[1]: image id 7 appears twice"),
    ],
)  # fmt: skip
def test_malformed_entries_are_one_line(tmp_path, capsys, hand_file, annotations, images, message):
    args = hand_file(annotations, images=images)
    assert _convert(args, tmp_path / "out") == 1
    line = _error_line(capsys)
    assert f"{tmp_path / 'hand.json'}: {message}" in line, line
    assert not (tmp_path / "out").exists()


def test_not_a_coco_file_is_one_line(tmp_path, capsys, hand_file):
    args = hand_file()
    (tmp_path / "hand.json").write_text(json.dumps({"images": [], "annotations": []}))
    assert _convert(args, tmp_path / "out") == 1
    assert "hand.json: 'categories' is missing or not a list" in _error_line(capsys)
    (tmp_path / "hand.json").write_text(json.dumps({"images": [], "annotations": [],
                                                    "categories": [{"id": 1}]}))  # fmt: skip
    assert _convert(args, tmp_path / "out") == 1
    assert "hand.json: no category with 'keypoints' names" in _error_line(capsys)


@pytest.fixture(scope="module")
def people(tmp_path_factory, write_coco_dataset):
    return write_coco_dataset(tmp_path_factory.mktemp("coco_people"), kind="people")


def test_synthetic_people_convert_with_the_builtin_coco_set(people, tmp_path, capsys):
    annotations, images = people
    out = tmp_path / "out"
    assert _convert(["--dataset=coco", f"--annotations={annotations}", f"--images={images}"],
                    out) == 0  # fmt: skip
    assert "COCO's 17 person keypoints (built-in joint set 'coco')" in capsys.readouterr().out
    manifest = Manifest.read(str(out / "valid.manifest.json"))
    assert manifest.joint_set == joints.COCO.to_dict() and manifest.joints() is joints.COCO
    assert manifest.num_records == 6
    assert manifest.skipped_by_reason == {source_items.CROWD: 1, source_items.NO_KEYPOINTS: 1}
    records = _records(out, 17)
    face = joints.COCO.indices(["nose", "left_eye", "right_eye", "left_ear", "right_ear"])
    statuses = np.stack([r["person/keypoint_status"] for r in records])
    assert np.all(statuses[:, face] == features.NOT_ANNOTATED)
    assert np.all(statuses[:, 5:] != features.NOT_ANNOTATED, axis=1).sum() >= 1
    payload = json.loads(annotations.read_text())
    assert [r["source/person"] for r in records] == [a["id"] for a in payload["annotations"][:6]]
    for record, ann in zip(records, payload["annotations"], strict=False):
        np.testing.assert_allclose(record["person/box"], coco.coco_box(ann["bbox"]), atol=1e-4)
        labelled = np.asarray(ann["keypoints"]).reshape(-1, 3)
        np.testing.assert_allclose(record["person/keypoints"], labelled[:, :2], atol=1e-4)


def test_shapes_convert_with_an_inferred_custom_set(tmp_path, capsys, write_coco_dataset):
    annotations, images = write_coco_dataset(
        tmp_path / "shapes", kind="shapes", num_images=2, people_per_image=1, seed=3
    )
    out = tmp_path / "out"
    assert _convert(["--dataset=coco", f"--annotations={annotations}", f"--images={images}"],
                    out) == 0  # fmt: skip
    joint_set = Manifest.read(str(out / "valid.manifest.json")).joints()
    assert joint_set.name == "tool" and joint_set.num_joints == 5
    assert set(joint_set.swap_pairs) == {("left_foot", "right_foot"), ("left_wing", "right_wing")}
    records = _records(out, 5)
    assert len(records) == 2 and all(r["source/dataset"] == "coco" for r in records)
    assert all(np.all(r["person/keypoint_status"] == features.VISIBLE) for r in records)


def test_builder_is_deterministic(tmp_path, write_coco_dataset):
    a, _ = write_coco_dataset(tmp_path / "a", num_images=1, people_per_image=1, seed=4)
    b, _ = write_coco_dataset(tmp_path / "b", num_images=1, people_per_image=1, seed=4)
    assert a.read_text() == b.read_text()
    assert (a.parent / "images").iterdir().__next__().read_bytes() == next(
        (b.parent / "images").iterdir()
    ).read_bytes()


def test_records_of_other_sources_have_no_box_and_parse_with_defaults(person_example):
    old = features.serialize_example(person_example(0))
    assert features.PERSON_BOX.encode() not in old
    parsed = features.parse_example_numpy(old, 16)
    np.testing.assert_array_equal(parsed[features.PERSON_BOX], np.zeros(4))
    assert parsed[features.PERSON_AREA] == 0.0
    with_box = person_example(0, box=(1.0, 2.0, 3.0, 4.0), area=4.0)
    parsed = features.parse_example_numpy(features.serialize_example(with_box), 16)
    np.testing.assert_array_equal(parsed[features.PERSON_BOX], [1, 2, 3, 4])
    assert parsed[features.PERSON_AREA] == 4.0
