"""A split on disk: its shards, their names, their manifest, and the checks before reading it.

`records.shards.write_split` writes `SPLIT-XXXXX-of-NNNNN.tfrecord` shards and a
`SPLIT.manifest.json` (a `Manifest`) beside them; every reader opens them as a `Split`:

    train = Split.open(config.data.train_files)   # comma-separated globs, listed once
    train.check_start(config.data.joint_set)       # one record per shard, the manifest's joints
    steps = train.num_records // batch_size        # from the manifest; counted only without one

A manifest vouches for a shard when it lists the shard's name with the size the shard has on
disk: the shard then holds the records the writer wrote and checked, and its record count is the
manifest's. Shards no manifest vouches for (written by another tool, renamed, copied short) are
counted by reading them, and readers keep every check of their bytes (`pipeline.checked_records`).

Paths may be local or TensorFlow file-system URLs (`gs://`, `ram://`): listing, sizes and the
manifest go through `utils.files`, records through `tf.data`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import re
from collections.abc import Sequence

import tensorflow as tf

from stacked_hourglass import joints as joints_lib
from stacked_hourglass.data import features, images
from stacked_hourglass.data.records import validate
from stacked_hourglass.utils import files as files_lib
from stacked_hourglass.utils.errors import one_line

# The one shard-name pattern of the package: SPLIT-XXXXX-of-NNNNN.tfrecord, SPLIT a simple name.
SPLIT_NAME = r"[A-Za-z0-9_]+"
_SHARD_NAME = re.compile(
    rf"(?P<split>{SPLIT_NAME})-(?P<shard>\d{{5}})-of-(?P<count>\d{{5}})\.tfrecord"
)
_MANIFEST_NAME = re.compile(rf"(?P<split>{SPLIT_NAME})\.manifest\.json")

_KINDS = {list: "a list", int: "an integer", str: "a string"}
_HINT = "python -m stacked_hourglass.inspect_records lists every problem"


def shard_name(split: str, shard: int, num_shards: int) -> str:
    """`SPLIT-XXXXX-of-NNNNN.tfrecord`."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def manifest_name(split: str) -> str:
    """`SPLIT.manifest.json`."""
    return f"{split}.manifest.json"


def split_of(name: str) -> str | None:
    """The split a shard or manifest file name belongs to (None for any other name)."""
    match = _SHARD_NAME.fullmatch(name) or _MANIFEST_NAME.fullmatch(name)
    return match["split"] if match else None


def is_shard_name(name: str) -> bool:
    """Whether `name` is a shard's name (`shard_name`)."""
    return bool(_SHARD_NAME.fullmatch(name))


def summarize_skips(skipped: Sequence) -> dict[str, int]:
    """Reason → count, sorted by reason (of `source_items.Skipped`s or their manifest entries)."""
    counts = collections.Counter(s["reason"] if isinstance(s, dict) else s.reason for s in skipped)
    return dict(sorted(counts.items()))


@dataclasses.dataclass(frozen=True)
class ShardEntry:
    """A shard as the manifest lists it: its file name, records, bytes and sha256 (hex)."""

    file: str
    records: int
    bytes: int
    sha256: str = ""


