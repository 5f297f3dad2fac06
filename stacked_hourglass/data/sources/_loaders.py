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
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator

import h5py

from stacked_hourglass.utils.errors import one_line


def require_file(path: pathlib.Path | str, what: str) -> pathlib.Path:
    """`path` as a Path; `FileNotFoundError` naming it (and `what`) when it is not a file."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


# Run by `load_mat` in a fresh interpreter: kwargs in (pickled, stdin), (status, value) out.
_LOADMAT_CHILD = """
import pickle, sys, scipy.io
kwargs = pickle.loads(sys.stdin.buffer.read())
try:
    result = ("ok", scipy.io.loadmat(sys.argv[1], **kwargs))
except NotImplementedError:
    result = ("v7.3", "")
except Exception as e:  # loadmat raises many types (MatReadError, struct.error, ...)
    result = ("error", str(e) or type(e).__name__)
pickle.dump(result, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
"""


def load_mat(path: pathlib.Path | str, what: str = "MATLAB .mat file", **kwargs) -> dict:
    """`scipy.io.loadmat(path, **kwargs)`, run in a child process; `ValueError` naming the
    file when it cannot be read.

    scipy's reader (1.17) dies of SIGSEGV/SIGBUS on some damaged files (a 1-bit flip of FLIC's
    `examples.mat` is one), which no Python code can catch: in a child process such a crash
    is one error naming the file instead of the end of the converter. The child is a fresh
    interpreter (`python -c`, ~0.3 s to start and import scipy) rather than a multiprocessing
    worker, which would re-import the caller's `__main__` script.
    """
    path = require_file(path, what)
    run = subprocess.run(
        [sys.executable, "-c", _LOADMAT_CHILD, str(path)],
        input=pickle.dumps(kwargs),
        capture_output=True,
        check=False,
    )
    if run.returncode < 0:
        raise ValueError(
            f"{path}: the .mat reader (scipy.io.loadmat) crashed on this file "
            f"({signal.Signals(-run.returncode).name}): not a readable {what} (damaged?)"
        )
    if run.returncode != 0:
        lines = run.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise ValueError(f"{path}: the .mat reader failed ({lines[-1]})")
    # The child's own output: objects scipy built from the file, nothing the file chose.
    status, value = pickle.loads(run.stdout)
    if status == "v7.3":
        raise ValueError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which scipy cannot read; save it with -v7"
        )
    if status == "error":
        raise ValueError(f"{path}: not a readable {what} ({one_line(RuntimeError(value))})")
    return value


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
        raise ValueError(f"{path}: not a readable {what} ({one_line(e)})") from None
    with f:
        try:
            yield f
        except KeyError as e:  # h5py's message is its only argument (str() would quote it)
            raise ValueError(f"{path}: {e.args[0] if e.args else one_line(e)}") from None
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path}: a damaged {what} ({one_line(e)})") from None


def h5_array(f: h5py.File, key: str):
    """`f[key][()]` of a file opened with `open_h5`; `KeyError` (which `open_h5` turns into a
    `ValueError` naming the file) when `key` is absent or names a group or a type, not a dataset.
    """
    item = f.get(key)
    if not isinstance(item, h5py.Dataset):
        kind = "missing" if item is None else f"a {type(item).__name__}, not a dataset"
        raise KeyError(f"'{key}' is {kind}")
    return item[()]


def load_json(path: pathlib.Path | str, what: str = "JSON file"):
    """The parsed content of a JSON file; `ValueError` naming the file when it is not JSON."""
    path = require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, digit limit
        raise ValueError(f"{path}: not a valid {what} ({one_line(e)})") from None
