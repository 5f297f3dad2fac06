"""Tests of the per-person items and checks (data/records/items.py)."""

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import items
from stacked_hourglass.data.sources import source_items


def _jpeg(height, width) -> bytes:
    return tf.io.encode_jpeg(tf.fill([height, width, 3], tf.constant(90, tf.uint8))).numpy()


def test_pending_example_reads_image_size(tmp_path, person_example):
    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 40))
    png = tf.io.encode_png(tf.zeros([7, 9, 3], tf.uint8)).numpy()
    (tmp_path / "b.png").write_bytes(png)
    for name, size in (("a.jpg", (30, 40)), ("b.png", (7, 9))):
        pending = source_items.PendingExample(
            person_example(0, image=b"", height=0, width=0, center=(5.0, 5.0)), tmp_path / name
        )
        pending.example.keypoints[:] = 1.0
        loaded = items.complete_item(pending, verify_images=True)
        assert isinstance(loaded, features.PersonExample), loaded
        assert (loaded.height, loaded.width) == size
        assert loaded.image_encoded == (tmp_path / name).read_bytes()


def test_check_example_reasons(person_example):
    assert items.check_example(person_example(0)) is None
    nan = person_example(0).keypoints.copy()
    nan[2, 0] = np.nan
    skipped = items.check_example(person_example(1, keypoints=nan))
    assert skipped.reason == source_items.NAN_ANNOTATION and "person/keypoints" in skipped.detail
    assert (skipped.filename, skipped.index, skipped.person) == ("img_0001.jpg", 1, 0)
    assert items.check_example(person_example(2, scale=0.0)).reason == source_items.BAD_SCALE
    far = person_example(0).keypoints.copy()
    far[1] = (500.0, 10.0)  # image is 64 wide: > 1 image width outside
    skipped = items.check_example(person_example(3, keypoints=far))
    assert skipped.reason == source_items.FAR_OUTSIDE and "joint 1" in skipped.detail
    skipped = items.check_example(person_example(4, center=(-100.0, 20.0)))
    assert skipped.reason == source_items.FAR_OUTSIDE and "center" in skipped.detail
    # A NaN at a joint that is not annotated does not matter.
    unannotated = person_example(0).keypoints.copy()
    unannotated[5] = np.nan
    assert items.check_example(person_example(5, keypoints=unannotated)) is None


def test_bad_images_are_skips_naming_the_file(tmp_path, person_example):
    missing = items.complete_item(
        source_items.PendingExample(person_example(0), tmp_path / "nope.jpg")
    )
    assert missing.reason == source_items.MISSING_IMAGE and "nope.jpg" in missing.detail
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    corrupt = items.complete_item(
        source_items.PendingExample(person_example(0), tmp_path / "corrupt.jpg")
    )
    assert corrupt.reason == source_items.CORRUPT_IMAGE and "corrupt.jpg" in corrupt.detail
    with pytest.raises(ValueError, match="x.png: not a readable image"):
        items.image_size(b"\x89PNG garbage", "x.png")


def _noise_jpeg(progressive: bool) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), np.uint8)
    return tf.io.encode_jpeg(noise, progressive=progressive).numpy()


@pytest.mark.parametrize(
    "progressive, keep, detail",
    [
        (False, 20, "a JPEG that is truncated: it ends at byte 20, inside its headers"),
        (False, 400, "a JPEG that is truncated: its FF C4 segment at byte 393 runs past the end"),
        (True, 0.5, "a JPEG that is truncated: no end-of-image marker (FF D9) after its scan"),
    ],
)
def test_truncated_jpeg_is_one_reason_and_nothing_on_stderr(
    tmp_path, person_example, capfd, progressive, keep, detail
):
    """libjpeg prints "Input file read error" (headers) or "Improper call to JPEG library"
    (a progressive file's later scans) on the process's stderr for these files, beside the
    error TensorFlow raises; they are refused before libjpeg reads them."""
    whole = _noise_jpeg(progressive)
    data = whole[: keep if isinstance(keep, int) else int(len(whole) * keep)]
    (tmp_path / "t.jpg").write_bytes(data)
    capfd.readouterr()
    skipped = items.complete_item(
        source_items.PendingExample(person_example(0), tmp_path / "t.jpg"), verify_images=True
    )
    assert skipped.reason == source_items.CORRUPT_IMAGE
    assert skipped.detail.startswith(f"{tmp_path / 't.jpg'}"), skipped.detail
    assert detail in skipped.detail, skipped.detail
    assert capfd.readouterr() == ("", "")  # fd 1 and 2: C++ output included
    assert items.jpeg_structure_problem(whole, need_end=True) == ""
    assert items.jpeg_structure_problem(whole + b"trailer", need_end=True) == ""


def test_annotation_is_checked_before_the_image_is_read(tmp_path, person_example):
    # A bad annotation is reported as such even when the image is missing too.
    pending = source_items.PendingExample(person_example(0, scale=-1.0), tmp_path / "nope.jpg")
    assert items.complete_item(pending).reason == source_items.BAD_SCALE
    skipped = source_items.Skipped("x.jpg", 7, 1, source_items.NO_CENTER, "no objpos")
    assert items.complete_item(skipped) is skipped
    assert items.prepare_record(skipped) is skipped
    assert skipped.as_dict() == {
        "filename": "x.jpg", "index": 7, "person": 1, "reason": source_items.NO_CENTER,
        "detail": "no objpos",
    }  # fmt: skip


def test_prepare_record_serializes(person_example):
    example = person_example(3)
    record = items.prepare_record(example)
    parsed = features.parse_example_numpy(record, 16)
    assert parsed[features.SOURCE_INDEX] == 3
    assert parsed[features.IMAGE_ENCODED] == example.image_encoded
