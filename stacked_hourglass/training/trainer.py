"""Training: `model.fit` with intermediate supervision, Torch's RMSprop, plateau LR and resume.

`train()` is the library behind `python -m stacked_hourglass.train`; the entry module only parses
flags into the three config dataclasses (`ModelConfig`, `DataConfig`, `TrainConfig`), which are
saved as `MODEL_DIR/config.json` next to the checkpoints.

MODEL_DIR layout:
    config.json                 the configs of this run (rewritten on every start)
    checkpoints/                epoch-end weights + optimizer state, `state.json` (resume point)
    logs/                       TensorBoard (scalars, validation images with predicted skeletons)
    model.keras                 the final model (written when training ends)
    summary.json                steps, wall time, final validation PCK table
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass.data import geometry, pipeline
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model import ModelConfig, build_model, inference, output_name
from stacked_hourglass.training.optimizers import TorchRMSprop
from stacked_hourglass.utils import drawing

CONFIG_FILE = "config.json"
FINAL_MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.json"
_CHECKPOINT_DIR = "checkpoints"
_STATE_FILE = "state.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings.

    Attributes:
        model_dir: where checkpoints, logs, the final model and summary go.
        batch_size: global batch size (divided across replicas).
        epochs: number of epochs.
        steps_per_epoch: training steps per epoch; 0 = records / batch_size.
        learning_rate: RMSprop learning rate (paper: 2.5e-4).
        rho, epsilon: Torch rmsprop's alpha and epsilon.
        lr_factor, lr_patience, min_learning_rate: `ReduceLROnPlateau` on validation PCK.
        lr_drop_epochs: also multiply the rate by `lr_factor` when these epochs (1-based
            count of completed epochs) end — a fixed step schedule, as bearpaw/pytorch-pose uses,
            for short runs where a plateau cannot be detected reliably.
        supervise: "all" (intermediate supervision) or "last" (ablation).
        loss_weights: per-stack loss weights (empty: 1 for every supervised stack).
        valid_batches: validation batches scored per epoch (0: the whole split).
        eval_batch_size: batch size of validation.
        mixed_precision: "none", "float16", "bfloat16" or "auto" (float16 on GPU, else none).
        jit_compile: compile the train step with XLA.
        distribution: "auto" (MirroredStrategy over visible GPUs, else the default CPU strategy),
            "mirrored", "multi_worker" or "none".
        tensorboard_images: validation crops with predicted skeletons logged per epoch.
        seed: Python/NumPy/TF seed for weight initialisation.
        verbose: Keras progress display (0 silent, 1 progress bar, 2 one line per epoch).
    """

    model_dir: str = "runs/default"
    batch_size: int = 6
    epochs: int = 100
    steps_per_epoch: int = 0
    learning_rate: float = 2.5e-4
    rho: float = 0.99
    epsilon: float = 1e-8
    lr_factor: float = 0.2
    lr_patience: int = 5
    min_learning_rate: float = 1e-7
    lr_drop_epochs: tuple[int, ...] = ()
    supervise: str = "all"
    loss_weights: tuple[float, ...] = ()
    valid_batches: int = 0
    eval_batch_size: int = 16
    mixed_precision: str = "none"
    jit_compile: bool = False
    distribution: str = "auto"
    tensorboard_images: int = 4
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        if self.supervise not in ("all", "last"):
            raise ValueError(f"supervise must be 'all' or 'last', got {self.supervise!r}")
        if self.mixed_precision not in ("none", "float16", "bfloat16", "auto"):
            raise ValueError(
                "mixed_precision must be none, float16, bfloat16 or auto, got "
                f"{self.mixed_precision!r}"
            )
        if self.distribution not in ("auto", "mirrored", "multi_worker", "none"):
            raise ValueError(
                f"distribution must be auto, mirrored, multi_worker or none, got "
                f"{self.distribution!r}"
            )
        for name in ("batch_size", "epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def save_configs(model_dir: str, model_config, data_config, train_config) -> str:
    """Writes the three configs as `MODEL_DIR/config.json`; returns the path."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_FILE)
    payload = {
        "model": dataclasses.asdict(model_config),
        "data": dataclasses.asdict(data_config),
        "train": dataclasses.asdict(train_config),
    }
    _write_json_atomic(path, payload)
    return path


def load_configs(model_dir: str):
    """Reads `MODEL_DIR/config.json` back into (ModelConfig, DataConfig, TrainConfig)."""
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no config.json; is {model_dir} a model_dir?") from None
    train = dict(payload["train"])
    train["loss_weights"] = tuple(train.get("loss_weights", ()))
    train["lr_drop_epochs"] = tuple(train.get("lr_drop_epochs", ()))
    return (
        ModelConfig(**payload["model"]),
        pipeline.DataConfig(**payload["data"]),
        TrainConfig(**train),
    )


def load_trained_model(model_dir: str) -> keras.Model:
    """The final model of a run (`model.keras`), else its latest checkpoint."""
    final = os.path.join(model_dir, FINAL_MODEL_FILE)
    if os.path.exists(final):
        return keras.models.load_model(final, compile=False)
    model_config, _, _ = load_configs(model_dir)
    state = _read_state(model_dir)
    if state is None:
        raise FileNotFoundError(f"{model_dir}: neither {FINAL_MODEL_FILE} nor a checkpoint")
    model = build_model(model_config)
    # Checkpoints also hold optimizer variables; an uncompiled model loads just its own.
    model.load_weights(_checkpoint_path(model_dir, state["epoch"]))
    return model


class StepDrop(keras.callbacks.Callback):
    """Multiplies the learning rate by `factor` at the end of the given epochs (1-based)."""

    def __init__(self, epochs, factor):
        super().__init__()
        self.epochs = set(epochs)
        self.factor = factor

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            rate = self.model.optimizer.learning_rate
            rate.assign(rate * self.factor)
            print(f"\nEpoch {epoch + 1}: learning rate dropped to {float(rate.numpy()):.3g}")


def _write_json_atomic(path, payload):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _checkpoint_path(model_dir, epoch):
    return os.path.join(model_dir, _CHECKPOINT_DIR, f"epoch-{epoch:04d}.weights.h5")


def _read_state(model_dir):
    path = os.path.join(model_dir, _CHECKPOINT_DIR, _STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The distribution strategy for `TrainConfig.distribution`."""
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "auto" and tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision_policy(mixed_precision: str) -> str:
    """Sets Keras's global dtype policy; returns the policy name."""
    if mixed_precision == "auto":
        mixed_precision = "float16" if tf.config.list_logical_devices("GPU") else "none"
    policy = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[
        mixed_precision
    ]
    keras.mixed_precision.set_global_policy(policy)
    return policy


class HeatmapPCK(keras.metrics.Metric):
    """PCK computed on heatmaps, as pose-hg-train's training accuracy.

    Both the target and the predicted heatmaps are decoded (argmax + quarter-pixel shift); a joint
    counts when its target heatmap has a peak (annotated and inside the crop) and the distance is
    ≤ `threshold` × heatmap_size / 10 heatmap pixels (pose-hg-train's normaliser). Cheap enough for
    every batch; the real PCKh in original pixels comes from `PCKCallback`.
    """

    def __init__(self, threshold=0.5, name="pck", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true_xy, true_peak = geometry.decode_heatmaps(y_true)
        pred_xy, _ = geometry.decode_heatmaps(y_pred)
        size = tf.cast(tf.shape(y_true)[1], tf.float32)
        distance = tf.norm(pred_xy - true_xy, axis=-1) / (size / 10.0)
        valid = true_peak > 0.5
        hits = tf.logical_and(valid, distance <= self.threshold)
        self.correct.assign_add(tf.reduce_sum(tf.cast(hits, self.dtype)))
        self.total.assign_add(tf.reduce_sum(tf.cast(valid, self.dtype)))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class PCKCallback(keras.callbacks.Callback):
    """Scores the validation split in original pixels at every epoch end.

    Adds `val_pckh` (MPII/synthetic) or `val_pck` (FLIC) to the epoch logs, in %, so that
    `ReduceLROnPlateau` placed after it can monitor it, and `val_heatmap_mse` (the last stack's
    loss on unaugmented crops) from the same forward pass; logs validation images with the
    predicted skeleton to TensorBoard.
    """

    def __init__(self, eval_dataset, data_config, valid_batches, log_dir, num_images):
        super().__init__()
        self.eval_dataset = eval_dataset
        self.data_config = data_config
        self.valid_batches = valid_batches or None
        self.num_images = num_images
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
        self.joint_set = data_config.joint_set
        self.monitor = metric_name(self.joint_set)
        self.last_table = None

    def on_epoch_end(self, epoch, logs=None):
        result = inference.predict_dataset(
            self.model,
            self.eval_dataset,
            self.data_config.input_size,
            max_batches=self.valid_batches,
        )
        table = pck.pck_table(
            result["preds"],
            result["keypoints"],
            result["normalizer"],
            result["missing"],
            self.joint_set,
        )
        self.last_table = table
        if logs is not None:
            logs[self.monitor] = float(table["Mean"])
            logs["val_heatmap_mse"] = float(np.mean(result["heatmap_mse"]))
        with self.writer.as_default(step=epoch + 1):
            for column, value in table.items():
                if isinstance(value, float | np.floating):
                    tf.summary.scalar(f"pck/{column}", float(value))
            if self.num_images:
                tf.summary.image("predictions", self._images(), max_outputs=self.num_images)
        self.writer.flush()

    def _images(self):
        images, info = next(iter(self.eval_dataset.unbatch().batch(self.num_images)))
        heatmaps = inference.predict_heatmaps(self.model, images)
        coords, scores = geometry.decode_heatmaps(heatmaps)
        crop = geometry.heatmap_to_crop(
            coords, self.data_config.input_size, self.data_config.heatmap_size
        )
        drawn = [
            drawing.render_pose(img, kp, self.joint_set, scores=sc)
            for img, kp, sc in zip(images.numpy(), crop.numpy(), scores.numpy(), strict=True)
        ]
        return np.stack(drawn)


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and the LR-plateau state at every epoch end, atomically.

    `restore()` (before `fit`) reloads the latest one and returns the epoch to start from, so a
    killed run continues where its last epoch ended with the same optimizer state.
    """

    def __init__(self, model_dir, plateau: keras.callbacks.ReduceLROnPlateau, keep=2):
        super().__init__()
        self.model_dir = model_dir
        self.plateau = plateau
        self.keep = keep
        self._plateau_state = {}
        os.makedirs(os.path.join(model_dir, _CHECKPOINT_DIR), exist_ok=True)

    def restore(self, model) -> int:
        state = _read_state(self.model_dir)
        if state is None:
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(_checkpoint_path(self.model_dir, state["epoch"]))
        model.optimizer.learning_rate.assign(state["learning_rate"])
        self._plateau_state = state.get("plateau", {})
        return int(state["epoch"])

    def on_train_begin(self, logs=None):
        # ReduceLROnPlateau resets its counters in its own on_train_begin, which runs before
        # this one (it comes first in the callback list): put the saved ones back afterwards.
        for key, value in self._plateau_state.items():
            setattr(self.plateau, key, value)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        # Write under a temporary name, then rename: a kill leaves the previous state usable.
        # Keras weight files include the optimizer's variables (iterations, learning rate,
        # RMSprop accumulators).
        path = _checkpoint_path(self.model_dir, done)
        tmp = path.replace(".weights.h5", ".tmp.weights.h5")
        self.model.save_weights(tmp)
        os.replace(tmp, path)
        state = {
            "epoch": done,
            "step": int(self.model.optimizer.iterations.numpy()),
            "learning_rate": float(self.model.optimizer.learning_rate.numpy()),
            "plateau": {
                "best": float(self.plateau.best),
                "wait": int(self.plateau.wait),
                "cooldown_counter": int(self.plateau.cooldown_counter),
            },
        }
        _write_json_atomic(os.path.join(self.model_dir, _CHECKPOINT_DIR, _STATE_FILE), state)
        old = _checkpoint_path(self.model_dir, done - self.keep)
        if os.path.exists(old):
            os.remove(old)


def metric_name(joint_set) -> str:
    """The monitored validation metric: `val_pckh` (head-normalised) or `val_pck` (torso)."""
    return "val_pckh" if joint_set.normalizer == "head" else "val_pck"


def _loss_weights(model_config: ModelConfig, train_config: TrainConfig) -> dict:
    names = model_config.output_names
    weights = train_config.loss_weights or (1.0,) * len(names)
    if len(weights) != len(names):
        raise ValueError(
            f"loss_weights has {len(weights)} values but the model has {len(names)} supervised "
            f"outputs {names}"
        )
    return dict(zip(names, weights, strict=True))


def compile_model(model, model_config, train_config):
    """Compiles with one MSE per supervised stack, Torch's RMSprop and heatmap PCK."""
    last = output_name(model_config.num_stacks)
    model.compile(
        optimizer=TorchRMSprop(
            learning_rate=train_config.learning_rate,
            rho=train_config.rho,
            epsilon=train_config.epsilon,
        ),
        loss={name: "mse" for name in model_config.output_names},
        loss_weights=_loss_weights(model_config, train_config),
        metrics={last: [HeatmapPCK()]},
        jit_compile=train_config.jit_compile,
    )


def train(model_config: ModelConfig, data_config: pipeline.DataConfig, train_config: TrainConfig):
    """Trains (or resumes) a stacked hourglass network; returns the summary dict.

    Also written to `MODEL_DIR/summary.json`: steps, wall time, images/s and the final validation
    PCK table.
    """
    start = time.perf_counter()
    model_dir = train_config.model_dir
    model_config = dataclasses.replace(
        model_config,
        num_joints=data_config.joint_set.num_joints,
        input_size=data_config.input_size,
        intermediate_supervision=train_config.supervise == "all",
    )
    data_config = dataclasses.replace(data_config, heatmap_size=model_config.heatmap_size)
    keras.utils.set_random_seed(train_config.seed)
    policy = set_precision_policy(train_config.mixed_precision)
    strategy = make_strategy(train_config.distribution)
    # Synchronised BatchNorm only matters (and only costs) with several replicas.
    model_config = dataclasses.replace(
        model_config,
        sync_batch_norm=model_config.sync_batch_norm and strategy.num_replicas_in_sync > 1,
    )
    save_configs(model_dir, model_config, data_config, train_config)

    steps_per_epoch = train_config.steps_per_epoch or max(
        1, pipeline.count_records(data_config.train_files) // train_config.batch_size
    )
    train_ds = pipeline.make_train_dataset(
        data_config, train_config.batch_size, model_config.output_names
    )
    eval_ds = pipeline.make_eval_dataset(
        data_config.valid_files, data_config, train_config.eval_batch_size
    )

    with strategy.scope():
        model = build_model(model_config)
        compile_model(model, model_config, train_config)

    log_dir = os.path.join(model_dir, "logs")
    pck = PCKCallback(
        eval_ds, data_config, train_config.valid_batches, log_dir, train_config.tensorboard_images
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor=pck.monitor,
        mode="max",
        factor=train_config.lr_factor,
        patience=train_config.lr_patience,
        min_lr=train_config.min_learning_rate,
        verbose=1,
    )
    resume = ResumeCheckpoint(model_dir, plateau)
    drops = StepDrop(train_config.lr_drop_epochs, train_config.lr_factor)
    initial_epoch = resume.restore(model)
    if initial_epoch:
        print(f"Resuming {model_dir} from the end of epoch {initial_epoch}")
    callbacks = [
        pck,  # Before the plateau and checkpoint callbacks, which read what it logs.
        plateau,
        drops,
        resume,  # Last of the three: it saves the learning rate they set.
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 10)),
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
    ]
    fit_start = time.perf_counter()
    history = keras.callbacks.History()
    if initial_epoch < train_config.epochs:
        history = model.fit(
            train_ds,
            epochs=train_config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=train_config.verbose,
        )
    fit_seconds = time.perf_counter() - fit_start
    trained_epochs = max(0, train_config.epochs - initial_epoch)
    if pck.last_table is None:
        pck.model = model
        pck.on_epoch_end(train_config.epochs - 1, None)

    final_path = os.path.join(model_dir, FINAL_MODEL_FILE)
    tmp_path = final_path.replace(".keras", ".tmp.keras")
    model.save(tmp_path)
    os.replace(tmp_path, final_path)
    images = trained_epochs * steps_per_epoch * train_config.batch_size
    summary = {
        "model_dir": model_dir,
        "final_model": final_path,
        "epochs": train_config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_epoch": initial_epoch,
        "train_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - start,
        "images_per_second": images / fit_seconds if trained_epochs and fit_seconds else None,
        "dtype_policy": policy,
        "replicas": strategy.num_replicas_in_sync,
        "parameters": int(model.count_params()),
        "validation_metric": pck.monitor,
        "validation": {k: _jsonable(v) for k, v in pck.last_table.items()},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }
    _write_json_atomic(os.path.join(model_dir, SUMMARY_FILE), summary)
    return summary


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating | np.integer):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def format_validation(summary: dict) -> str:
    """The validation table of a `train()` summary, as text."""
    return pck.format_table(summary["validation"])
