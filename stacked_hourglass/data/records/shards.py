"""Sharded, atomic, deterministic TFRecord writing: `write_split` and its manifest.

`write_split` turns a source's items (`data.sources.source_items`) into
`SPLIT-00000-of-000NN.tfrecord` shards plus a `SPLIT.manifest.json` (the names and the `Manifest`
are `data.records.split`'s, which readers open the split with). `output_dir` may be a URL
(`gs://`, `ram://`): every file goes through `utils.files` and `tf.io`.

Order. The items are written in one of two orders (`ORDERS`), recorded in the manifest's `order`:

  * `source`: item i (0-based, counting skipped items too) is at position i, so reading the shards
    in name order gives the records in the source's row order, as evaluation needs (predictions
    are written in record order);
  * `shuffled`: the items are put in a seeded random order first (`shuffled_order`: a uniform
    permutation that depends only on the number of items and the seed, the same on every
    machine and numpy/Python version). A training reader that interleaves a few shards through
    a bounded shuffle buffer then sees a uniform mix of the dataset (FLIC's training set, sorted
    by movie, otherwise gives batches of consecutive frames of a handful of movies).
    `source/index` and `source/person` still name each record's source row.

Either way the record at position p goes to shard `p * num_shards // num_items`: contiguous
blocks of the written order, whatever `num_workers` is.

A split with nothing written is an error (`EmptySplitError`): an annotation file without people,
or one where every person was skipped (e.g. a wrong images folder), writes no file at all.

Atomicity: every shard and the manifest are written under a hidden temporary name
(`.NAME.PID.tmp`, which no documented glob such as `valid-*` matches) and renamed to their final
names only when all of them are complete; a run killed midway leaves no file under a final name
and does not touch the outputs of an earlier run. The temporaries a killed run leaves behind are
removed by the next run of the same split into the same folder. On object stores (`gs://`) a
rename is a copy and a delete (`utils.files.rename`): each file still appears whole, the manifest
last, so a reader that finds the manifest finds every shard it lists.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import math
import os
import pathlib
import re
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import tensorflow as tf

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.data.records.items import prepare_record
from stacked_hourglass.data.records.split import (
    SPLIT_NAME,
    Manifest,
    ShardEntry,
    is_shard_name,
    manifest_name,
    shard_name,
    split_of,
    summarize_skips,
)
from stacked_hourglass.data.sources.source_items import Item, Skipped
from stacked_hourglass.utils import files
from stacked_hourglass.utils.digest import sha256_file

# Default number of records per shard when `num_shards` is not given (~100-200 MB for MPII).
DEFAULT_RECORDS_PER_SHARD = 1024

# Record orders of `write_split` (see the module docstring).
SOURCE_ORDER = "source"
SHUFFLED_ORDER = "shuffled"
ORDERS = (SHUFFLED_ORDER, SOURCE_ORDER)
# How `shuffled_order` ranks the items, as recorded in the manifest.
SHUFFLE_METHOD = "ascending sha256(b'stacked_hourglass.shuffle' + int64le(seed) + int64le(i))"

# A temporary's name: `.NAME.PID.tmp`, or `NAME.tmpPID` from older versions.
_TEMPORARY_NAMES = (
    re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.tmp"),
    re.compile(r"(?P<name>.+)\.tmp(?P<pid>\d+)"),
)


class NothingWrittenError(RuntimeError):
    """`write_split` refused to publish its output (nothing under a final name was written)."""


class StrictError(NothingWrittenError):
    """Raised by `write_split(strict=True)` when any person was skipped."""


class EmptySplitError(NothingWrittenError):
    """Raised by `write_split` when no record would be written (no people, or all skipped)."""


def temporary_path(path: str, pid: int | None = None) -> str:
    """The hidden name `path` (local or URL) is written under until it is complete:
    `.NAME.PID.tmp`.

    The leading "." keeps globs like `valid-*` or `*.json` from matching it; the pid keeps two
    concurrent runs from writing into each other's files and tells later runs whose it is.
    (`utils.files.atomic_path` publishes one file; a split is published as a set, shards first
    and the manifest last, once all are complete.)
    """
    folder, name = os.path.split(os.fspath(path))
    return files.join(folder, f".{name}.{os.getpid() if pid is None else pid}.tmp")


def shuffled_order(num_items: int, seed: int = 0) -> list[int]:
    """The seeded random order of `num_items` items: element p is the source position of the item
    written at position p.

    Item i gets the key sha256(b"stacked_hourglass.shuffle" + seed + i), both as 8-byte
    little-endian signed integers, and the items are sorted by key. The keys are independent and
    uniform, so this is a uniform random permutation; unlike numpy's or Python's shufflers it is
    fixed by this definition, not by a library version.

    Raises:
        ValueError: when `seed` is not an integer in [0, 2**63).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"shuffle seed must be an integer in [0, 2**63), got {seed!r}")
    prefix = b"stacked_hourglass.shuffle" + struct.pack("<q", seed)
    keys = [hashlib.sha256(prefix + struct.pack("<q", i)).digest() for i in range(num_items)]
    return sorted(range(num_items), key=keys.__getitem__)


