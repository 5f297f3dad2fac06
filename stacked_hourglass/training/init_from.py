"""Fine-tuning: a new run starts from another model directory's weights (`train --init_from`).

    train --init_from=SOURCE_DIR [--joint_map=old:new,...] --train_files=... --model_dir=NEW

SOURCE_DIR is a model directory (a training run's or `import_weights`'s): its config.json and its
final `model.keras`, else its latest checkpoint (`run_dir.load_model`). Every layer of the new
network is loaded from the source layer of the same name (the layer names are stable:
`model.hourglass`), except along the joint axis of the per-joint layers (`PER_JOINT_AXES`):

    stack{i}_heatmap_conv     kernel [1, 1, F, K], bias [K]   (the heatmaps: K output channels)
    stack{i}_merge_heatmaps   kernel [1, 1, K, F]             (heatmaps mapped back to features)

whose channels are carried over for the joints present in both joint sets, matched by
`joints.canonical_name` ("r_shoulder" is "right_shoulder") and by `--joint_map` entries
`source_joint:new_joint` for the others; the new joints' channels keep their fresh
initialisation. From MPII's 16 joints to COCO's 17, the 12 limb joints carry over.

The source must be of the same architecture (stacks, features, depth, modules): a layer that does
not fit is one error line naming it and both shapes. The input size may differ (no weight
depends on it). The architecture fields that are not flags (stem channels and padding, the
input mean of imported weights) are the source's (`adopt_source_fields`).

A run that resumes (its model_dir holds a resume point) restores its own checkpoint and loads
nothing from --init_from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import numpy as np

from stacked_hourglass import joints, run_dir
from stacked_hourglass.config import ExperimentConfig, ModelConfig

# Layer name suffix -> {weight name: the axis of its K joint channels}.
PER_JOINT_AXES = {
    "_heatmap_conv": {"kernel": 3, "bias": 0},
    "_merge_heatmaps": {"kernel": 2},
}
# ModelConfig fields without a flag: a fine-tuned network keeps the source's.
SOURCE_FIELDS = ("stem_features", "stem_padding", "input_mean")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `--init_from` loads, worked out before anything is built or written.

    Attributes:
        model_dir: the source model directory.
        source: its config (resolved).
        pairs: (source channel, new channel) of every joint carried over, in new-joint order.
        fresh: the new joints that keep their fresh initialisation.
    """

    model_dir: str
    source: ExperimentConfig
    pairs: tuple[tuple[int, int], ...]
    fresh: tuple[str, ...]


def parse_joint_map(entries: Sequence[str]) -> list[tuple[str, str]]:
    """`--joint_map` entries "old:new" → [(old, new)].

    Raises:
        ValueError: one line naming an entry that is not two names around one ":".
    """
    pairs = []
    for entry in entries:
        old, sep, new = entry.partition(":")
        if not sep or not old.strip() or not new.strip() or ":" in new:
            raise ValueError(f"--joint_map: entry {entry!r} is not source_joint:new_joint")
        pairs.append((old.strip(), new.strip()))
    return pairs


def match_joints(
    source: joints.JointSet, target: joints.JointSet, joint_map: Sequence[tuple[str, str]] = ()
) -> list[tuple[int, int]]:
    """(source channel, target channel) of the joints carried over, in target order.

    A target joint takes the source joint `joint_map` names for it, else the source joint of
    the same `joints.canonical_name`, else none.

    Raises:
        ValueError: one line naming a `joint_map` entry whose old joint is not in `source`, whose
            new joint is not in `target`, or that maps a joint a second time.
    """
    mapped: dict[str, str] = {}
    for old, new in joint_map:
        if old not in source.names:
            raise ValueError(
                f"--joint_map: {old}:{new}: {old!r} is no joint of the source model's joint set "
                f"{source.name!r} ({', '.join(source.names)})"
            )
        if new not in target.names:
            raise ValueError(
                f"--joint_map: {old}:{new}: {new!r} is no joint of this run's joint set "
                f"{target.name!r} ({', '.join(target.names)})"
            )
        if new in mapped:
            raise ValueError(f"--joint_map: {new!r} is mapped twice ({mapped[new]}, {old})")
        mapped[new] = old
    by_canonical = {joints.canonical_name(name): i for i, name in enumerate(source.names)}
    pairs = []
    for j, name in enumerate(target.names):
        if name in mapped:
            pairs.append((source.index(mapped[name]), j))
        elif joints.canonical_name(name) in by_canonical:
            pairs.append((by_canonical[joints.canonical_name(name)], j))
    return pairs


def map_channels(
    fresh: np.ndarray, source: np.ndarray, pairs: Sequence[tuple[int, int]], axis: int
) -> np.ndarray:
    """`fresh` with its channels `j` along `axis` replaced by `source`'s channels `i`, for every
    (i, j) of `pairs`; `fresh` itself is not changed.

    Raises:
        ValueError: the arrays differ in an axis other than `axis`.
    """
    if np.delete(fresh.shape, axis).tolist() != np.delete(source.shape, axis).tolist():
        raise ValueError(f"shape {source.shape} does not fit {fresh.shape} (joint axis {axis})")
    out = np.array(fresh, copy=True)
    if pairs:
        src, dst = (list(c) for c in zip(*pairs, strict=True))
        index = [slice(None)] * fresh.ndim
        index[axis] = dst
        source_index = [slice(None)] * source.ndim
        source_index[axis] = src
        out[tuple(index)] = source[tuple(source_index)]
    return out


def _joint_axes(layer_name: str) -> dict[str, int]:
    return next((v for k, v in PER_JOINT_AXES.items() if layer_name.endswith(k)), {})


