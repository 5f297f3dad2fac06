"""HRNet json rows of the wrong type or shape (data/sources/mpii.py): a skip whose reason says
the annotation is malformed (`bad_annotation`) and whose detail names the row and field."""

import json

import pytest

from stacked_hourglass.data.records import items
from stacked_hourglass.data.sources import mpii, source_items

GOOD = {"image": "x.jpg", "center": [100, 120], "scale": 1.0, "joints": [[1, 1]] * 16,
        "joints_vis": [1] * 16}  # fmt: skip


@pytest.mark.parametrize(
    "change,field,problem",
    [
        ({"center": [100, 120, 5]}, "center", "expected 2 numbers (x, y), got shape (3,)"),
        ({"center": [[100], [120]]}, "center", "expected 2 numbers (x, y), got shape (2, 1)"),
        ({"center": {"x": 1, "y": 2}}, "center", "expected 2 numbers (x, y), got dict"),
        ({"center": [1, "a"]}, "center", "got a value that is not a number"),
        ({"scale": "1.5"}, "scale", "expected a number, got str"),
        ({"scale": True}, "scale", "expected a number, got bool"),
        ({"joints": [[1, 1, 1]] * 16}, "joints", "expected 16 (x, y) pairs, got shape (16, 3)"),
        ({"joints": [1] * 32}, "joints", "expected 16 (x, y) pairs, got shape (32,)"),
        ({"joints_vis": [[1]] * 16}, "joints_vis", "expected 16 numbers, got shape (16, 1)"),
        ({"image": None}, "image", "expected an image file name, got NoneType"),
        ({"image": 7}, "image", "expected an image file name, got int"),
    ],
)
def test_malformed_field_is_a_bad_annotation_naming_it(tmp_path, change, field, problem):
    (tmp_path / "a.json").write_text(json.dumps([GOOD, dict(GOOD, **change)]))
    good, skipped = mpii.read_json(tmp_path / "a.json", tmp_path)
    assert isinstance(good, source_items.PendingExample)
    assert (
        isinstance(skipped, source_items.Skipped) and skipped.reason == source_items.BAD_ANNOTATION
    )
    assert f"row 1: field '{field}'" in skipped.detail and problem in skipped.detail
    assert skipped.filename == ("x.jpg" if field != "image" else "")


def test_missing_field_is_a_bad_annotation_and_overflow_a_non_finite_value(tmp_path):
    missing = dict(GOOD)
    del missing["scale"]
    rows = [missing, dict(GOOD, scale=10**400), dict(GOOD, center=[float("nan"), 1])]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    first, second, third = mpii.read_json(tmp_path / "a.json", tmp_path)
    assert first.reason == source_items.BAD_ANNOTATION and "field 'scale': missing" in first.detail
    # A number too large for a float is infinite: the reason NaN/inf values get.
    assert second.reason == source_items.NAN_ANNOTATION and "OverflowError" in second.detail
    # NaN reads (json allows it) and is caught by the per-person check.
    assert items.complete_item(third).reason == source_items.NAN_ANNOTATION
