"""The converter's pixel limit (data/records/items.py): an image above `max_pixels` is skipped,
read from its header, never decoded."""

import struct
import zlib

import pytest
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import items
from stacked_hourglass.data.sources import source_items


def _png(width, height) -> bytes:
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    for name in ("decode_image", "decode_png", "decode_jpeg"):
        monkeypatch.setattr(tf.io, name, refuse)


def test_image_above_the_limit_is_skipped_without_decoding(tmp_path, person_example, no_decoding):
    (tmp_path / "bomb.png").write_bytes(_png(20000, 20000))
    pending = source_items.PendingExample(
        person_example(0, image=b"", height=0, width=0), tmp_path / "bomb.png"
    )
    skipped = items.complete_item(pending, verify_images=True)
    assert (
        isinstance(skipped, source_items.Skipped) and skipped.reason == source_items.IMAGE_TOO_LARGE
    )
    assert "bomb.png: 20000x20000 (width x height) = 400000000 pixels" in skipped.detail
    assert "max_pixels = 50000000" in skipped.detail
    assert isinstance(items.prepare_record(pending, max_pixels=10**9), bytes)  # header only
    # A complete example (the synthetic source's) is held to the limit too.
    complete = person_example(1, image=_png(9000, 9000))
    assert items.complete_item(complete).reason == source_items.IMAGE_TOO_LARGE
    assert items.complete_item(complete, max_pixels=0) is complete  # 0: no limit


def test_image_size_reads_headers_only(no_decoding):
    assert items.image_size(_png(640, 480), "a.png") == (480, 640)
    jpeg = b"\xff\xd8\xff garbage"
    # Its segments end past the file: refused before libjpeg reads it (and prints).
    with pytest.raises(ValueError, match=r"x.jpg: not a readable image \(a JPEG that is trunc"):
        items.image_size(jpeg, "x.jpg")
    with pytest.raises(ValueError, match=r"y.png: not a readable image \(it has a truncated PNG"):
        items.image_size(_png(5, 5)[:18], "y.png")


def test_a_complete_example_without_an_image_is_skipped(person_example):
    skipped = items.complete_item(person_example(2, image=b"<html>404</html>"))
    assert skipped.reason == source_items.CORRUPT_IMAGE and "img_0002.jpg" in skipped.detail
    record = items.prepare_record(person_example(3))
    assert features.parse_example_numpy(record, 16)[features.SOURCE_INDEX] == 3
