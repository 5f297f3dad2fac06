"""One configuration tree for an experiment: model, data and training, each default written once.

    ExperimentConfig
      .model  ModelConfig   the network (what `StackedHourglass` is built from)
      .data   DataConfig    TFRecords, target heatmaps and augmentation
      .train  TrainConfig   optimisation, schedule, precision, distribution, bookkeeping

The training command line is generated from these fields (`define_flags`, `from_flags`): one flag
per field, named as the field, with the field's default and help text, so a default cannot
drift between a flag and the config. Fields that follow from others are not flags; they are
set once, by `ExperimentConfig.resolve()`:

    model.num_joints               = joints of data.joint_set

and the trainer sets `data.joint_set_spec` (`with_records_joint_set`): the joint set of
--joints or of the training records, recorded in config.json unless it is the built-in set of
data.dataset.
    model.intermediate_supervision = (train.supervise == "all")
    data.unlabelled                = "zero" or "ignore" for "auto" (`DataConfig.unlabelled_rule`)

`MODEL_DIR/config.json` is `to_dict()`; `from_dict()` reads it back, including the files
written before this module existed (a flat `model`/`data`/`train` payload with a few older key
names, listed in `_LEGACY_KEYS`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping

import numpy as np
from absl import flags

from stacked_hourglass import joints
from stacked_hourglass.utils import files

PRECISIONS = ("none", "float16", "bfloat16", "auto")
DISTRIBUTIONS = ("auto", "one_device", "mirrored", "multi_worker", "none")
GRAPH_OPTIMIZERS = ("auto", "full")
STEM_PADDINGS = ("symmetric", "same")
UNLABELLED = ("auto", "ignore", "zero")
SYNC_BATCH_NORM = ("auto", "always", "never")
# The paper's batch (Newell et al. 2016: 6 images on one GPU): BatchNorm statistics over at least
# this many images are the paper's; "auto" synchronises them only for smaller per-replica batches.
PAPER_BATCH_SIZE = 6
# Joint sets trained with the paper's recipe, an unlabelled joint's heatmap trained towards zero.
_ZERO_UNLABELLED_SETS = ("mpii", "flic", "synthetic")


def _field(default, help: str, *, flag: bool = True, choices=None, aliases=()):  # noqa: A002
    """A dataclass field with the metadata `define_flags` needs (help, choices, flag or not)."""
    metadata = {"help": help, "flag": flag, "choices": choices, "aliases": tuple(aliases)}
    if isinstance(default, list | tuple):
        return dataclasses.field(default=tuple(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _positive_ints(config, names):
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network's hyper-parameters (paper defaults: 8 stacks, 256 features, depth 4)."""

    num_stacks: int = _field(8, "Hourglass stacks N (paper: 8).")
    num_features: int = _field(256, "Channels F inside the hourglasses (paper: 256).")
    depth: int = _field(4, "Hourglass recursion depth (paper: 4; 64x64 -> 4x4).")
    num_modules: int = _field(
        1, "Residual modules at every residual place (pose-hg-train's nModules; paper: 1)."
    )
    input_size: int = _field(256, "Network input side S in pixels; heatmaps are S/4.")
    num_joints: int = _field(
        16, "Heatmap channels K (set from the joint set, see --joints).", flag=False
    )
    intermediate_supervision: bool = _field(
        True, "Every stack's heatmaps are an output (set from --supervise).", flag=False
    )
    sync_batch_norm: bool = _field(
        False, "BatchNorm over the global batch (set from --sync_batch_norm).", flag=False
    )
    stem_features: tuple[int, int, int] = _field(
        (64, 128, 128),
        "Channels of the stem's conv7x7, first and second residual (paper: 64, 128, 128; "
        "bearpaw/pytorch-pose: 64, 128, 256). The third residual outputs num_features.",
    )
    stem_padding: str = _field(
        "symmetric",
        "The 7x7/2 stem convolution pads 3 on every side as Torch does ('symmetric'); model "
        "directories written before this option used TF's 'same' (2 before, 3 after).",
        flag=False,
        choices=STEM_PADDINGS,
    )
    input_mean: tuple[float, float, float] = _field(
        (0.0, 0.0, 0.0),
        "Per-channel RGB mean subtracted from the [0, 1] input inside the model (imported "
        "bearpaw weights expect their dataset mean).",
        flag=False,
    )

    def __post_init__(self):
        _positive_ints(
            self, ("num_stacks", "num_features", "depth", "num_joints", "input_size", "num_modules")
        )
        if self.num_features % 2:
            raise ValueError(
                f"num_features must be even (the bottleneck halves it), got {self.num_features}"
            )
        stride = 4 * 2**self.depth
        if self.input_size % stride:
            raise ValueError(
                f"input_size must be divisible by 4 * 2**depth = {stride} so the hourglass "
                f"resolutions stay integral, got input_size={self.input_size}, depth={self.depth}"
            )
        object.__setattr__(self, "stem_features", tuple(int(c) for c in self.stem_features))
        object.__setattr__(self, "input_mean", tuple(float(m) for m in self.input_mean))
        if len(self.stem_features) != 3 or min(self.stem_features) < 2:
            raise ValueError(f"stem_features must be 3 channel counts, got {self.stem_features}")
        if len(self.input_mean) != 3:
            raise ValueError(f"input_mean must be 3 values (r, g, b), got {self.input_mean}")
        _one_of("stem_padding", self.stem_padding, STEM_PADDINGS)

    @property
    def heatmap_size(self) -> int:
        """Heatmap side H = S / 4 (the stem's stride-2 conv and max-pool)."""
        return self.input_size // 4

    @property
    def output_names(self) -> list[str]:
        """The model outputs that get a loss: every stack's, or only the last."""
        stacks = (
            range(1, self.num_stacks + 1) if self.intermediate_supervision else [self.num_stacks]
        )
        return [output_name(i) for i in stacks]


