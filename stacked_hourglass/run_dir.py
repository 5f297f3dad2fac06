"""The model directory: what a training run (or a weight import) leaves, and how to read it.

    MODEL_DIR/
      config.json            `ExperimentConfig.to_dict()` (model, data, train)
      checkpoints/           weights + optimizer state at epoch ends and every N steps within
                             an epoch, `state.json` (the resume point)
      logs/                  TensorBoard (scalars, validation images with predicted skeletons)
      model.keras            the final model (written when training ends)
      history.csv            one row per epoch
      summary.json           steps, wall time, final validation PCK table

Training writes it; evaluation, export and prediction read it. This module is the one place that
knows the file names, so readers do not depend on the trainer.

MODEL_DIR may be a local path or a URL TensorFlow's file systems know (`gs://bucket/run`, `ram://`):
every access goes through `utils.files`. Keras writes and reads its weight files and `.keras` zips
through h5py and zipfile, which need local files: they are written locally and uploaded
(`save_weights`, `save_final_model`), and read from a local download (`load_weights`,
`load_model`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
from collections.abc import Iterator

import keras
import numpy as np

from stacked_hourglass.config import ExperimentConfig
from stacked_hourglass.model.hourglass import build_model
from stacked_hourglass.utils import files

CONFIG_FILE = "config.json"
FINAL_MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"


_STEP_CHECKPOINT = re.compile(r"^epoch-\d+-step-\d+\.weights\.h5$")


def path(model_dir: str, name: str) -> str:
    """A file or folder of the model directory."""
    return files.join(model_dir, name)


def save_config(model_dir: str, config: ExperimentConfig) -> str:
    """Writes `MODEL_DIR/config.json` (atomically); returns its path."""
    files.makedirs(model_dir)
    return str(files.write_json(path(model_dir, CONFIG_FILE), config.to_dict()))


def load_config(model_dir: str) -> ExperimentConfig:
    """Reads `MODEL_DIR/config.json`; a clear error when `model_dir` is not a model directory."""
    config_path = path(model_dir, CONFIG_FILE)
    if not files.exists(config_path):
        raise FileNotFoundError(f"{config_path}: no config.json; is {model_dir} a model_dir?")
    return ExperimentConfig.from_dict(files.read_json(config_path, "config"), config_path)


def checkpoint_path(model_dir: str, epoch: int, step: int | None = None) -> str:
    """Weights + optimizer state at the end of `epoch` (1-based), or `step` steps into it."""
    name = f"epoch-{epoch:04d}" if step is None else f"epoch-{epoch:04d}-step-{step:09d}"
    return files.join(model_dir, CHECKPOINT_DIR, f"{name}.weights.h5")


def step_checkpoints(model_dir: str) -> list[str]:
    """The mid-epoch checkpoint files of `model_dir` (see `checkpoint_path`), sorted."""
    folder = path(model_dir, CHECKPOINT_DIR)
    if not files.isdir(folder):
        return []
    return [files.join(folder, n) for n in files.listdir(folder) if _STEP_CHECKPOINT.match(n)]


def describe_state(state: dict | None) -> str:
    """A resume point in words: "epoch 3", "epoch 3 + 500 steps of epoch 4" or "none"."""
    if state is None:
        return "none (no checkpoint written)"
    epoch, step = int(state["epoch"]), int(state.get("epoch_step", 0))
    return f"epoch {epoch}" + (f" + {step} steps of epoch {epoch + 1}" if step else "")


def read_state(model_dir: str) -> dict | None:
    """The resume point `checkpoints/state.json`, or None before the first checkpoint."""
    state_path = files.join(model_dir, CHECKPOINT_DIR, STATE_FILE)
    if not files.exists(state_path):
        return None
    return files.read_json(state_path, "checkpoint state")


def write_state(model_dir: str, state: dict) -> None:
    """Replaces the resume point atomically (after the checkpoint it names is complete)."""
    files.write_json(files.join(model_dir, CHECKPOINT_DIR, STATE_FILE), state)


@contextlib.contextmanager
def _keras_file(target: str, suffix: str) -> Iterator[str]:
    """A local path ending in `suffix` (Keras infers the format from it) whose file replaces
    `target` (local or URL) atomically when the block succeeds; nothing is left on failure."""
    with files.atomic_path(target, local=True) as tmp:
        named = tmp + suffix
        try:
            yield named
            os.replace(named, tmp)
        finally:
            if os.path.exists(named):
                os.remove(named)


# HDF5's own structures around the arrays of a weights file, generously.
_H5_OVERHEAD_BYTES = 4 * 2**20


def weights_file_bytes(model: keras.Model) -> int:
    """About how many bytes `save_weights` writes: the weights and the optimizer's variables
    (an upper bound up to HDF5's headers, `_H5_OVERHEAD_BYTES`)."""
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    arrays = sum(
        math.prod(int(n) for n in v.shape)
        * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        for v in variables
    )
    return arrays + _H5_OVERHEAD_BYTES


def check_free_space(path: str, needed: int, name: str = "") -> None:
    """Raises `OSError(ENOSPC)` when the local filesystem of `path` has fewer than `needed`
    bytes free. HDF5 does not survive a full disk (h5py's cleanup after a failed write can crash
    the process), so a weights file is written only where it fits."""
    if files.is_url(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"no space left on device: {folder} has {free / 2**20:.1f} MiB free, writing "
            f"{name or os.path.basename(path)} needs about {needed / 2**20:.1f} MiB",
        )


def save_weights(model: keras.Model, checkpoint: str) -> None:
    """`model.save_weights` (weights and optimizer state) to `checkpoint`, atomically.

    Raises:
        OSError: ENOSPC, before anything is written, when the disk lacks the room for the file
            (`check_free_space`); nothing is left behind.
    """
    with _keras_file(checkpoint, ".weights.h5") as local:
        check_free_space(local, weights_file_bytes(model), os.path.basename(checkpoint))
        model.save_weights(local)


def load_weights(model: keras.Model, checkpoint: str) -> None:
    """`model.load_weights` from `checkpoint` (local or URL)."""
    with files.local_copy(checkpoint) as local:
        model.load_weights(local)


def save_final_model(model: keras.Model, model_dir: str) -> str:
    """Writes `MODEL_DIR/model.keras` atomically; returns its path.

    The file holds the network alone. A compiled model is copied into an uncompiled one first:
    its compile config would name the trainer's optimizer and metric, which `load_model` could
    only rebuild after importing the trainer, and the training state is the checkpoints' job.
    So `keras.saving.load_model` needs nothing beyond `import stacked_hourglass`.
    """
    final = path(model_dir, FINAL_MODEL_FILE)
    network = model
    if model.compiled or getattr(model, "optimizer", None) is not None:
        network = type(model).from_config(model.get_config())
        network.set_weights(model.get_weights())
    with _keras_file(final, ".keras") as local:
        network.save(local)
    return final


def load_model(model_dir: str) -> keras.Model:
    """The final model of a run (`model.keras`), else its latest checkpoint's weights."""
    final = path(model_dir, FINAL_MODEL_FILE)
    if files.exists(final):
        with files.local_copy(final) as local:
            return keras.models.load_model(local, compile=False)
    config = load_config(model_dir).resolve()
    state = read_state(model_dir)
    if state is None:
        raise FileNotFoundError(f"{model_dir}: neither {FINAL_MODEL_FILE} nor a checkpoint")
    model = build_model(config.model)
    # Checkpoints also hold optimizer variables; an uncompiled model loads just its own.
    load_weights(model, state_checkpoint(model_dir, state))
    return model


def state_checkpoint(model_dir: str, state: dict) -> str:
    """The checkpoint file a resume point names (older state files name only the epoch)."""
    if "checkpoint" in state:
        return files.join(model_dir, CHECKPOINT_DIR, state["checkpoint"])
    return checkpoint_path(model_dir, int(state["epoch"]))
