"""A reference implementation's PyTorch checkpoint -> a model directory of this package.

`import_checkpoint` reads a princeton-vl/pytorch_stacked_hourglass or bearpaw/pytorch-pose
checkpoint (`torch_pickle`, no torch), infers the network's size from its tensors
(`reference_layouts`), builds the same network here (stem padded symmetrically, as Torch pads;
the source's input normalisation inside the model) and writes

    MODEL_DIR/config.json   `ExperimentConfig`: the inferred model fields, data.dataset
    MODEL_DIR/model.keras   the network with the checkpoint's weights
    MODEL_DIR/import.json   provenance: source format, file and sha256, inferred architecture,
                            unused tensors, input mean, package version, seconds taken

so that `evaluate --model_dir`, `export` and the serving signatures use it like a trained one.
The directory is assembled under a temporary name next to MODEL_DIR and renamed when complete
(`utils.files.atomic_dir`); MODEL_DIR may be a URL (gs://..., staged locally, then copied).

Memory: the checkpoint is opened without reading a tensor (`torch_pickle.open_checkpoint`), the
shapes checked and the network built; then each layer's tensors are read, converted (float32, a
conv kernel transposed) and assigned, and let go, and model.keras is written without an
in-memory copy of the weights (`save_keras_file`). The peak is thus the built network (its
weights once, plus TensorFlow's state per variable) and about a quarter of the weights more.

`verify` runs an imported model on a reference `NAME.io.npz` (the input the reference network
saw and its heatmaps) and returns the largest absolute difference per stack.
`export_reference_state` is the inverse mapping: our Keras model as a reference-layout state dict
(e.g. to write a checkpoint of any size with `torch_pickle_writer.save_checkpoint`).

Input normalisation: princeton's network is fed RGB in [0, 1]. bearpaw's subtracts a per-channel
dataset mean (its `data/mpii/mean.pth.tar`, computed over the MPII training images) from the
[0, 1] RGB input and divides by nothing. Its exact values are stored only in that binary file, so
`input_mean` is required for bearpaw: three numbers, or the path of a mean file such as
bearpaw's `mean.pth.tar` (read with the same restricted reader as checkpoints).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from stacked_hourglass.utils import files
from stacked_hourglass.utils.digest import sha256_file
from stacked_hourglass.weights import reference_layouts
from stacked_hourglass.weights.reference_layouts import FORMATS, detect_format, infer_architecture
from stacked_hourglass.weights.torch_pickle import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    open_checkpoint,
)

IMPORT_FILE = "import.json"
FORMAT_CHOICES = (*FORMATS, "auto")
# Architecture fields `reference_layouts.infer_architecture` returns (all `ModelConfig` fields).
_ARCH_FIELDS = ("num_stacks", "num_features", "depth", "num_joints", "num_modules", "stem_features")
_BN_PARTS = ("weight", "bias", "running_mean", "running_var")
# The members of a `.keras` archive in the order Keras writes them.
_KERAS_MEMBERS = {"metadata.json": 0, "config.json": 1, "model.weights.h5": 2}


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What `import_checkpoint` did.

    Attributes:
        model_dir: the directory written.
        format: "princeton" or "bearpaw" (detected when "auto" was asked for).
        architecture: the inferred `ModelConfig` fields (`infer_architecture`).
        config: the `ExperimentConfig` written to config.json.
        input_mean: the RGB mean the model subtracts from its [0, 1] input.
        input_mean_source: where that mean came from (for people and import.json).
        unused: checkpoint tensors the reference's forward pass never reads (not imported).
        num_tensors: tensors in the checkpoint's state dict (without `num_batches_tracked`).
        seconds: wall time of the whole import; `timings` per phase (load, build, assign, save).
        model: the imported Keras model (as saved in model.keras).
    """

    model_dir: str
    format: str
    architecture: dict
    config: ExperimentConfig
    input_mean: tuple[float, float, float]
    input_mean_source: str
    unused: list[str]
    num_tensors: int
    seconds: float
    timings: dict
    model: object = dataclasses.field(repr=False)