def output_name(stack: int) -> str:
    """Name of the model output holding stack `stack`'s heatmaps (1-based)."""
    return f"heatmaps_{stack}"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which TFRecords, what targets and which augmentation (paper §3.4 / pose-hg-train)."""

    dataset: str = _field(
        "mpii",
        "Dataset of the records; its built-in joint set is theirs when neither --joints nor "
        "their manifest names one.",
        choices=tuple(joints.JOINT_SET_NAMES),
    )
    joints: str = _field(
        "",
        "The joint set: '' = the training records' custom set (their manifest), else the "
        "built-in set of --dataset; a built-in name (" + ", ".join(joints.JOINT_SET_NAMES) + "); "
        "or a joint-set JSON file. Records of another joint set are refused.",
    )
    joint_set_spec: dict | None = _field(
        None,
        "The resolved joint set (`JointSet.to_dict()`), recorded in config.json; None: the "
        "built-in set of dataset (also in config.json files written before it was recorded).",
        flag=False,
    )
    train_files: str = _field(
        "tfrecords/mpii/train-*.tfrecord", "Training shards (comma-separated globs)."
    )
    valid_files: str = _field(
        "tfrecords/mpii/valid-*.tfrecord", "Validation shards (comma-separated globs)."
    )
    sigma: float = _field(1.0, "Target Gaussian sigma in heatmap pixels (paper: 1).")
    rotation: float = _field(30.0, "Max rotation in degrees (0: off).")
    rotation_prob: float = _field(0.4, "Probability of rotating a sample (pose-hg-train: 0.4).")
    scale_aug: float = _field(0.25, "Scale factor drawn from 1 ± this (0: off).")
    flip: bool = _field(True, "Horizontal flip with left/right joint swap.")
    color_jitter: float = _field(0.4, "Per-channel colour factor 1 ± this (0: off).")
    shuffle_buffer: int = _field(1024, "Shuffle buffer (records).")
    max_pixels: int = _field(
        50_000_000,
        "Largest image (height x width pixels, read from the file header before decoding) a "
        "record may hold; a larger one is a bad record (a decompression bomb: a 1 MB PNG can "
        "claim 20000x20000). 0: no limit.",
    )
    on_bad_record: str = _field(
        "fail",
        "What training does with a record that cannot be used (corrupt bytes, missing or "
        "malformed fields, non-finite values, an unreadable or too large image): 'fail' stops "
        "at the first one, naming it; 'skip' drops it, with a warning once per shard.",
        choices=("fail", "skip"),
    )
    unlabelled: str = _field(
        "auto",
        "What a joint that is not annotated (keypoint status 0) does to the loss: 'zero' trains "
        "its heatmap towards all zeros (the paper's recipe); 'ignore' gives it weight 0 (it "
        "contributes nothing). auto: zero for mpii, flic and synthetic, ignore for coco and "
        "other joint sets.",
        choices=UNLABELLED,
    )

    def __post_init__(self):
        _one_of("dataset", self.dataset, tuple(joints.JOINT_SET_NAMES))
        _one_of("unlabelled", self.unlabelled, UNLABELLED)
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        for name in ("rotation_prob",):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.scale_aug < 1:
            raise ValueError(f"scale_aug must be in [0, 1), got {self.scale_aug}")

    @property
    def joint_set(self) -> joints.JointSet:
        """The joints of the records and heatmaps: the recorded `joint_set_spec`, else
        `load_joint_set(joints, dataset)`."""
        if self.joint_set_spec is not None:
            return joints.JointSet.from_dict(self.joint_set_spec, "config: data.joint_set_spec")
        return load_joint_set(self.joints, self.dataset)

    @property
    def unlabelled_rule(self) -> str:
        """The rule in force, "ignore" or "zero": `unlabelled`, or for "auto" the joint set's
        default (zero for the paper's joint sets, ignore for any other)."""
        if self.unlabelled != "auto":
            return self.unlabelled
        paper_sets = [joints.get_joint_set(name) for name in _ZERO_UNLABELLED_SETS]
        return "zero" if self.joint_set in paper_sets else "ignore"


def load_joint_set(spec: str, dataset: str) -> joints.JointSet:
    """The joint set `--joints=spec` names.

    Args:
        spec: "" (the built-in set of `dataset`), a built-in name, or a joint-set JSON file
            (local path or URL; the format of `joints.JointSet.from_dict`).
        dataset: the built-in set used when `spec` is "".

    Raises:
        FileNotFoundError / ValueError: one line naming the file (and its bad field).
    """
    if not spec:
        return joints.get_joint_set(dataset)
    if spec in joints.JOINT_SET_NAMES:
        return joints.get_joint_set(spec)
    if not files.exists(spec):
        raise FileNotFoundError(
            f"--joints={spec}: neither a built-in joint set "
            f"({', '.join(joints.JOINT_SET_NAMES)}) nor an existing joint-set JSON file"
        )
    return read_joint_set_file(spec)


def read_joint_set_file(path) -> joints.JointSet:
    """A joint-set JSON file (local path or URL; `joints.JointSet.from_dict`'s format).

    Raises:
        FileNotFoundError / ValueError: one line naming the file (and its bad field).
    """
    return joints.JointSet.from_dict(files.read_json(path, "joint-set file"), str(os.fspath(path)))


def describe_joint_set(joint_set: joints.JointSet, limit: int = 8) -> str:
    """`'tool' (5 joints: tip, ...)`: a joint set named for a message (first `limit` names)."""
    names = list(joint_set.names)
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{joint_set.name!r} ({len(names)} joints: {shown})"


def check_same_joints(
    found: joints.JointSet, found_where: str, expected: joints.JointSet, expected_what: str
) -> None:
    """Refuses records (or a model) whose joints are not `expected`'s, in the same order.

    Raises:
        ValueError: one line: "`found_where` holds records of joint set 'tool' (5 joints:
            ...), `expected_what` has 17 (...)".
    """
    if tuple(found.names) != tuple(expected.names):
        raise ValueError(
            f"{found_where} holds records of joint set {describe_joint_set(found)}, "
            f"{expected_what} has {describe_joint_set(expected)}"
        )


def with_records_joint_set(
    config: ExperimentConfig, records: joints.JointSet | None, records_where: str
) -> ExperimentConfig:
    """`config` with `data.joint_set_spec` set (None for the built-in set of `data.dataset`):
    --joints's set, else the records' when it is
    no built-in set (a custom set travels with its records), else the built-in set of
    `data.dataset` (records of another built-in set are refused by the records' check, as
    --dataset always was).

    Args:
        config: the experiment (`data.joints`, `data.dataset`).
        records: the training records' joint set (`Split.joints()`); None without a manifest.
        records_where: the records, for the message (their glob).

    Raises:
        ValueError: one line naming both when --joints names another joint set than the
            records'; a bad --joints file.
    """
    data = config.data
    if data.joints or records is None or records.name in joints.JOINT_SET_NAMES:
        joint_set = load_joint_set(data.joints, data.dataset)
        if records is not None and data.joints:
            check_same_joints(records, records_where, joint_set, f"--joints={data.joints}")
    else:
        joint_set = records
    # The built-in set of `dataset` needs no record (config.json stays as it was).
    builtin = joint_set == joints.get_joint_set(data.dataset)
    data = dataclasses.replace(data, joint_set_spec=None if builtin else joint_set.to_dict())
    return dataclasses.replace(config, data=data)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping (Torch's RMSprop, plateau schedule, resume)."""

    model_dir: str = _field("runs/default", "Checkpoints, logs, final model.")
    batch_size: int = _field(PAPER_BATCH_SIZE, "Global batch size (split across replicas).")
    epochs: int = _field(100, "Epochs.")
    steps_per_epoch: int = _field(0, "Training steps per epoch (0: records / batch_size).")
    learning_rate: float = _field(2.5e-4, "RMSprop learning rate (paper: 2.5e-4).")
    rho: float = _field(0.99, "RMSprop decay (Torch's alpha).")
    epsilon: float = _field(1e-8, "RMSprop epsilon (Torch adds it after the square root).")
    lr_factor: float = _field(0.2, "ReduceLROnPlateau factor (and of --lr_drop_epochs).")
    lr_patience: int = _field(5, "ReduceLROnPlateau patience in epochs.")
    min_learning_rate: float = _field(1e-7, "ReduceLROnPlateau floor.")
    lr_drop_epochs: tuple[int, ...] = _field(
        (), "Also multiply the rate by lr_factor after these epochs (1-based), as bearpaw does."
    )
    supervise: str = _field(
        "all", "Supervise every stack (paper) or only the last.", choices=("all", "last")
    )
    loss_weights: tuple[float, ...] = _field((), "Per-stack loss weights (default: all 1).")
    valid_batches: int = _field(0, "Validation batches scored per epoch (0: all).")
    eval_batch_size: int = _field(16, "Validation batch size.")
    valid_flip_test: bool = _field(
        False,
        "Validate with the flip test (as pose-hg-train always does; on in mpii/flic configs).",
    )
    mixed_precision: str = _field("none", "Mixed precision policy.", choices=PRECISIONS)
    jit_compile: bool = _field(False, "Compile the train step with XLA.")
    graph_optimizer: str = _field(
        "auto",
        "Grappler passes run on the train step. auto: without a GPU, the remapper alone (its "
        "fusions are what makes CPU steps fast; the other passes took ~3 s of the 8-stack "
        "model's start and made no step faster); with a GPU, TensorFlow's defaults. full: "
        "TensorFlow's defaults everywhere.",
        choices=GRAPH_OPTIMIZERS,
    )
    distribution: str = _field(
        "auto",
        "auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else "
        "MirroredStrategy over visible GPUs, else one device.",
        choices=DISTRIBUTIONS,
    )
    cluster_timeout: float = _field(
        600.0,
        "Multi-worker only: a worker exits with an error if its first training step has not "
        "finished this many seconds after start-up (a peer never came). 0: wait forever.",
    )
    sync_batch_norm: str = _field(
        "auto",
        "BatchNorm statistics over the global batch of all replicas. auto: where each replica's "
        f"batch is smaller than the paper's {PAPER_BATCH_SIZE} (batch_size < {PAPER_BATCH_SIZE} "
        "x replicas); always: with several replicas; never: each replica's own batch.",
        choices=SYNC_BATCH_NORM,
    )
    tensorboard_images: int = _field(4, "Validation images with predicted skeletons per epoch.")
    checkpoint_every_steps: int = _field(
        500,
        "Also checkpoint every this many steps within an epoch (500: a minute or two of the "
        "8-stack model on one GPU); a killed run resumes at the last one, data position "
        "included. 0: at epoch ends only.",
    )
    seed: int = _field(0, "Seed of initialisation, data order and augmentation.")
    init_from: str = _field(
        "",
        "Start a new run from this model directory's weights (a training run's or "
        "import_weights's; same stacks, features, depth): every layer is loaded, the per-joint "
        "output channels for the joints of both joint sets (r_/right_ spellings equal; see "
        "--joint_map); the other joints' channels start fresh. A resumed run loads nothing "
        "from it.",
    )
    joint_map: tuple[str, ...] = _field(
        (),
        "With --init_from: source_joint:new_joint pairs carried over besides the joints of the "
        "same name (e.g. head_top:nose).",
    )
    verbose: int = _field(1, "0 silent, 1 progress bar, 2 a line per epoch.")
    allow_config_change: tuple[str, ...] = _field(
        (),
        "On resume, fields (e.g. epochs,lr_patience) that may differ from the stored "
        "config.json; any other difference is refused. Architecture, joint set, input size, "
        "batch size, seed, steps per epoch and training files can never change.",
    )

    def __post_init__(self):
        object.__setattr__(self, "lr_drop_epochs", tuple(int(e) for e in self.lr_drop_epochs))
        object.__setattr__(self, "loss_weights", tuple(float(w) for w in self.loss_weights))
        object.__setattr__(self, "allow_config_change", tuple(self.allow_config_change))
        object.__setattr__(self, "joint_map", tuple(str(e) for e in self.joint_map))
        if isinstance(self.sync_batch_norm, bool):
            # config.json files written when the field was a bool: true synchronised always.
            object.__setattr__(
                self, "sync_batch_norm", "always" if self.sync_batch_norm else "never"
            )
        unknown = [n for n in self.allow_config_change if not _is_field_name(n)]
        if unknown:
            raise ValueError(f"allow_config_change names no config field: {', '.join(unknown)}")
        _one_of("supervise", self.supervise, ("all", "last"))
        _one_of("mixed_precision", self.mixed_precision, PRECISIONS)
        _one_of("distribution", self.distribution, DISTRIBUTIONS)
        _one_of("sync_batch_norm", self.sync_batch_norm, SYNC_BATCH_NORM)
        _one_of("graph_optimizer", self.graph_optimizer, GRAPH_OPTIMIZERS)
        _positive_ints(self, ("batch_size", "epochs", "eval_batch_size"))
        if self.steps_per_epoch < 0 or self.valid_batches < 0:
            raise ValueError(
                f"steps_per_epoch and valid_batches must be >= 0, got {self.steps_per_epoch} "
                f"and {self.valid_batches}"
            )
        if self.checkpoint_every_steps < 0:
            raise ValueError(
                f"checkpoint_every_steps must be >= 0, got {self.checkpoint_every_steps}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}

# Keys of config.json files written by earlier versions -> today's field names.
_LEGACY_KEYS = {"data": {"scale": "scale_aug"}}
# Keys earlier versions wrote that are now derived, or were duplicates of another section's.
_DROPPED_KEYS = {"data": {"input_size", "heatmap_size", "seed"}}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Model + data + training; `resolve()` sets the fields that follow from others."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def resolve(self, num_replicas: int = 1) -> ExperimentConfig:
        """The config with derived fields set (joints, supervision, synchronised BatchNorm,
        the rule for unlabelled joints).

        Args:
            num_replicas: replicas training in sync; BatchNorm is synchronised only with
                several (with one it would only cost time), as `train.sync_batch_norm` says.
        """
        model = dataclasses.replace(
            self.model,
            num_joints=self.data.joint_set.num_joints,
            intermediate_supervision=self.train.supervise == "all",
            sync_batch_norm=self._synchronise_batch_norm(num_replicas),
        )
        if self.train.loss_weights and len(self.train.loss_weights) != len(model.output_names):
            raise ValueError(
                f"loss_weights has {len(self.train.loss_weights)} values but the model has "
                f"{len(model.output_names)} supervised outputs {model.output_names}"
            )
        data = dataclasses.replace(self.data, unlabelled=self.data.unlabelled_rule)
        return dataclasses.replace(self, model=model, data=data)

    def _synchronise_batch_norm(self, num_replicas: int) -> bool:
        # Each replica's batch of at least the paper's already gives the paper's statistics;
        # synchronising them costs two collectives per BatchNorm layer and step.
        mode = self.train.sync_batch_norm
        if num_replicas < 2 or mode == "never":
            return False
        return mode == "always" or self.train.batch_size < PAPER_BATCH_SIZE * num_replicas

    def to_dict(self) -> dict:
        return {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}

    @classmethod
    def from_dict(cls, payload: Mapping, source: str = "config") -> ExperimentConfig:
        """Reads `to_dict()` output (or an older config.json); `ValueError` naming the key."""
        sections = {}
        for name, section_cls in _SECTIONS.items():
            values = dict(payload.get(name) or {})
            for old, new in _LEGACY_KEYS.get(name, {}).items():
                if old in values:
                    values.setdefault(new, values.pop(old))
            for key in _DROPPED_KEYS.get(name, ()):
                values.pop(key, None)
            if name == "model" and values and "stem_padding" not in values:
                # Written before the stem padded symmetrically: those weights saw TF's 'same'.
                values["stem_padding"] = "same"
            if name == "data" and values and "unlabelled" not in values:
                # Written before the rule existed: those runs trained unlabelled joints to zero.
                values["unlabelled"] = "zero"
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"{source}: unknown {name} field(s) {', '.join(unknown)}")
            try:
                sections[name] = section_cls(**values)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{source}: {name}: {e}") from None
        return cls(**sections)


# --- resuming -----------------------------------------------------------------------------------

# Fields a resumed run may change without saying so: they change no result.
_RESUME_FREE = {
    "model.sync_batch_norm",  # follows train.sync_batch_norm and the replica count
    # How replicas share BatchNorm statistics, as free to change as the replica count; runs
    # written when it was a bool hold "always" where today's default is "auto".
    "train.sync_batch_norm",
    "train.model_dir",
    "data.joints",  # what it resolves to, data.joint_set_spec, is checked
    "train.verbose",
    "train.cluster_timeout",
    "train.tensorboard_images",
    "train.allow_config_change",
}
# Fields a resumed run can never change, and why; every other field may, when named in
# --allow_config_change.
_RESUME_FIXED_REASONS = {
    "model": "the weights are of the stored architecture",
    "data.dataset": "the heatmaps are of the stored joint set",
    "data.joint_set_spec": "the heatmaps are of the stored joint set",
    "data.train_files": "the data position is a place in the stored training files",
    "data.shuffle_buffer": "the data position is a place in the stored record order",
    "train.batch_size": "the data position is counted in batches of the stored size",
    "train.steps_per_epoch": "the data position is counted in the stored epoch length",
    "train.seed": "the data position is a place in the stored seed's record order",
    "train.supervise": "the model's supervised outputs would change",
}


def _is_field_name(name: str) -> bool:
    """Whether `name` is `field` or `section.field` of the config tree."""
    section, _, field = name.rpartition(".")
    sections = [section] if section else list(_SECTIONS)
    return any(
        s in _SECTIONS and field in {f.name for f in dataclasses.fields(_SECTIONS[s])}
        for s in sections
    )


def _fixed_reason(key: str) -> str | None:
    return _RESUME_FIXED_REASONS.get(key) or _RESUME_FIXED_REASONS.get(key.split(".")[0])


def config_differences(stored: ExperimentConfig, new: ExperimentConfig) -> list[tuple]:
    """(section.field, stored value, new value) of every field that differs, free ones aside."""
    changes = []
    for section in _SECTIONS:
        before, after = getattr(stored, section), getattr(new, section)
        for field in dataclasses.fields(before):
            key = f"{section}.{field.name}"
            old, value = getattr(before, field.name), getattr(after, field.name)
            if key not in _RESUME_FREE and old != value:
                changes.append((key, old, value))
    return changes


def _with_joint_set_spec(config: ExperimentConfig) -> ExperimentConfig:
    if config.data.joint_set_spec is not None:
        return config
    data = dataclasses.replace(config.data, joint_set_spec=config.data.joint_set.to_dict())
    return dataclasses.replace(config, data=data)


def check_resume(stored: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Checks that `new` may resume a run of `stored`; returns the changed fields' keys.

    Args:
        stored: the resumed run's config (`config.json`, resolved as it was written).
        new: this run's resolved config; its `train.allow_config_change` names the fields
            (`epochs` or `train.epochs`) that may differ.

    Raises:
        ValueError: one line listing every difference that is refused: fields that can never
            change (with the reason) and fields not named in --allow_config_change.
    """
    allowed = set(new.train.allow_config_change)
    # A config.json written before the joint set was recorded holds the built-in set of its
    # dataset: compared as the recorded set it is.
    stored, new = _with_joint_set_spec(stored), _with_joint_set_spec(new)
    refused, changed = [], []
    for key, old, value in config_differences(stored, new):
        reason = _fixed_reason(key)
        named = key in allowed or key.split(".", 1)[1] in allowed
        if key == "data.joint_set_spec":
            old, value = (describe_joint_set(joints.JointSet.from_dict(v)) for v in (old, value))
        if reason:
            refused.append(f"{key} {old!r} -> {value!r} (cannot change: {reason})")
        elif not named:
            name = key.split(".", 1)[1]
            refused.append(f"{key} {old!r} -> {value!r} (--allow_config_change={name} allows it)")
        else:
            changed.append(key)
    if refused:
        raise ValueError("this run's config differs from the one it resumes: " + "; ".join(refused))
    return changed


# --- flags -----------------------------------------------------------------------------------


def _base_type(tp):
    """`int | None` -> int; tuple[int, ...] -> (tuple, int)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple, typing.get_args(tp)[0]
    return tp, None


def flag_fields():
    """(section, dataclasses.Field, type, element type) of every field that is a flag."""
    out = []
    for section, section_cls in _SECTIONS.items():
        hints = typing.get_type_hints(section_cls)
        for field in dataclasses.fields(section_cls):
            if field.metadata.get("flag", True):
                base, element = _base_type(hints[field.name])
                out.append((section, field, base, element))
    return out


def define_flags(fv: flags.FlagValues, defaults: ExperimentConfig | None = None) -> None:
    """Declares one flag per config field (name, default and help from the field)."""
    defaults = defaults or ExperimentConfig()
    for section, field, base, _ in flag_fields():
        default = getattr(getattr(defaults, section), field.name)
        help_text = field.metadata["help"]
        choices = field.metadata.get("choices")
        if choices:
            flags.DEFINE_enum(field.name, default, list(choices), help_text, flag_values=fv)
        elif base is bool:
            flags.DEFINE_bool(field.name, default, help_text, flag_values=fv)
        elif base is int:
            flags.DEFINE_integer(field.name, default, help_text, flag_values=fv)
        elif base is float:
            flags.DEFINE_float(field.name, default, help_text, flag_values=fv)
        elif base is tuple:
            flags.DEFINE_list(field.name, [str(v) for v in default], help_text, flag_values=fv)
        else:
            flags.DEFINE_string(field.name, default, help_text, flag_values=fv)
        for alias in field.metadata.get("aliases", ()):
            flags.DEFINE_alias(alias, field.name, flag_values=fv)


def from_flags(fv: flags.FlagValues) -> ExperimentConfig:
    """The `ExperimentConfig` the parsed flags describe (not yet `resolve()`d)."""
    sections = {name: {} for name in _SECTIONS}
    for section, field, base, element in flag_fields():
        value = fv[field.name].value
        if base is tuple:
            try:
                value = tuple(element(v) for v in value)
            except ValueError:
                raise ValueError(
                    f"--{field.name}: expected comma-separated {element.__name__}s, got {value}"
                ) from None
        sections[section][field.name] = value
    return ExperimentConfig(**{k: _SECTIONS[k](**v) for k, v in sections.items()})