@dataclasses.dataclass
class Manifest:
    """`SPLIT.manifest.json`: what `write_split` wrote, and from what.

    Attributes:
        dataset: "mpii", "flic" or "synthetic".
        split: the shards' name prefix.
        joint_names: the records' joints, in order (`joints.JointSet.names`).
        shards: one `ShardEntry` per shard, in shard order.
        package_version: the writer's `stacked_hourglass.__version__`.
        order: how the records were ordered (`records.shards`); None in old manifests.
        sources: [{"path", "sha256"}] of the annotation files read.
        options: the conversion options.
        skipped: [`source_items.Skipped.as_dict()`] of the persons not written, in source order.
        joint_set: the records' `joints.JointSet.to_dict()`; None in manifests written before
            joint sets travelled with the data (their joints are the built-in set of `dataset`).
    """

    dataset: str
    split: str
    joint_names: list[str]
    shards: list[ShardEntry]
    package_version: str = ""
    order: dict | None = None
    sources: list[dict] = dataclasses.field(default_factory=list)
    options: dict = dataclasses.field(default_factory=dict)
    skipped: list[dict] = dataclasses.field(default_factory=list)
    joint_set: dict | None = None

    def joints(self, where: str = "manifest") -> joints_lib.JointSet:
        """The records' `JointSet`: the recorded one, else the built-in set of `dataset` when
        its joint names are `joint_names`.

        Raises:
            ValueError: naming `where` when neither gives the records' joints.
        """
        if self.joint_set is not None:
            joint_set = joints_lib.JointSet.from_dict(self.joint_set, f"{where}: joint_set")
        else:
            try:
                joint_set = joints_lib.get_joint_set(self.dataset)
            except ValueError:
                raise ValueError(
                    f"{where}: no joint_set recorded and {self.dataset!r} is no built-in set"
                ) from None
        if list(joint_set.names) != list(self.joint_names):
            raise ValueError(
                f"{where}: joint_names {self.joint_names} are not the joints of joint set "
                f"{joint_set.name!r} {list(joint_set.names)}"
            )
        return joint_set

    @property
    def num_records(self) -> int:
        return sum(s.records for s in self.shards)

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return summarize_skips(self.skipped)

    def to_dict(self) -> dict:
        """The JSON object written to `SPLIT.manifest.json` (keys in this order)."""
        payload = {
            "dataset": self.dataset,
            "split": self.split,
            "package_version": self.package_version,
            "joint_names": list(self.joint_names),
            "num_records": self.num_records,
            "num_shards": self.num_shards,
            "order": self.order,
            "shards": [dataclasses.asdict(s) for s in self.shards],
            "sources": list(self.sources),
            "options": dict(sorted(self.options.items())),
            "num_skipped": len(self.skipped),
            "skipped_by_reason": self.skipped_by_reason,
            "skipped": list(self.skipped),
            "joint_set": self.joint_set,
        }
        if self.order is None:
            del payload["order"]
        if self.joint_set is None:
            del payload["joint_set"]
        return payload

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, payload: dict, where: str = "manifest") -> Manifest:
        """Parses a manifest's JSON object; `ValueError` naming `where` and the field if bad."""

        def field(key, kind, source=payload, at=""):
            value = source.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(
                    f"{where}: manifest field {at}{key!r} is missing or not "
                    f"{_KINDS[kind]} (got {one_line(repr(value), 60)})"
                )
            return value

        shards = []
        for i, entry in enumerate(field("shards", list)):
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: manifest field 'shards'[{i}] is not an object")
            at = f"shards[{i}]."
            shards.append(
                ShardEntry(
                    field("file", str, entry, at),
                    field("records", int, entry, at),
                    field("bytes", int, entry, at),
                    str(entry.get("sha256", "")),
                )
            )
        manifest = cls(
            dataset=field("dataset", str),
            split=field("split", str),
            joint_names=[str(n) for n in field("joint_names", list)],
            shards=shards,
            package_version=str(payload.get("package_version", "")),
            order=payload.get("order"),
            sources=list(payload.get("sources", [])),
            options=dict(payload.get("options", {})),
            skipped=list(payload.get("skipped", [])),
            joint_set=payload.get("joint_set"),
        )
        if manifest.joint_set is not None and not isinstance(manifest.joint_set, dict):
            raise ValueError(f"{where}: manifest field 'joint_set' is not an object")
        if payload.get("num_records", manifest.num_records) != manifest.num_records:
            raise ValueError(f"{where}: manifest num_records {payload['num_records']} is not the "
                             f"sum of its shards' records ({manifest.num_records})")  # fmt: skip
        return manifest

    @classmethod
    def read(cls, path: str) -> Manifest:
        """Reads `SPLIT.manifest.json` (a local path or URL)."""
        return cls.from_dict(files_lib.read_json(path, "split manifest"), path)


def _list(globs: str | Sequence[str]) -> list[str]:
    """Sorted files matching comma-separated glob patterns (or a list of them), each once."""
    patterns = globs.split(",") if isinstance(globs, str) else list(globs)
    found = []
    for pattern in (p.strip() for p in patterns):
        if pattern:
            found.extend(files_lib.glob(pattern))
    return sorted(set(found))


