"""Content hashes of files, for manifests and provenance records.

Pure Python (no TensorFlow), so the numpy-only scoring modules can use it too; callers that read
through `tf.io.gfile` pass its `GFile` as `opener`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import IO


def sha256_file(
    path: os.PathLike | str,
    opener: Callable[[str, str], IO[bytes]] = open,
    chunk: int = 1 << 20,
) -> str:
    """Hex sha256 of a file's bytes, read in `chunk`-byte blocks.

    Args:
        path: the file.
        opener: `open`-like callable (`tf.io.gfile.GFile` for remote file systems).
        chunk: block size in bytes.
    """
    digest = hashlib.sha256()
    with opener(os.fspath(path), "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