def read_mean_file(path: str | os.PathLike) -> tuple[float, float, float]:
    """The per-channel mean stored in a PyTorch file such as bearpaw's `data/mpii/mean.pth.tar`.

    Accepts `{'mean': tensor[3], ...}` (what bearpaw's datasets save) or a bare tensor of 3.

    Raises:
        CheckpointError: not a readable PyTorch file, or no 3-value mean in it.
        OSError: the file cannot be read.
    """
    obj = load_checkpoint(path)
    value = obj.get("mean") if isinstance(obj, Mapping) else obj
    array = np.asarray(value) if isinstance(value, np.ndarray) else None
    if array is None or array.size != 3 or array.dtype.kind != "f":
        keys = ", ".join(map(repr, list(obj)[:6])) if isinstance(obj, Mapping) else ""
        found = f"a mapping with keys {keys}" if keys else type(obj).__name__
        raise CheckpointError(
            f"{os.fspath(path)}: not a mean file: expected {{'mean': tensor of 3 values}} "
            f"(as bearpaw's data/mpii/mean.pth.tar), found {found}"
        )
    return tuple(float(v) for v in array.reshape(3))


def resolve_input_mean(fmt: str, input_mean) -> tuple[tuple[float, float, float], str]:
    """(mean, where it came from) for a source format and the `input_mean` argument.

    Args:
        fmt: "princeton" or "bearpaw".
        input_mean: None, three numbers (RGB, in [0, 1] units), or the path of a mean file.

    Raises:
        ValueError: bearpaw without a mean, or a mean that is not three finite numbers.
    """
    if input_mean is None:
        if fmt == "bearpaw":
            raise ValueError(
                "bearpaw networks subtract their dataset's RGB mean from the [0, 1] input and "
                "its exact value is only in bearpaw's data/mpii/mean.pth.tar: pass "
                "--input_mean=PATH/mean.pth.tar (or r,g,b; 0,0,0 imports without a mean)"
            )
        return (0.0, 0.0, 0.0), "none: princeton feeds RGB in [0, 1]"
    if isinstance(input_mean, str | os.PathLike):
        mean = read_mean_file(input_mean)
        return mean, f"mean file {os.path.abspath(os.fspath(input_mean))}"
    try:
        mean = tuple(float(v) for v in input_mean)
    except (TypeError, ValueError):
        raise ValueError(f"input_mean must be 3 numbers (r,g,b), got {input_mean!r}") from None
    if len(mean) != 3 or not all(np.isfinite(mean)):
        raise ValueError(f"input_mean must be 3 finite numbers (r,g,b), got {input_mean!r}")
    return mean, "given (--input_mean)"


def _check_joint_count(num_joints: int, dataset: str) -> joints.JointSet:
    if dataset not in joints.JOINT_SET_NAMES:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(joints.JOINT_SET_NAMES)}"
        )
    joint_set = joints.get_joint_set(dataset)
    if joint_set.num_joints != num_joints:
        fits = [
            name
            for name in joints.JOINT_SET_NAMES
            if joints.get_joint_set(name).num_joints == num_joints and name != "synthetic"
        ]
        hint = f"pass --dataset={fits[0]}" if fits else "no joint set of this package has that many"
        raise ValueError(
            f"checkpoint predicts {num_joints} heatmaps but --dataset={dataset} has "
            f"{joint_set.num_joints} joints; {hint}"
        )
    return joint_set


def _check_target(model_dir: str) -> None:
    if files.exists(model_dir) and (not files.isdir(model_dir) or files.listdir(model_dir)):
        raise FileExistsError(
            f"{model_dir} already exists and is not an empty directory; import_weights never "
            "overwrites: choose a new --model_dir or remove it"
        )


def build_imported_model(architecture: Mapping, input_mean, input_size: int = 256):
    """The Keras network for an inferred architecture (stem padded as Torch, mean inside)."""
    from stacked_hourglass.model import build_model

    config = ModelConfig(
        **{key: architecture[key] for key in _ARCH_FIELDS},
        input_size=input_size,
        stem_padding="symmetric",
        input_mean=tuple(input_mean),
    )
    return build_model(config)