def transfer_weights(model: keras.Model, source: keras.Model, pairs, where: str) -> int:
    """Sets every weighted layer of `model` from `source`'s layer of the same name (per-joint
    layers channel by channel, `map_channels`); returns the number of layers loaded.

    Raises:
        ValueError: one line naming `where` and the first layer that is missing in `source`
            or whose weights do not fit (both shapes).
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    layers = [layer for layer in model.layers if layer.weights]
    misfit = f"{where}: the source model does not fit this one: layer"
    models = f"(source: {_describe(source)}; this run: {_describe(model)})"
    extra = [name for name in source_layers if name not in {layer.name for layer in layers}]
    if extra:
        raise ValueError(f"{misfit} {extra[0]!r} is not in this run's model {models}")
    for layer in layers:
        other = source_layers.get(layer.name)
        if other is None or len(other.weights) != len(layer.weights):
            raise ValueError(f"{misfit} {layer.name!r} is not in the source model {models}")
        axes = _joint_axes(layer.name)
        values = []
        for mine, theirs in zip(layer.weights, other.weights, strict=True):
            fresh, value = np.asarray(mine.numpy()), np.asarray(theirs.numpy())
            name = mine.name.split("/")[-1]
            if name in axes:
                fits = (
                    np.delete(fresh.shape, axes[name]).tolist()
                    == np.delete(value.shape, axes[name]).tolist()
                )
            else:
                fits = fresh.shape == value.shape
            if not fits:
                raise ValueError(
                    f"{misfit} {layer.name!r} {name} is {list(value.shape)} there, "
                    f"{list(fresh.shape)} here {models}"
                )
            values.append(map_channels(fresh, value, pairs, axes[name]) if name in axes else value)
        layer.set_weights(values)
    return len(layers)


def _describe(model: keras.Model) -> str:
    config = getattr(model, "hourglass_config", None)
    if config is None:
        return model.name
    return (
        f"{config.num_stacks} stacks, {config.num_features} features, depth {config.depth}, "
        f"{config.num_modules} modules, {config.num_joints} joints"
    )


def adopt_source_fields(config: ExperimentConfig, source: ExperimentConfig) -> ExperimentConfig:
    """`config` with the source's architecture fields that are not flags (`SOURCE_FIELDS`)."""
    fields = {name: getattr(source.model, name) for name in SOURCE_FIELDS}
    model: ModelConfig = dataclasses.replace(config.model, **fields)
    return dataclasses.replace(config, model=model)


def plan(config: ExperimentConfig) -> Plan | None:
    """The `Plan` of `config.train.init_from` (None without one): reads the source's config.json
    and matches the joints; `config` must have its joint set (`data.joint_set_spec`).

    Raises:
        FileNotFoundError / ValueError: one line: no model directory there, a bad --joint_map.
    """
    model_dir = config.train.init_from
    if not model_dir:
        if config.train.joint_map:
            raise ValueError("--joint_map needs --init_from (the model whose joints it maps)")
        return None
    source = run_dir.load_config(model_dir).resolve()
    source_set, target_set = source.data.joint_set, config.data.joint_set
    pairs = match_joints(source_set, target_set, parse_joint_map(config.train.joint_map))
    carried = {j for _, j in pairs}
    fresh = tuple(n for j, n in enumerate(target_set.names) if j not in carried)
    return Plan(model_dir, source, tuple(pairs), fresh)


def prepare(config: ExperimentConfig, print_fn: Callable = print):
    """(`config` with the source's `SOURCE_FIELDS`, its `Plan`): what the trainer does first.

    Without --init_from: (`config`, None). When `config.train.model_dir` holds a resume point,
    the run resumes its own weights: (`config` with the stored run's `SOURCE_FIELDS`, None),
    and a line says --init_from loads nothing (the source need not exist any more).
    """
    if config.train.init_from and run_dir.read_state(config.train.model_dir) is not None:
        stored = run_dir.load_config(config.train.model_dir)
        print_fn(
            f"Resuming {config.train.model_dir}: --init_from={config.train.init_from} loads "
            "nothing (the run's checkpoint holds its weights)"
        )
        return adopt_source_fields(config, stored), None
    found = plan(config)
    return (adopt_source_fields(config, found.source) if found else config), found


def describe(plan: Plan, target: joints.JointSet) -> list[str]:
    """The two lines `initialise` prints: the joints carried over, the fresh ones."""
    source = plan.source.data.joint_set
    carried = [
        target.names[j] + ("" if source.names[i] == target.names[j] else f" ({source.names[i]})")
        for i, j in plan.pairs
    ]
    where = f"--init_from={plan.model_dir}"
    return [
        f"{where}: {len(carried)} of {target.num_joints} joints carried over from "
        f"{source.name!r}: {', '.join(carried) or 'none'}",
        f"{where}: {len(plan.fresh)} joints freshly initialised: {', '.join(plan.fresh) or 'none'}",
    ]


def initialise(
    model: keras.Model, plan: Plan, target: joints.JointSet, print_fn: Callable = print
) -> int:
    """Loads `plan`'s source model into `model` (`transfer_weights`) and prints `describe`'s
    lines; returns the number of layers loaded.

    Raises:
        FileNotFoundError: the source has neither a final model nor a checkpoint.
        ValueError: one line naming the first layer that does not fit.
    """
    source = run_dir.load_model(plan.model_dir)
    loaded = transfer_weights(model, source, plan.pairs, f"--init_from={plan.model_dir}")
    for line in describe(plan, target):
        print_fn(line)
    return loaded