def _count_records(path: str) -> int:
    """Records in one shard (reads it); `ValueError` naming it when it cannot be read to its end."""
    try:
        count = tf.autograph.experimental.do_not_convert(lambda n, _: n + 1)
        return int(tf.data.TFRecordDataset(path).reduce(0, count))
    except tf.errors.OpError as e:
        raise ValueError(f"{path}: cannot be read ({one_line(e)})") from None


def _check_person(path: str, joint_set) -> None:
    """Raises a one-line `ValueError` when the first record of `path` is not a person record of
    `joint_set`'s joints: data of another dataset (or no TFRecords at all) fails at once."""
    try:
        for serialized in tf.data.TFRecordDataset(path).take(1):
            features.parse_example_numpy(serialized.numpy(), joint_set.num_joints)
    except tf.errors.OpError as e:
        raise ValueError(
            f"{path}: cannot read its first record as a person of {joint_set.num_joints} "
            f"joints ({joint_set.name}; see --dataset): {one_line(e)}"
        ) from None


@dataclasses.dataclass
class Split:
    """The shards of a split, listed once, with what their manifests vouch for.

    Attributes:
        files: the shards, sorted (local paths or URLs).
        sizes: their sizes in bytes.
        counts: records per shard as a manifest vouches for them (listed with this size), or
            None for a shard no manifest vouches for.
        manifests: {manifest path: `Manifest`} of the manifests that vouch for a shard.
        patterns: what the split was opened from (for messages).
    """

    files: list[str]
    sizes: list[int]
    counts: list[int | None]
    manifests: dict[str, Manifest]
    patterns: str = ""

    @classmethod
    def open(cls, globs: str | Sequence[str]) -> Split:
        """The shards matching comma-separated globs (`config.data.train_files`) or a list.

        Raises:
            FileNotFoundError: when no file matches.
            ValueError: naming a manifest beside the shards that cannot be parsed.
        """
        patterns = globs if isinstance(globs, str) else ",".join(globs)
        found = _list(globs)
        if not found:
            raise FileNotFoundError(f"No TFRecord files match {patterns!r}")
        return cls.from_files(found, patterns)

    @classmethod
    def from_files(cls, paths: Sequence[str], patterns: str = "") -> Split:
        """The split of these shard paths, in this order.

        Raises:
            FileNotFoundError: naming a shard that does not exist.
            ValueError: naming a manifest beside the shards that cannot be parsed.
        """
        paths = [os.fspath(p) for p in paths]
        sizes = [validate.file_size(p) for p in paths]
        read: dict[str, Manifest | None] = {}
        counts = [_vouched_count(p, s, read) for p, s in zip(paths, sizes, strict=True)]
        used = {_manifest_path(p) for p, c in zip(paths, counts, strict=True) if c is not None}
        manifests = {k: m for k, m in read.items() if k in used}
        return cls(paths, sizes, counts, manifests, patterns or ",".join(paths))

    @property
    def vouched(self) -> bool:
        """Whether a manifest vouches for every shard (its name and size)."""
        return all(c is not None for c in self.counts)

    @property
    def empty_ok(self) -> set[str]:
        """The shards a manifest says are empty (every person of their block was skipped)."""
        return {f for f, c in zip(self.files, self.counts, strict=True) if c == 0}

    @functools.cached_property
    def num_records(self) -> int:
        """Records in the split: the manifests' counts; a shard none vouches for is read once.

        Raises:
            ValueError: naming a shard that cannot be read to its end.
        """
        return sum(
            c if c is not None else _count_records(f)
            for f, c in zip(self.files, self.counts, strict=True)
        )

    def joints(self) -> joints_lib.JointSet | None:
        """The records' `JointSet` as their manifests record it; None without a manifest.

        Raises:
            ValueError: naming the manifests when they record different joint sets, or one
                that cannot be read.
        """
        found = [(path, m.joints(path)) for path, m in self.manifests.items()]
        for path, joint_set in found[1:]:
            if joint_set != found[0][1]:
                raise ValueError(
                    f"{self.patterns}: shards of different joint sets: {found[0][1].name!r} "
                    f"({found[0][0]}) and {joint_set.name!r} ({path})"
                )
        return found[0][1] if found else None

    def check_start(
        self,
        joint_set,
        *,
        need_normalizer: bool = False,
        max_pixels: int = images.DEFAULT_MAX_PIXELS,
        on_bad_record: str = "fail",
    ) -> None:
        """The check before anything is built: reads one record per shard, no more.

        Empty shards (unless a manifest says so), the first record of the first shard as a
        person of `joint_set`'s joints ("fail" only), the manifests' joints against
        `joint_set`'s, and the first record of every shard (`validate.check_records`): with
        "fail" any problem raises; with "skip" only no shard starting with a usable record does
        (training would wait forever).

        Raises:
            ValueError: one line naming the shard (and record) or the manifest.
        """
        for path, size in zip(self.files, self.sizes, strict=True):
            if size == 0 and path not in self.empty_ok:
                raise ValueError(f"{path}: {validate.EMPTY_SHARD}")
        if on_bad_record == "fail":
            _check_person(self.files[0], joint_set)
        self._check_joint_names(joint_set)
        report = validate.check_records(
            self.files,
            joint_set.num_joints,
            need_normalizer=need_normalizer,
            max_pixels=max_pixels,
            max_records_per_file=1,
            empty_ok=self.empty_ok,
        )
        _raise_for_first_records(report, on_bad_record, self.patterns)

    def _check_joint_names(self, joint_set) -> None:
        for path, manifest in self.manifests.items():
            if list(manifest.joint_names) != list(joint_set.names):
                raise ValueError(
                    f"{path}: the split holds {manifest.dataset} records of "
                    f"{len(manifest.joint_names)} joints ({', '.join(manifest.joint_names)}), not "
                    f"{joint_set.name}'s {joint_set.num_joints} (see --dataset)"
                )

    def check(
        self,
        num_joints: int,
        *,
        need_normalizer: bool,
        max_pixels: int,
        decode_images: bool = False,
    ) -> validate.CheckReport:
        """Reads every record and lists what is wrong (`validate.check_records`): the full check
        (`need_normalizer=True` for a split PCK is computed on).

        Returns:
            The `validate.CheckReport` (`validate.raise_for_problems(report)` turns it into one
            error line; `report.num_good` is the number of usable records).
        """
        return validate.check_records(
            self.files,
            num_joints,
            need_normalizer=need_normalizer,
            max_pixels=max_pixels,
            decode_images=decode_images,
            empty_ok=self.empty_ok,
        )


