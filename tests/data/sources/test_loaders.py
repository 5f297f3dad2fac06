"""Opening annotation files: every way a file can be unreadable is one error naming it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from stacked_hourglass.data.sources import _loaders


@pytest.fixture
def chunked_h5(tmp_path):
    """A small .h5 whose dataset is chunked (its chunks are indexed by a B-tree)."""
    path = tmp_path / "annot.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("part", data=np.arange(4000.0).reshape(250, 16), chunks=(10, 16))
    return path


def test_open_h5_reads(chunked_h5):
    with _loaders.open_h5(chunked_h5) as f:
        assert f["part"].shape == (250, 16)


def _damage(path, tree: int, flip: bool):
    """Damages the `tree`-th B-tree node ("TREE") of `path`: one bit of its signature, or all of
    it. Node 0 indexes the root group's links, node 1 the dataset's chunks."""
    data = bytearray(path.read_bytes())
    at = [i for i in range(len(data) - 3) if data[i : i + 4] == b"TREE"][tree]
    if flip:
        data[at] ^= 1
    else:
        data[at : at + 4] = b"EERT"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "tree, flip, read, h5py_error",
    [
        (0, True, lambda f: "part" in f, "RuntimeError: ... check link existence"),
        (0, False, lambda f: f["part"], "KeyError: ... open object"),
        (1, False, lambda f: f["part"][()], "OSError: ... read data"),
    ],
)
def test_damaged_h5_is_a_value_error_naming_the_file(chunked_h5, tree, flip, read, h5py_error):
    """The file opens (superblock and root object intact); what reads a damaged B-tree node gets
    h5py's `h5py_error` ("wrong B-tree signature"), which must become one `ValueError`."""
    _damage(chunked_h5, tree, flip)
    with (
        pytest.raises(ValueError, match=rf"^{chunked_h5}: .*wrong B-tree signature") as info,
        _loaders.open_h5(chunked_h5, "pose-hg file") as f,
    ):
        read(f)
    assert "\n" not in str(info.value) and not str(info.value).startswith(f"{chunked_h5}: '")


def test_missing_key_and_not_hdf5(chunked_h5, tmp_path):
    with (
        pytest.raises(ValueError, match=rf"^{chunked_h5}: .*normalize"),
        _loaders.open_h5(chunked_h5) as f,
    ):
        f["normalize"]
    text = tmp_path / "text.h5"
    text.write_text("not HDF5\n")
    with (
        pytest.raises(ValueError, match=rf"^{text}: not a readable HDF5 file \("),
        _loaders.open_h5(text),
    ):
        pass
    with (
        pytest.raises(FileNotFoundError, match="does not exist"),
        _loaders.open_h5(tmp_path / "missing.h5"),
    ):
        pass


def test_errors_of_other_kinds_pass_through(chunked_h5):
    """Only h5py's errors are translated; the body's own ValueError keeps its message."""
    with pytest.raises(ValueError, match="^mine$"), _loaders.open_h5(chunked_h5):
        raise ValueError("mine")