def permutation_sha256(order: Sequence[int]) -> str:
    """Hex sha256 of a written order (source positions as 8-byte little-endian integers)."""
    return hashlib.sha256(b"".join(struct.pack("<q", int(i)) for i in order)).hexdigest()


def default_num_shards(num_items: int) -> int:
    """About `DEFAULT_RECORDS_PER_SHARD` records per shard, at least one shard."""
    return max(1, math.ceil(num_items / DEFAULT_RECORDS_PER_SHARD))


class Progress:
    """A minimal progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label = max(total, 1), label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw, self.last_decile, self.last_done = 0.0, -1, -1

    def update(self, done: int, force: bool = False):
        """Redraws the bar; `force` for the final state (ends the line on a terminal)."""
        now = time.monotonic()
        fraction = min(done / self.total, 1.0)
        rate = done / max(now - self.start, 1e-9)
        if self.tty:
            if not force and now - self.last_draw < 0.2:
                return
            bar = "#" * int(30 * fraction) + "." * (30 - int(30 * fraction))
            end = "\n" if force else ""
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {rate:.0f} rec/s{end}")
        else:
            decile = int(10 * fraction)
            if done == self.last_done or (decile == self.last_decile and not force):
                return
            self.last_decile = decile
            self.stream.write(
                f"{self.label}: {done}/{self.total} ({100 * fraction:.0f}%) {rate:.0f} rec/s\n"
            )
        self.stream.flush()
        self.last_draw, self.last_done = now, done


@dataclasses.dataclass
class SplitResult:
    """What `write_split` did: final paths, counts, the manifest it wrote, what it cleaned up."""

    shard_paths: list[pathlib.Path | str]  # `pathlib.Path`s, or URL strings
    manifest_path: pathlib.Path | str
    manifest: Manifest
    removed_stale: list[pathlib.Path | str]
    seconds: float = 0.0  # wall time of the conversion (kept out of the manifest: determinism)
    removed_temporaries: list[pathlib.Path | str] = dataclasses.field(default_factory=list)

    @property
    def num_records(self) -> int:
        return self.manifest.num_records

    @property
    def skipped(self) -> list[dict]:
        return self.manifest.skipped


def _path(path: str) -> pathlib.Path | str:
    """A `pathlib.Path` for a local path; a URL as it is (pathlib would fold its "//")."""
    return path if files.is_url(path) else pathlib.Path(path)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own name: left by an earlier process with this pid; we rewrite it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def remove_orphaned_temporaries(
    output_dir: os.PathLike | str, split: str
) -> list[pathlib.Path | str]:
    """Removes the temporaries of `split` that killed runs left in `output_dir`; returns them.

    Temporaries of a process that is still running (a concurrent run on this machine) are kept.
    Also removes the `NAME.tmpPID` temporaries of older versions, which `SPLIT-*` globs match.
    """
    output_dir = os.fspath(output_dir)
    removed = []
    if not files.isdir(output_dir):
        return removed
    for name in files.listdir(output_dir):
        match = next((m for m in (p.fullmatch(name) for p in _TEMPORARY_NAMES) if m), None)
        path = files.join(output_dir, name)
        if not match or split_of(match["name"]) != split or files.isdir(path):
            continue
        if not _pid_alive(int(match["pid"])):
            files.remove(path)
            removed.append(_path(path))
    return removed


def _ordered_map(fn: Callable, items: Iterable, num_workers: int) -> Iterable:
    """`map(fn, items)` in order, on a thread pool with a bounded look-ahead window.

    Threads suffice: the work is file reads, TF ops and protobuf serialisation, which release the
    GIL for most of their time. The window bounds memory (each result holds an image).
    """
    if num_workers <= 1:
        yield from map(fn, items)
        return
    window = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 4 * num_workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


def _make_output_dir(output_dir: str) -> list[str]:
    """Creates `output_dir`; returns the folders created, innermost first (to undo on failure)."""
    if files.exists(output_dir) and not files.isdir(output_dir):
        raise NotADirectoryError(f"output folder {output_dir} is a file, not a folder")
    created, folder = [], output_dir.rstrip("/")
    while folder and not files.exists(folder):
        created.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder or (files.is_url(folder) and not files.is_url(parent + "/")):
            break
        folder = parent
    try:
        files.makedirs(output_dir)
    except OSError as e:
        raise type(e)(f"cannot create output folder {output_dir}: {e.strerror or e}") from None
    return created


def _count_error(count: int, num_items: int) -> ValueError:
    if count > num_items:
        return ValueError(f"items yielded more than num_items={num_items} items")
    # The shard of each item was fixed by num_items: fewer items would leave shards uneven.
    return ValueError(f"items yielded {count} items, fewer than num_items={num_items}")


def _in_order(
    items: Iterable[Item], num_items: int, order: str, seed: int
) -> tuple[Iterable[Item], list[int] | None]:
    """(the items in writing order, the source position of each written item or None).

    Shuffling needs every item at hand: the items are listed (cheap for the pending examples of
    MPII/FLIC, whose images are read later; a generator of complete examples is held in memory).
    """
    if order == SOURCE_ORDER:
        return items, None
    items = list(items)
    if len(items) != num_items:
        raise _count_error(len(items), num_items)
    positions = shuffled_order(num_items, seed)
    return [items[i] for i in positions], positions


def _write_records(
    records: Iterable[bytes | Skipped],
    writers: Sequence[tf.io.TFRecordWriter],
    num_items: int,
    progress: Progress | None,
) -> tuple[list[int], list[tuple[int, Skipped]]]:
    """Writes the record at position i to shard `i * num_shards // num_items`.

    Returns:
        (records per shard, [(position, skip)] of the skipped items).
    """
    counts, skipped, done = [0] * len(writers), [], 0
    for i, record in enumerate(records):
        if i >= num_items:
            raise _count_error(i + 1, num_items)
        done = i + 1
        if isinstance(record, Skipped):
            skipped.append((i, record))
        else:
            shard = i * len(writers) // num_items
            writers[shard].write(record)
            counts[shard] += 1
        if progress:
            progress.update(done)
    if progress:
        progress.update(done, force=True)
    if done != num_items:
        raise _count_error(done, num_items)
    return counts, skipped


def _check_something_written(counts: Sequence[int], skipped: Sequence[Skipped], strict: bool):
    """Raises `StrictError` / `EmptySplitError` when the output must not be published."""
    if sum(counts) and not (strict and skipped):
        return
    if not skipped:
        raise EmptySplitError("no records: the source yielded no people")
    summary = ", ".join(f"{k}: {v}" for k, v in summarize_skips(skipped).items())
    first = skipped[0]
    error = StrictError if strict else EmptySplitError
    raise error(
        f"{'--strict: ' if strict else 'no records: '}{len(skipped)} person(s) skipped "
        f"({summary}); first: {first.filename} index {first.index} person "
        f"{first.person}: {first.detail}"
    )


def _order_entry(order: str, seed: int, positions: Sequence[int] | None) -> dict:
    """The manifest's `order`: how the records were ordered (see the module docstring)."""
    if positions is None:
        return {"kind": SOURCE_ORDER}
    return {
        "kind": SHUFFLED_ORDER,
        "seed": seed,
        "method": SHUFFLE_METHOD,
        "permutation_sha256": permutation_sha256(positions),
    }


