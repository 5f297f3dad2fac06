"""Opening annotation files (.mat, .h5, .json) with errors that name the file.

The parsers (scipy, h5py, json) raise their own exception types with messages that do not say
which file was wrong (scipy's `MatReadError` is not even a `ValueError`); here every failure to
parse becomes a `ValueError` or `OSError` whose message starts with the path, which is what the
command line prints as its one error line.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator

import h5py
import scipy.io

from stacked_hourglass.data.records.items import first_line


def require_file(path: pathlib.Path | str, what: str) -> pathlib.Path:
    """`path` as a Path; `FileNotFoundError` naming it (and `what`) when it is not a file."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def load_mat(path: pathlib.Path | str, what: str = "MATLAB .mat file", **kwargs) -> dict:
    """`scipy.io.loadmat(path, **kwargs)`; `ValueError` naming the file when it cannot be read."""
    path = require_file(path, what)
    try:
        return scipy.io.loadmat(path, **kwargs)
    except NotImplementedError:
        raise ValueError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which scipy cannot read; save it with -v7"
        ) from None
    except Exception as e:  # loadmat raises many types (MatReadError, struct.error, ...)
        raise ValueError(f"{path}: not a readable {what} ({first_line(e)})") from None


@contextlib.contextmanager
def open_h5(path: pathlib.Path | str, what: str = "HDF5 file") -> Iterator[h5py.File]:
    """`h5py.File(path, "r")`; `ValueError` naming the file when it is not HDF5, is damaged or
    lacks a key.

    A damaged file may open and fail only when a dataset is read: h5py then raises `OSError`
    ("Can't read data") or `RuntimeError` ("wrong B-tree signature"); both become a
    `ValueError` naming the file, as a `KeyError` for a missing dataset does. The body of the
    `with` block should only read the file (any `OSError` in it is taken for h5py's).
    """
    path = require_file(path, what)
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable {what} ({first_line(e)})") from None
    with f:
        try:
            yield f
        except KeyError as e:  # h5py's message is its only argument (str() would quote it)
            raise ValueError(f"{path}: {e.args[0] if e.args else first_line(e)}") from None
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path}: a damaged {what} ({first_line(e)})") from None


def load_json(path: pathlib.Path | str, what: str = "JSON file"):
    """The parsed content of a JSON file; `ValueError` naming the file when it is not JSON."""
    path = require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, digit limit
        raise ValueError(f"{path}: not a valid {what} ({first_line(e)})") from None
