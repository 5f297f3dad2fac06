"""Checking TFRecord shards before anything trains or evaluates on them.

The readers in `data.pipeline` trust nothing they read either (see `make_train_dataset`), but an
error raised inside `tf.data` can only say what it saw, not always where; this module reads
every shard once, in Python, record by record, and names the shard and the record index of
every problem:

  * a shard of 0 bytes (unless the split's manifest says the writer left it empty), or bytes
    that hold no record: a failed or truncated copy;
  * a record that cannot be read (a flipped byte, a truncated shard, garbage appended: TF's
    CRC checks catch them; the rest of such a shard cannot be read) or bytes after the last
    record;
  * a record that is not a person record of `num_joints` joints, or holds unusable values or an
    unusable image: `features.record_problem` (the same check the training pipeline applies),
    plus, with `decode_images`, a full decode (a truncated JPEG's header still reads fine);
  * a split with no record at all.

    report = Split.open("tfrecords/mpii/valid-*.tfrecord").check(
        16, need_normalizer=True, max_pixels=config.data.max_pixels)
    raise_for_problems(report)   # ValueError, one line: first bad shard + record, and the count

`records.split.Split` runs these checks (`check` reads every record; `check_start` one record
per shard); `inspect_records` prints the problems of `check_records`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Sequence

import tensorflow as tf

from stacked_hourglass.data import features, images
from stacked_hourglass.utils.errors import one_line

# TFRecord framing around each record's bytes: length (8), length CRC (4), data CRC (4).
RECORD_OVERHEAD = 16


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem: the shard, the 0-based record index (where reading stopped for a shard that
    cannot be read further) and a one-line reason."""

    shard: str
    record: int
    reason: str

    def __str__(self) -> str:
        return f"{self.shard}: record {self.record}: {self.reason}"