def _manifest(
    dataset, split, final, temp, counts, sources, options, skipped, order, joint_set
) -> Manifest:
    """The manifest of the shards written under the temporary names `temp`."""
    return Manifest(
        dataset=dataset,
        split=split,
        joint_names=list(joint_set.names),
        joint_set=joint_set.to_dict(),
        shards=[
            ShardEntry(os.path.basename(p), n, files.size(t), sha256_file(t, files.open_file))
            for p, t, n in zip(final, temp, counts, strict=True)
        ],
        package_version=stacked_hourglass.__version__,
        order=order,
        sources=[
            {"path": str(s), "sha256": sha256_file(s, files.open_file)}
            for s in sources
            if s is not None
        ],
        options=dict(sorted((options or {}).items())),
        skipped=[s.as_dict() for s in skipped],
    )


def _remove_stale(output_dir: str, split: str, final: Sequence[str]) -> list[pathlib.Path | str]:
    """Removes shards of `split` with another shard count (a superseded run's, which a `SPLIT-*`
    glob would pick up next to the new ones)."""
    keep = {os.path.basename(p) for p in final}
    stale = [
        files.join(output_dir, name)
        for name in files.listdir(output_dir)
        if is_shard_name(name) and split_of(name) == split and name not in keep
    ]
    for path in stale:
        files.remove(path)
    return [_path(p) for p in stale]