def assign_weights(
    model,
    layers: Mapping[str, Callable[[], Sequence[np.ndarray]]],
    path="checkpoint",
) -> None:
    """Sets every layer's weights; an error if a weighted layer of the model gets none.

    Args:
        model: the Keras model.
        layers: Keras layer name -> a function returning its weights in `set_weights` order,
            called when that layer is assigned, so that one layer's arrays exist at a time.
        path: the checkpoint, for messages.

    Raises:
        CheckpointError: a model layer with weights that the checkpoint does not fill, a mapped
            layer the model lacks, or weights of another shape (both mean the layout and the
            model disagree).
    """
    weighted = [layer for layer in model.layers if layer.weights]
    missing = [layer.name for layer in weighted if layer.name not in layers]
    names = {layer.name for layer in model.layers}
    extra = [name for name in layers if name not in names]
    if missing or extra:
        what = (
            f"model layer {missing[0]} ({len(missing)} such) gets no weights"
            if missing
            else f"mapped layer {extra[0]} is not in the model ({len(extra)} such)"
        )
        raise CheckpointError(f"{os.fspath(path)}: {what}")
    for layer in weighted:
        weights = list(layers[layer.name]())
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(np.shape(w)) for w in weights]
        if got != expected:
            raise CheckpointError(
                f"{os.fspath(path)}: layer {layer.name} needs weights of shapes {expected}, the "
                f"checkpoint gives {got}"
            )
        layer.set_weights(weights)


def _layer_readers(checkpoint, state: Mapping, sources: Mapping) -> dict:
    """Keras layer name -> a function reading and converting its tensors (`assign_weights`)."""

    def reader(kind: str, keys: Sequence[str]):
        return lambda: reference_layouts.keras_weights(
            kind, [checkpoint.load(state[key]) for key in keys]
        )

    return {name: reader(kind, keys) for name, (kind, keys) in sources.items()}


def import_checkpoint(
    fmt: str,
    checkpoint: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    dataset: str = "mpii",
    input_mean=None,
    input_size: int = 256,
) -> ImportResult:
    """Writes a model directory holding a reference implementation's checkpoint.

    Args:
        fmt: "princeton", "bearpaw" or "auto" (detected from the tensor names).
        checkpoint: the PyTorch file (zip or legacy format), e.g. `checkpoint.pt`.
        model_dir: the directory to write (a path or a URL such as gs://...); must not exist
            or be empty.
        dataset: the joint set the checkpoint predicts (data.dataset of config.json); its joint
            count must equal the checkpoint's heatmap count.
        input_mean: RGB mean the source subtracts from its [0, 1] input, subtracted inside the
            model: three numbers or the path of a mean file (bearpaw's `mean.pth.tar`). Required
            for bearpaw; princeton's default is none.
        input_size: the network's input side (the references train at 256).

    Returns:
        An `ImportResult`.

    Raises:
        CheckpointError: the file is not a (safe, complete) checkpoint of a known
            implementation, or a tensor does not fit the inferred architecture (one line naming
            the first one).
        ValueError: a joint count / dataset mismatch, a bad `input_mean` or `fmt`.
        FileExistsError: `model_dir` exists and is not empty.
        OSError: the checkpoint cannot be read or the directory written.
    """
    start = time.perf_counter()
    target = os.fspath(model_dir)
    checkpoint = Path(checkpoint)
    _check_arguments(fmt, checkpoint, target, input_mean)
    # Opened, not read: shapes are checked and the model is built before any tensor is read,
    # and then each layer's tensors are read, converted and assigned in turn, so that the
    # process holds the model and one layer's arrays, never a second copy of the weights.
    with open_checkpoint(checkpoint) as opened:
        state = extract_state_dict(opened.object, checkpoint)
        fmt = _resolve_format(fmt, state, checkpoint)
        mean, mean_source = resolve_input_mean(fmt, input_mean)
        architecture = infer_architecture(fmt, state, checkpoint)
        joint_set = _check_joint_count(architecture["num_joints"], dataset)
        sources, unused = reference_layouts.keras_layer_sources(fmt, state, checkpoint)
        timings = {}
        _lap(timings, "load", start)
        model = build_imported_model(architecture, mean, input_size)
        _lap(timings, "build", start)
        assign_weights(model, _layer_readers(opened, state, sources), checkpoint)
        _lap(timings, "assign", start)
    config = ExperimentConfig(
        model=model.hourglass_config,
        data=DataConfig(dataset=joint_set.name),
        train=TrainConfig(model_dir=target),
    )
    result = ImportResult(
        model_dir=target,
        format=fmt,
        architecture=architecture,
        config=config,
        input_mean=mean,
        input_mean_source=mean_source,
        unused=unused,
        num_tensors=len(state),
        seconds=0.0,
        timings=timings,
        model=model,
    )
    _write_model_dir(result, checkpoint, start)
    return dataclasses.replace(result, seconds=time.perf_counter() - start)


