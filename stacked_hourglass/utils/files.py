"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the package writes for others to read (configs, summaries, manifests, predictions)
goes through `atomic_path`: the content is written to a hidden temporary file in the same
folder (same filesystem, so the rename is atomic) and renamed over the target only when
complete. Temporary names start with "." and end with ".tmp", so that no documented glob
(`train-*.tfrecord`, `*.json`) matches a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[str]:
    """Yields a temporary path next to `path`; renames it onto `path` when the block succeeds.

    The parent folder is created. On an exception the temporary file is removed and the
    exception propagates; `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def write_json(path: os.PathLike | str, payload: Mapping) -> Path:
    """Writes `payload` as strict, indented, key-sorted JSON, atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(jsonable(payload), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    return Path(path)


def read_json(path: os.PathLike | str, what: str = "JSON file") -> dict:
    """Reads a JSON object; `ValueError`/`FileNotFoundError` naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid {what} ({e})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: {what} must hold a JSON object, got {type(payload).__name__}")
    return payload