def _discard(temporaries: Sequence[str], created: Sequence[str]) -> None:
    """Undoes a failed run: removes its temporaries and the folders it made."""
    for t in temporaries:
        files.remove(t)
    for d in created:  # innermost first; leave no trace of a failed run
        if files.isdir(d) and files.listdir(d):
            break
        files.rmtree(d)


def _check_arguments(split, num_items, dataset, num_shards, order, shuffle_seed) -> int:
    """Fails before anything is written; returns the number of shards."""
    if not re.fullmatch(SPLIT_NAME, split):
        raise ValueError(f"split must be a simple name, got {split!r}")
    if num_items < 1:
        raise EmptySplitError(f"no records: the {dataset} source has no people for split {split}")
    num_shards = num_shards or default_num_shards(num_items)
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == SHUFFLED_ORDER:
        shuffled_order(0, shuffle_seed)  # a bad seed fails before anything is written
    return num_shards


def _write_shards(items, num_items, temp, order, seed, num_workers, verify_images, progress):
    """Writes the records to the shard temporaries `temp`.

    Returns:
        (records per shard, the skipped items in source order, the manifest's `order`).
    """
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(tf.io.TFRecordWriter(t)) for t in temp]
        items, positions = _in_order(items, num_items, order, seed)
        records = _ordered_map(lambda item: prepare_record(item, verify_images), items, num_workers)
        counts, skipped = _write_records(records, writers, num_items, progress)
    if positions is not None:  # list the skips in source order, as in a source-order run
        skipped = sorted((positions[i], s) for i, s in skipped)
    return counts, [s for _, s in skipped], _order_entry(order, seed, positions)


def _publish(temporaries: Sequence[str], finals: Sequence[str]) -> None:
    """Renames every temporary onto its final name, in order (the manifest last)."""
    for t, p in zip(temporaries, finals, strict=True):
        files.rename(t, p)