def _lap(timings: dict, phase: str, start: float) -> None:
    """Records the seconds `phase` took: the time since `start` not taken by earlier phases."""
    timings[phase] = time.perf_counter() - start - sum(timings.values())


def _check_arguments(fmt: str, checkpoint: Path, target: str, input_mean) -> None:
    """Usage errors, found before a large checkpoint is read."""
    if fmt not in FORMAT_CHOICES:
        raise ValueError(f"format must be one of {', '.join(FORMAT_CHOICES)}, got {fmt!r}")
    _check_target(target)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
    if fmt != "auto":
        resolve_input_mean(fmt, input_mean)


def _resolve_format(fmt: str, state: Mapping, checkpoint: Path) -> str:
    """The detected format for "auto"; else `fmt`, refused if the tensors are another's."""
    if fmt == "auto":
        return detect_format(state, checkpoint)
    try:
        detected = detect_format(state, checkpoint)
    except CheckpointError:
        detected = fmt  # let the layout name the first tensor that does not fit
    if detected != fmt:
        raise CheckpointError(
            f"{checkpoint}: a {detected} checkpoint, not {fmt}: pass --format={detected} "
            "(or --format=auto)"
        )
    return fmt


def _write_model_dir(result: ImportResult, checkpoint: Path, start: float) -> None:
    """Writes config.json, model.keras and import.json to `result.model_dir`, all or nothing.

    Assembled in a folder next to the target and renamed when complete (`files.atomic_dir`);
    the Keras zip writer needs a local file, so a URL's folder is staged locally, then copied.
    Adds the "save" phase to `result.timings`.
    """
    from stacked_hourglass import run_dir

    target = result.model_dir
    with files.atomic_dir(target, local=True) as tmp:
        run_dir.save_config(tmp, result.config)
        save_keras_file(result.model, run_dir.path(tmp, run_dir.FINAL_MODEL_FILE))
        _lap(result.timings, "save", start)
        provenance = {
            "source_format": result.format,
            "checkpoint": os.path.abspath(checkpoint),
            "checkpoint_sha256": sha256_file(checkpoint),
            "checkpoint_bytes": checkpoint.stat().st_size,
            "architecture": result.architecture,
            "dataset": result.config.data.dataset,
            "input_size": result.config.model.input_size,
            "stem_padding": result.config.model.stem_padding,
            "input_mean": list(result.input_mean),
            "input_mean_source": result.input_mean_source,
            "num_tensors": result.num_tensors,
            "unused_keys": result.unused,
            "package_version": stacked_hourglass.__version__,
            "imported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - start,
            "timings": result.timings,
        }
        files.write_json(run_dir.path(tmp, IMPORT_FILE), provenance)
        _check_target(target)


def save_keras_file(model, path: str) -> None:
    """`model.save(path)` for a local `.keras` file, without a copy of the weights in memory.

    Keras writes a `.keras` file's weights into an in-memory HDF5 file first when it judges
    the memory sufficient (a second copy of every weight, then a third while it is copied
    into the zip). Its unzipped layout (`zipped=False`: config.json, metadata.json,
    model.weights.h5 written straight to files) zipped here member by member is the same
    archive, read by `keras.saving.load_model` like any other.
    """
    folder = f"{path}.parts"
    model.save(folder, zipped=False)
    try:
        with zipfile.ZipFile(path, "w") as archive:
            for root, folders, names in os.walk(folder):
                folders.sort()
                for name in sorted(names, key=lambda n: (_KERAS_MEMBERS.get(n, 3), n)):
                    full = os.path.join(root, name)
                    archive.write(full, os.path.relpath(full, folder))
    finally:
        shutil.rmtree(folder)