def _manifest_path(path: str) -> str | None:
    """`SPLIT.manifest.json` beside the shard `path` (None when `path` is no shard name)."""
    name = os.path.basename(path)
    if not is_shard_name(name):
        return None
    return files_lib.join(os.path.dirname(path), manifest_name(split_of(name)))


def _vouched_count(path: str, size: int, read: dict[str, Manifest | None]) -> int | None:
    """The records the manifest beside `path` vouches for (listed with `size` bytes), or None;
    `read` caches the manifests read (None: there is none)."""
    manifest_path = _manifest_path(path)
    if manifest_path is None:
        return None
    if manifest_path not in read:
        exists = files_lib.exists(manifest_path)
        read[manifest_path] = Manifest.read(manifest_path) if exists else None
    manifest = read[manifest_path]
    name = os.path.basename(path)
    entries = [e for e in manifest.shards if e.file == name] if manifest else []
    return entries[0].records if len(entries) == 1 and entries[0].bytes == size else None


def _raise_for_first_records(report: validate.CheckReport, on_bad_record: str, patterns: str):
    if report.ok:
        return
    first = report.problems[0]
    if on_bad_record == "fail":
        raise ValueError(f"{first} (on_bad_record=fail; {_HINT})")
    bad = {p.shard for p in report.problems if p.record == 0}
    if all(report.records[f] == 0 or f in bad for f in report.files):
        raise ValueError(
            f"no shard of {patterns!r} starts with a usable record, training would wait "
            f"forever: {first} ({_HINT})"
        )