def write_split(
    items: Iterable[Item],
    num_items: int,
    output_dir: os.PathLike | str,
    split: str,
    dataset: str,
    num_shards: int | None = None,
    num_workers: int = 1,
    sources: Sequence[os.PathLike | str] = (),
    options: dict | None = None,
    strict: bool = False,
    verify_images: bool = False,
    show_progress: bool = True,
    order: str = SOURCE_ORDER,
    shuffle_seed: int = 0,
    joint_set: joints.JointSet | None = None,
) -> SplitResult:
    """Writes items to `SPLIT-XXXXX-of-NNNNN.tfrecord` shards and `SPLIT.manifest.json`.

    Args:
        items: the persons, in source order (see `data.sources.source_items` for the types).
        num_items: how many items `items` yields (fixes the shard of each item up front).
        output_dir: a local folder or a URL (`gs://`, `ram://`); created if missing.
        split: "train", "valid" or "test"; the shard/manifest name prefix.
        dataset: the records' `source/dataset` ("mpii", "flic", "synthetic", "coco").
        num_shards: number of shards; None → about `DEFAULT_RECORDS_PER_SHARD` records per shard.
        num_workers: threads reading images and serialising records; output does not depend on it.
        sources: annotation/split files whose sha256 goes into the manifest.
        options: conversion options to record in the manifest (must not depend on num_workers).
        strict: raise `StrictError` (and write nothing) if any person is skipped.
        verify_images: fully decode every image (see `items.load_example`).
        show_progress: draw a progress bar on stderr.
        order: `SOURCE_ORDER` (write in source order) or `SHUFFLED_ORDER` (write in
            `shuffled_order(num_items, shuffle_seed)`); see the module docstring.
        shuffle_seed: the seed of the shuffled order (not used in source order).
        joint_set: the records' joints, recorded in the manifest (`Manifest.joint_set`, its
            `to_dict()`, and `joint_names`); None: the built-in set of `dataset`.

    Returns:
        A `SplitResult` (its `manifest` a `split.Manifest`).

    Raises:
        EmptySplitError: when there is nothing to write (no items, or every one was skipped).
        StrictError: with `strict` when anything was skipped.
        NotADirectoryError / OSError: when `output_dir` is a file or cannot be created.
        ValueError: bad split/num_shards/order/shuffle_seed, or `items` yields another number
            than `num_items`.
        Any exception from `items`: temporary files are removed, no final name is created.
    """
    num_shards = _check_arguments(split, num_items, dataset, num_shards, order, shuffle_seed)
    joint_set = joint_set or joints.get_joint_set(dataset)  # unknown: fail before writing
    output_dir = os.fspath(output_dir)
    created = _make_output_dir(output_dir)
    orphans = remove_orphaned_temporaries(output_dir, split)
    final = [files.join(output_dir, shard_name(split, s, num_shards)) for s in range(num_shards)]
    manifest_path = files.join(output_dir, manifest_name(split))
    temp = [temporary_path(p) for p in [*final, manifest_path]]
    start = time.monotonic()
    progress = Progress(num_items, f"{dataset}/{split}") if show_progress else None
    try:
        counts, skipped, order_entry = _write_shards(
            items, num_items, temp[:-1], order, shuffle_seed, num_workers, verify_images, progress
        )
        _check_something_written(counts, skipped, strict)
        manifest = _manifest(
            dataset, split, final, temp[:-1], counts, sources, options, skipped, order_entry,
            joint_set,
        )  # fmt: skip
        with files.open_file(temp[-1], "w") as f:
            f.write(manifest.to_json())
        _publish(temp, [*final, manifest_path])
    except BaseException:
        _discard(temp, created)
        raise
    stale = _remove_stale(output_dir, split, final)
    return SplitResult(
        [_path(p) for p in final], _path(manifest_path), manifest, stale,
        time.monotonic() - start, removed_temporaries=orphans,
    )  # fmt: skip


def format_summary(result: SplitResult, max_lines: int = 5) -> str:
    """A few lines for stdout: what was written and what was skipped, by reason."""
    m = result.manifest
    total_bytes = sum(s.bytes for s in m.shards)
    folder = os.path.dirname(os.fspath(result.shard_paths[0]))
    lines = [
        f"Wrote {m.num_records} {m.dataset}/{m.split} records "
        f"({total_bytes / 1e6:.1f} MB) to {len(result.shard_paths)} shard(s): "
        f"{folder}/{m.split}-*-of-{m.num_shards:05d}.tfrecord",
        f"Manifest: {result.manifest_path}",
    ]
    order = m.order or {}
    if order.get("kind") == SHUFFLED_ORDER:
        lines.append(
            f"Records in shuffled order (seed {order['seed']}); source/index and source/person "
            "give each record's source row."
        )
    if result.seconds > 0 and m.num_records:
        lines.append(
            f"Took {result.seconds:.1f} s: {m.num_records / result.seconds:.0f} records/s, "
            f"{total_bytes / 1e6 / result.seconds:.1f} MB/s, "
            f"{total_bytes / m.num_records / 1e3:.1f} kB/record"
        )
    if m.skipped:
        by_reason = ", ".join(f"{k}: {v}" for k, v in m.skipped_by_reason.items())
        lines.append(f"Skipped {len(m.skipped)} person(s): {by_reason}")
        for s in m.skipped[:max_lines]:
            lines.append(
                f"  {s['filename']} (index {s['index']}, person {s['person']}): "
                f"{s['reason']}: {s['detail']}"
            )
        if len(m.skipped) > max_lines:
            lines.append(f"  ... (all listed in {os.path.basename(result.manifest_path)})")
    else:
        lines.append("Skipped nobody.")
    if result.removed_stale:
        lines.append(f"Removed {len(result.removed_stale)} stale shard(s) of an earlier run.")
    if result.removed_temporaries:
        lines.append(
            f"Removed {len(result.removed_temporaries)} orphaned temporary file(s) of an earlier "
            "interrupted run."
        )
    return "\n".join(lines)