def verify(model, io_npz_path: str | os.PathLike, fmt: str, input_mean=None) -> dict[int, float]:
    """Largest absolute difference per stack between `model` and a reference's stored outputs.

    `NAME.io.npz` holds `input` (what the reference network itself was fed: bearpaw's NCHW
    [B, 3, S, S], already mean-subtracted; princeton's NHWC [B, S, S, 3] in [0, 1]) and
    `heatmaps_i` (NCHW [B, K, H, H]). Our model subtracts its mean inside, so it is fed that
    input plus the mean, channels-last.

    Args:
        model: a StackedHourglass (e.g. `ImportResult.model` or `run_dir.load_model`).
        io_npz_path: the reference input/output file.
        fmt: "princeton" or "bearpaw" (the input's layout).
        input_mean: the mean the model subtracts; None reads it from the model's config.

    Returns:
        {stack (1-based): max |ours - reference|} over every stack both have.

    Raises:
        ValueError: the file lacks `input` or heatmaps, or shapes do not fit the model.
    """
    from stacked_hourglass.model import model_config

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if input_mean is None:
        input_mean = model_config(model).input_mean
    with np.load(io_npz_path) as io:
        arrays = {key: io[key] for key in io.files}
    if "input" not in arrays:
        raise ValueError(f"{io_npz_path}: no 'input' array (keys: {', '.join(arrays)})")
    image = arrays["input"].astype(np.float32)
    if fmt == "bearpaw":
        image = image.transpose(0, 2, 3, 1)
    expected_shape = tuple(model.input_shape[1:])
    if image.ndim != 4 or image.shape[1:] != expected_shape:
        raise ValueError(
            f"{io_npz_path}: input of shape {arrays['input'].shape} does not fit the model's "
            f"input {expected_shape} (channels-last) for a {fmt} reference"
        )
    image = image + np.asarray(input_mean, np.float32)
    outputs = model(image, training=False)
    diffs = {}
    for name, ours in outputs.items():
        if name in arrays:
            reference = arrays[name].transpose(0, 2, 3, 1)
            ours = np.asarray(ours)
            if ours.shape != reference.shape:
                raise ValueError(
                    f"{io_npz_path}: {name} has shape {reference.shape} (channels-last), the "
                    f"model's has {ours.shape}"
                )
            diffs[int(name.rsplit("_", 1)[1])] = float(np.max(np.abs(ours - reference)))
    if not diffs:
        raise ValueError(f"{io_npz_path}: no heatmaps_i array matches the model's outputs")
    return dict(sorted(diffs.items()))


def _layout(fmt: str, architecture: Mapping):
    # The layout tables `to_keras_layers` reads, used here in the other direction.
    build = {
        "princeton": reference_layouts._princeton_layout,
        "bearpaw": reference_layouts._bearpaw_layout,
    }
    return build[fmt](dict(architecture))


def export_reference_state(model, fmt: str) -> dict[str, np.ndarray]:
    """Our Keras model as the state dict of the reference network of the same size.

    The keys are those of the bare reference module's `state_dict()` (no `module.` prefix), the
    values float32 arrays (conv weights OIHW), BatchNorm `num_batches_tracked` int64 zeros; for
    princeton also the `skip_layer` of every Residual that the forward pass does not use (zeros),
    so that the reference code loads the dict strictly. The input mean is not part of a state
    dict (bearpaw keeps it in its dataset's mean file).

    Raises:
        ValueError: the model cannot be written in that layout (princeton's PoseNet has one
            residual per place; a model whose stem pads as TF's "same" computes another
            function than the references).
    """
    from stacked_hourglass.model import model_config

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    config = model_config(model)
    if fmt == "princeton" and config.num_modules != 1:
        raise ValueError(
            f"princeton's PoseNet has one residual per place; this model has "
            f"num_modules={config.num_modules} (export it as bearpaw)"
        )
    if config.stem_padding != "symmetric":
        raise ValueError(
            "the model's stem pads as TF's 'same'; the reference networks pad 3 on every side"
        )
    architecture = {key: getattr(config, key) for key in _ARCH_FIELDS}
    layout = _layout(fmt, architecture)
    state = {}
    channels = {}
    for name, kind, prefix, shape in layout.layers:
        weights = [np.asarray(w, np.float32) for w in model.get_layer(name).get_weights()]
        if kind == "conv":
            kernel, bias = weights
            state[prefix + "weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
            state[prefix + "bias"] = bias
        else:
            for part, value in zip(_BN_PARTS, weights, strict=True):
                state[prefix + part] = value
            state[prefix + "num_batches_tracked"] = np.array(0, np.int64)
            channels[prefix] = shape[0]
    for prefix in layout.unused_prefixes:  # princeton's unused skip_layer.conv.
        residual = prefix[: -len("skip_layer.conv.")]
        c = channels[residual + "bn1."]
        state[prefix + "weight"] = np.zeros((c, c, 1, 1), np.float32)
        state[prefix + "bias"] = np.zeros(c, np.float32)
    return state
