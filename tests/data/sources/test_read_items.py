"""Tests of the source registry (data/sources/__init__.py): dispatch, checks, import contract."""

import ast
import pathlib

import pytest

import stacked_hourglass
from stacked_hourglass.data import sources
from stacked_hourglass.data.sources import source_items, synthetic


def test_dispatch_to_mpii_fingerprints_all_inputs(official_mpii):
    items, count, files = sources.read_items(
        "mpii", "valid", annotations=official_mpii / "mpii.mat",
        images_dir=official_mpii / "images", split_file=official_mpii / "split.txt",
    )  # fmt: skip
    assert count == len(items) == 1
    assert files == [official_mpii / "mpii.mat", official_mpii / "split.txt"]


def test_synthetic_items_use_generate_examples(monkeypatch):
    calls = []

    def fake_generate_examples(split, num_examples, seed=0):
        calls.append((split, num_examples, seed))
        return iter(range(num_examples))

    monkeypatch.setattr(synthetic, "generate_examples", fake_generate_examples)
    items, count, files = sources.read_items("synthetic", "valid", num_examples=3, seed=7)
    assert count == 3 and files == [] and len(list(items)) == 3
    assert calls == [("valid", 3, 7)]


def test_arguments_are_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        sources.read_items("mpii", "train", tmp_path / "a.mat", tmp_path)


@pytest.mark.parametrize(
    "dataset,split,kwargs,error,message",
    [
        ("lsp", "train", {}, ValueError, "unknown dataset 'lsp'; expected one of mpii, flic"),
        ("flic", "test", {}, ValueError, "flic has splits train, valid; got 'test'"),
        ("mpii", "train", {}, ValueError, "mpii needs an annotations file and an images folder"),
        ("synthetic", "train", {"num_examples": 0}, ValueError, "num_examples >= 1"),
        ("synthetic", "train", {"num_examples": 2, "annotations": "a.mat"}, ValueError,
         "synthetic takes no annotations"),
    ],
)  # fmt: skip
def test_bad_requests(dataset, split, kwargs, error, message):
    with pytest.raises(error, match=message):
        sources.read_items(dataset, split, **kwargs)


def test_missing_images_folder_or_annotations(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no_images does not exist"):
        sources.read_items("mpii", "train", annotations=tmp_path / "a.mat",
                           images_dir=tmp_path / "no_images")  # fmt: skip
    with pytest.raises(NotADirectoryError, match="a.mat is a file, not a folder"):
        sources.read_items("mpii", "train", annotations=tmp_path / "a.mat",
                           images_dir=tmp_path / "a.mat")  # fmt: skip
    with pytest.raises(FileNotFoundError, match="b.mat does not exist"):
        sources.read_items("flic", "train", annotations=tmp_path / "b.mat", images_dir=tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        sources.read_items("flic", "train", annotations=tmp_path, images_dir=tmp_path)
    with pytest.raises(ValueError, match="FLIC takes no split file"):
        sources.read_items("flic", "train", annotations=tmp_path / "a.mat", images_dir=tmp_path,
                           split_file=tmp_path / "a.mat")  # fmt: skip


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_sources_never_import_the_shard_writer():
    # The import-linter contract, checked here too. Sources import nothing of data.records (their
    # item types are in sources/source_items.py, which imports no source and no record module),
    # and records.items imports only those types of the sources, so the writer can never be
    # part of an import cycle with them.
    package = pathlib.Path(stacked_hourglass.__file__).parent
    for path in sorted((package / "data" / "sources").rglob("*.py")):
        bad = {n for n in _imports(path) if "records.shards" in n or n.endswith("data.convert_lib")}
        assert not bad, f"{path} imports {bad}"
        records = {n for n in _imports(path) if "data.records" in n}
        assert not records, f"{path} imports {records}"
    items_imports = _imports(package / "data" / "records" / "items.py")
    assert {n for n in items_imports if "sources" in n and n.count(".") == 3} == {
        "stacked_hourglass.data.sources.source_items"
    }
    types_imports = _imports(package / "data" / "sources" / "source_items.py")
    assert not {n for n in types_imports if "sources" in n or "records" in n}


def test_images_outside_the_images_folder_are_skipped(official_mpii, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.jpg"
    images = official_mpii / "images"
    outside.write_bytes((images / "a.jpg").read_bytes())
    (images / "a.jpg").unlink()
    (images / "a.jpg").symlink_to(outside)  # a symlink out of --images counts as outside
    items, count, _ = sources.read_items(
        "mpii", "train", annotations=official_mpii / "mpii.mat", images_dir=images
    )
    items = list(items)
    assert len(items) == count
    outside_skips = [
        i for i in items if getattr(i, "reason", "") == source_items.OUTSIDE_IMAGES_DIR
    ]
    assert {(s.filename, s.person) for s in outside_skips} == {("a.jpg", 0), ("a.jpg", 1)}
    assert f"resolves to {outside}" in outside_skips[0].detail


def test_confine_and_deduplicate(tmp_path, person_example):
    images = tmp_path / "images"
    images.mkdir()
    (images / "x.jpg").write_bytes(b"jpeg")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    pending = [
        source_items.PendingExample(person_example(0), images / "x.jpg"),
        source_items.PendingExample(person_example(1), images / "x.jpg"),  # other keypoints
        source_items.PendingExample(person_example(0), images / "x.jpg"),  # a duplicate
        source_items.PendingExample(person_example(2), images / ".." / "outside.jpg"),
        source_items.PendingExample(person_example(3), images / "/etc/passwd"),
        source_items.PendingExample(person_example(4), tmp_path / "loop"),
    ]
    out = sources.confine_and_deduplicate(pending, images)
    reasons = [getattr(i, "reason", "kept") for i in out]
    assert reasons == [
        "kept", "kept", source_items.DUPLICATE_PERSON, source_items.OUTSIDE_IMAGES_DIR,
        source_items.OUTSIDE_IMAGES_DIR, source_items.MISSING_IMAGE,
    ]  # fmt: skip
    assert "/etc/passwd resolves to /etc/passwd, outside" in out[4].detail
    assert "cannot be resolved" in out[5].detail
