"""Storage: local paths and TensorFlow file-system URLs alike, and atomic writes.

Every file the package reads or writes for others (model directories, exports, manifests, shards,
predictions) goes through this module, so `gs://bucket/run`, `ram://x` (TensorFlow's in-memory
file system) and the other URL schemes TensorFlow knows work wherever a local path does. A URL
(`scheme://...`) is handled by `tf.io.gfile`; a plain path by `os`, which behaves the same for
local files and keeps the numpy-only modules (PCK scoring, prediction files) free of TensorFlow:
TensorFlow is imported only when a URL is given.

Atomic writes (`atomic_path`, `atomic_dir`): the content is written under a hidden temporary name
in the target's folder and renamed onto the target when complete, so a reader sees the old file or
the new one, never half of one. Temporary names start with "." and end with ".tmp", so no
documented glob (`train-*.tfrecord`, `*.json`) matches a half-written file. On a local or POSIX
file system (and HDFS) the rename is atomic. Object stores (`gs://`, `s3://`) have no rename:
TensorFlow copies, then deletes; an object only appears once its upload is complete, so readers
still never see a partial file, but a folder (copied, then deleted: TensorFlow's file systems
rename files, not folders) appears file by file.
Writers that need a real local file (h5py, Keras's `.keras` zip) ask for `local=True`: they get a
local temporary path, which is uploaded and renamed into place when they are done; readers that
need one use `local_copy`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: os.PathLike | str) -> bool:
    """Whether `path` names a TensorFlow file system by URL (`gs://`, `ram://`, ...)."""
    return bool(_URL.match(os.fspath(path)))


def _gfile():
    # Imported on first use of a URL only: see the module docstring.
    return importlib.import_module("tensorflow").io.gfile


@contextlib.contextmanager
def _known_scheme(path: os.PathLike | str) -> Iterator[None]:
    """Turns TensorFlow's error for a URL scheme it has no file system for (`s3://`,
    `hdfs://` without a plug-in) into one `ValueError` line naming the path."""
    tf = importlib.import_module("tensorflow")
    try:
        yield
    except tf.errors.UnimplementedError:
        scheme = os.fspath(path).split("://", 1)[0]
        raise ValueError(f"{os.fspath(path)}: TensorFlow has no {scheme}:// file system") from None


def join(path: os.PathLike | str, *names: str) -> str:
    """`os.path.join` that keeps URLs as they are (`gs://b/x` + `y` = `gs://b/x/y`)."""
    return os.path.join(os.fspath(path), *names)


def exists(path: os.PathLike | str) -> bool:
    """Whether a file or folder exists at `path`."""
    if is_url(path):
        with _known_scheme(path):
            return _gfile().exists(os.fspath(path))
    return os.path.exists(path)


def isdir(path: os.PathLike | str) -> bool:
    """Whether `path` is a folder."""
    if is_url(path):
        with _known_scheme(path):
            return _gfile().isdir(os.fspath(path))
    return os.path.isdir(path)


def makedirs(path: os.PathLike | str) -> None:
    """Creates `path` and its parents; nothing when it exists."""
    if is_url(path):
        with _known_scheme(path):
            _gfile().makedirs(os.fspath(path))
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: os.PathLike | str) -> list[str]:
    """Names (not paths) in the folder `path`, sorted."""
    if is_url(path):
        with _known_scheme(path):
            return sorted(name.rstrip("/") for name in _gfile().listdir(os.fspath(path)))
    return sorted(os.listdir(path))


def glob(pattern: os.PathLike | str) -> list[str]:
    """Paths matching a glob pattern (`*`, `?`, `[...]`), sorted."""
    if is_url(pattern):
        return sorted(_gfile().glob(os.fspath(pattern)))
    import glob as glob_lib

    return sorted(glob_lib.glob(os.fspath(pattern)))


def size(path: os.PathLike | str) -> int:
    """Size of the file `path` in bytes."""
    return _gfile().stat(os.fspath(path)).length if is_url(path) else os.path.getsize(path)


def remove(path: os.PathLike | str, missing_ok: bool = True) -> None:
    """Deletes the file `path`."""
    if missing_ok and not exists(path):
        return
    if is_url(path):
        _gfile().remove(os.fspath(path))
    else:
        os.remove(path)


def rmtree(path: os.PathLike | str) -> None:
    """Deletes the folder `path` and what it holds; nothing when it is absent."""
    if is_url(path):
        if _gfile().exists(os.fspath(path)):
            _gfile().rmtree(os.fspath(path))
    else:
        shutil.rmtree(path, ignore_errors=True)


def rename(src: os.PathLike | str, dst: os.PathLike | str) -> None:
    """Moves `src` onto `dst`, replacing a file there (atomic on local file systems)."""
    if is_url(src) or is_url(dst):
        _gfile().rename(os.fspath(src), os.fspath(dst), overwrite=True)
    else:
        os.replace(src, dst)


def open_file(path: os.PathLike | str, mode: str = "r") -> IO:
    """`open` for local paths, `tf.io.gfile.GFile` for URLs (text modes read/write UTF-8)."""
    if is_url(path):
        return _gfile().GFile(os.fspath(path), mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")


def read_bytes(path: os.PathLike | str) -> bytes:
    """The bytes of the file `path`."""
    with open_file(path, "rb") as f:
        return f.read()


def copy(src: os.PathLike | str, dst: os.PathLike | str) -> None:
    """Copies the file `src` onto `dst` (either may be a URL), replacing a file there."""
    if is_url(src) or is_url(dst):
        _gfile().copy(os.fspath(src), os.fspath(dst), overwrite=True)
    else:
        shutil.copyfile(src, dst)


def copy_tree(src: os.PathLike | str, dst: os.PathLike | str) -> None:
    """Copies the folder `src` to `dst` (either may be a URL); `dst` must not exist."""
    makedirs(dst)
    for name in listdir(src):
        source, target = join(src, name), join(dst, name)
        if isdir(source):
            copy_tree(source, target)
        else:
            copy(source, target)


@contextlib.contextmanager
def local_copy(path: os.PathLike | str) -> Iterator[str]:
    """Yields a local path holding the file `path`: `path` itself, or for a URL a temporary
    download (same base name, so a reader that infers the format from the suffix still can),
    removed when the block ends. For readers that need a real local file (h5py, zip readers)."""
    path = os.fspath(path)
    if not is_url(path):
        yield path
        return
    folder = tempfile.mkdtemp(prefix=".stage-")
    try:
        local = os.path.join(folder, os.path.basename(path.rstrip("/")))
        copy(path, local)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_name(path: str) -> str:
    folder, name = os.path.split(path.rstrip("/"))
    return join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str, local: bool = False) -> Iterator[str]:
    """Yields a temporary file path for `path`; renames it onto `path` when the block succeeds.

    Args:
        path: the file to write (local path or URL). Its folder is created.
        local: the writer needs a local file (h5py, zip writers): for a URL the yielded path is
            a local temporary file, uploaded when the block ends.

    On an exception the temporary file is removed and the exception propagates; `path` is
    untouched.
    """
    path = os.fspath(path)
    makedirs(os.path.dirname(path) or ".")
    staged = None
    if local and is_url(path):
        fd, staged = tempfile.mkstemp(prefix=".stage-", suffix="-" + os.path.basename(path))
        os.close(fd)
    tmp = _temporary_name(path)
    try:
        yield staged or tmp
        if staged:
            copy(staged, tmp)
        rename(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    finally:
        if staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(staged)


@contextlib.contextmanager
def atomic_dir(path: os.PathLike | str, local: bool = False) -> Iterator[str]:
    """Yields a temporary folder for the folder `path`; renamed onto `path` on success.

    `path` must be absent or an empty folder (which is replaced). `local` as in `atomic_path`.
    On an exception the temporary folder is removed and `path` is untouched.
    """
    path = os.fspath(path).rstrip("/")
    makedirs(os.path.dirname(path) or ".")
    staged = tempfile.mkdtemp(prefix=".stage-") if local and is_url(path) else None
    tmp = _temporary_name(path)
    try:
        if staged is None:
            makedirs(tmp)
        yield staged or tmp
        if staged:
            copy_tree(staged, tmp)
        if isdir(path):
            if listdir(path):
                raise FileExistsError(f"{path} already exists and is not empty")
            rmtree(path)
        _rename_dir(tmp, path)
    except BaseException:
        rmtree(tmp)
        raise
    finally:
        if staged:
            shutil.rmtree(staged, ignore_errors=True)


def _rename_dir(src: str, dst: str) -> None:
    if is_url(src):
        # TensorFlow's file systems rename files, not folders (object stores and ram:// hold
        # no folders, only names with slashes): copy, then delete.
        copy_tree(src, dst)
        _gfile().rmtree(src)
    else:
        os.replace(src, dst)


def jsonable(value):
    """numpy → Python; NaN/inf → None so that the output is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_text(path: os.PathLike | str, text: str) -> str:
    """Writes `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp, open_file(tmp, "w") as f:
        f.write(text)
    return os.fspath(path)


def write_json(path: os.PathLike | str, payload: Mapping) -> Path | str:
    """Writes `payload` as strict, indented, key-sorted JSON, atomically; returns the path."""
    text = json.dumps(jsonable(payload), indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_text(path, text)
    return os.fspath(path) if is_url(path) else Path(path)


def read_json(path: os.PathLike | str, what: str = "JSON file") -> dict:
    """Reads a JSON object; `ValueError`/`FileNotFoundError` naming the file when it is not one."""
    if not exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: {what} not found")
    try:
        with open_file(path, "r") as f:
            payload = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not a valid {what} ({e})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: {what} must hold a JSON object, got {type(payload).__name__}")
    return payload