@dataclasses.dataclass
class CheckReport:
    """What `check_records` found.

    Attributes:
        files: the shards checked, in order.
        records: {shard: records read} (good and bad; a shard's unreadable tail is not counted).
        problems: every problem, in file and record order.
        bad_records: how many of the records read are unusable.
        need_normalizer, max_pixels, decoded: the checks applied.
    """

    files: list[str]
    records: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    bad_records: int = 0
    need_normalizer: bool = False
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    decoded: bool = False

    @property
    def num_records(self) -> int:
        """Records read, good and bad."""
        return sum(self.records.values())

    @property
    def num_good(self) -> int:
        """Records a reader can use (what training sees with `on_bad_record=skip`)."""
        return self.num_records - self.bad_records

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_shards(self) -> list[str]:
        return list(dict.fromkeys(p.shard for p in self.problems))

    def format(self, limit: int = 20) -> str:
        """Lines for a person: a count, then the first `limit` problems."""
        if self.ok:
            return f"No problems in {self.num_records} record(s) of {len(self.files)} shard(s)."
        lines = [
            f"{len(self.problems)} problem(s) in {len(self.bad_shards)} of {len(self.files)} "
            f"shard(s) ({self.bad_records} of {self.num_records} record(s) unusable):"
        ]
        lines += [f"  {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def raise_for_problems(report: CheckReport) -> None:
    """`ValueError`, one line naming the first bad shard and record and the count, if any."""
    if report.ok:
        return
    first = report.problems[0]
    raise ValueError(
        f"{first} ({len(report.problems)} problem(s) in {len(report.bad_shards)} of "
        f"{len(report.files)} shard(s); python -m stacked_hourglass.inspect_records lists them)"
    )


# --- the check -------------------------------------------------------------------------------

# Why a 0-byte shard is a problem (unless its manifest says the writer left it empty: every
# person of its block was skipped).
EMPTY_SHARD = (
    "the file is empty (0 bytes): a failed or interrupted copy? (a reader would wait forever "
    "for its records)"
)


def file_size(path: str) -> int:
    """Size in bytes (local path or URL); `FileNotFoundError` naming the file when there is none."""
    try:
        return int(tf.io.gfile.stat(path).length)
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None


def tf_error_line(error: tf.errors.OpError) -> str:
    """The line of a TF error raised by a `tf.function` that says what went wrong.

    Such messages start "Graph execution error:", then "Detected at node X defined at (most
    recent call last):" and an indented Python traceback, then the op's message.
    """
    lines = [line for line in (error.message or "").splitlines() if line.strip()]
    for line in lines:
        if line[0] in " \t<" or line.startswith(("Graph execution error", "Detected at node")):
            continue
        return one_line(RuntimeError(line))
    return one_line(error)


@functools.lru_cache(maxsize=16)
def record_checker(num_joints: int, need_normalizer: bool, max_pixels: int, decode_images: bool):
    """`check(serialized)` → problem: `features.record_problem` ("" when usable) as a
    `tf.function` traced once per process and set of checks, callable eagerly and from other
    graphs (the input pipeline's per-record checks call it rather than trace it again).

    With `decode_images`, an image that fails to decode to its end is a problem too.
    """

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def check(serialized):
        problem = features.record_problem(
            serialized, num_joints, need_normalizer=need_normalizer, max_pixels=max_pixels
        )
        if decode_images:
            decoded = tf.cond(
                tf.equal(problem, ""),
                lambda: images.decode_check(
                    features.parse_example(serialized, num_joints)[features.IMAGE_ENCODED]
                ),
                lambda: tf.constant(0, tf.int64),
            )
            with tf.control_dependencies([decoded]):
                problem = tf.identity(problem)
        return problem

    return check


def _check_file(
    path: str, check, report: CheckReport, max_records: int | None, empty_ok: bool
) -> None:
    """Adds one shard's record count and problems to `report`."""

    def add(record: int, reason: str, bad_record: bool) -> None:
        report.problems.append(Problem(path, record, reason))
        report.bad_records += int(bad_record)

    size = file_size(path)
    report.records[path] = 0
    if size == 0:
        if not empty_ok:
            add(0, EMPTY_SHARD, False)
        return
    records = iter(tf.data.TFRecordDataset(path))
    index, consumed = 0, 0  # consumed: bytes of the records read, with their framing
    while max_records is None or index < max_records:
        try:
            serialized = next(records)
        except StopIteration:
            break
        except tf.errors.DataLossError as e:
            add(
                index,
                f"cannot be read ({one_line(e)}): the shard is corrupted or truncated; the "
                "rest of it is lost",
                False,
            )
            return
        consumed += RECORD_OVERHEAD + len(serialized.numpy())
        try:
            problem = check(serialized).numpy().decode("utf-8", "replace")
        except tf.errors.OpError as e:  # not an Example, a key of another type, a bad image
            problem = f"unreadable person record or image ({tf_error_line(e)})"
        except UnicodeDecodeError:
            # TF quotes the bytes it could not parse in its message; when they are not UTF-8,
            # building the Python error fails instead.
            problem = "unreadable person record (not a tf.train.Example)"
        if problem:
            add(index, problem, True)
        index += 1
        report.records[path] = index
    report.records[path] = index
    if max_records is not None and index >= max_records:
        return
    if index == 0:
        # TF reads a file shorter than one record header as an empty one, without complaint.
        add(0, f"holds no record in its {size} bytes (not a TFRecord file?)", False)
    elif consumed != size:
        add(index, f"{size - consumed} byte(s) after the last record (a damaged copy?)", False)


def check_records(
    files: Sequence[str],
    num_joints: int,
    *,
    need_normalizer: bool,
    max_pixels: int,
    decode_images: bool = False,
    max_records_per_file: int | None = None,
    empty_ok: Collection[str] = (),
) -> CheckReport:
    """Reads every record of `files`, in order, and lists what is wrong with each (module doc).

    Args:
        files: TFRecord shards (paths, not globs).
        num_joints: K of the records' joint set (`--dataset`).
        need_normalizer: require a positive `person/normalizer` (a split PCK is computed on).
        max_pixels: largest image allowed (height x width, from the header); <= 0: no limit.
        decode_images: also decode every image completely (catches a truncated JPEG, whose
            header reads fine; costs a few ms per image).
        max_records_per_file: read only the first records of each shard (a quick look; the
            checks of what lies beyond, trailing bytes included, are then skipped).
        empty_ok: shards that may be empty (0 bytes): those the split's manifest lists with no
            record (`records.split.Split.empty_ok`).

    Returns:
        A `CheckReport`; nothing is raised for bad records (`raise_for_problems` does that).

    Raises:
        FileNotFoundError: naming a file that does not exist.
    """
    report = CheckReport(
        list(files), need_normalizer=need_normalizer, max_pixels=max_pixels, decoded=decode_images
    )
    check = record_checker(
        int(num_joints), bool(need_normalizer), int(max_pixels), bool(decode_images)
    )
    for path in report.files:
        _check_file(path, check, report, max_records_per_file, path in empty_ok)
    if report.files and report.num_records == 0 and report.ok:
        report.problems.append(
            Problem(report.files[0], 0, f"no records in any of the {len(report.files)} shard(s)")
        )
    return report
