"""MPII split files: which people form the validation split (see `mpii`'s docstring, Splits)."""

from __future__ import annotations

import dataclasses
import pathlib

from stacked_hourglass.data.sources import _loaders
from stacked_hourglass.data.sources.mpii_common import RAW_H5_MARKERS, image_names


@dataclasses.dataclass(frozen=True)
class SplitEntry:
    """One person of a split file: image name, 0-based annolist index, 0-based annorect index."""

    imgname: str
    index: int
    person: int


def read_split_file(path: pathlib.Path | str) -> list[SplitEntry]:
    """Reads a pose-hg `.h5` (imgname/index/person) or a text file of `imgname index person`.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file and line on a malformed line.
    """
    path = _loaders.require_file(path, "split file")
    if path.suffix == ".h5":
        with _loaders.open_h5(path, "pose-hg split file") as f:
            if any(k in f for k in RAW_H5_MARKERS):
                raise ValueError(
                    f"{path}: pose-hg's raw annot.h5 holds every person, it is no split file "
                    "(use pose-hg's valid.h5)"
                )
            names = image_names(_loaders.h5_array(f, "imgname"))
            index, person = _loaders.h5_array(f, "index"), _loaders.h5_array(f, "person")
        if not len(names) == len(index) == len(person):
            raise ValueError(f"{path}: imgname, index and person differ in length")
        return [SplitEntry(n, int(i), int(p)) for n, i, p in zip(names, index, person, strict=True)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: split file is neither a pose-hg .h5 nor UTF-8 text") from None
    entries = []
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 3:
                raise ValueError
            entries.append(SplitEntry(parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            raise ValueError(
                f"{path}:{line_number}: expected 'imgname index person', got {line!r}"
            ) from None
    return entries
