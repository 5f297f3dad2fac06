"""Training: `model.fit` with intermediate supervision, Torch's RMSprop, plateau LR and resume.

`train(config)` is the library behind `python -m stacked_hourglass.train`. It writes a model
directory (`run_dir`): config.json first, checkpoints at every epoch end and every
`--checkpoint_every_steps` steps within one, the final model and summary.json at the end.
Re-running with the same model_dir resumes from the last checkpoint, mid-epoch included, with
the data stream where it was: with op determinism on, a killed and resumed run ends with the
same weights, bit for bit, as one that was never interrupted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import run_dir
from stacked_hourglass.config import (
    GRAPH_OPTIMIZERS,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    output_name,
)
from stacked_hourglass.data import pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model.hourglass import build_model
from stacked_hourglass.training import callbacks as callbacks_lib
from stacked_hourglass.training import cluster, keras_hooks
from stacked_hourglass.training.cluster import make_strategy
from stacked_hourglass.training.metrics import HeatmapPCK
from stacked_hourglass.training.optimizers import TorchRMSprop
from stacked_hourglass.utils import files

keras_hooks.check()


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without writing a final model."""


def set_precision_policy(mixed_precision: str) -> str:
    """Sets Keras's global dtype policy; returns the policy name."""
    if mixed_precision == "auto":
        mixed_precision = "float16" if tf.config.list_logical_devices("GPU") else "none"
    policy = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[
        mixed_precision
    ]
    keras.mixed_precision.set_global_policy(policy)
    return policy


# Grappler passes on by default that do nothing for this network on a CPU but take time before
# the first step: measured on the 8-stack train step (15k nodes), all passes took 5.6-6.7 s
# and the remapper alone (with the passes that cannot be switched off) 2.6 s, and 2-stack
# steps in float32 and bfloat16 were no slower without them (BUILD.md, "Benchmarks").
# The remapper stays: its Conv2D+BiasAdd and BatchNorm+ReLU fusions are the CPU speed (with
# Grappler off altogether, bfloat16 steps were ~10 % slower). On GPUs the layout optimizer
# (NHWC -> NCHW for float32 convolutions) matters, so they keep TensorFlow's defaults.
_CPU_PASSES_OFF = (
    "layout_optimizer",
    "constant_folding",
    "shape_optimization",
    "arithmetic_optimization",
    "dependency_optimization",
    "loop_optimization",
    "implementation_selector",
)


def set_graph_optimizer(mode: str) -> dict:
    """Chooses the Grappler passes for graphs compiled from now on; returns the options set.

    Args:
        mode: "auto" (without a GPU, the remapper without the passes in `_CPU_PASSES_OFF`;
            with one, TensorFlow's defaults) or "full" (TensorFlow's defaults).

    Returns:
        The options given to `tf.config.optimizer.set_experimental_options` (None: default).
    """
    if mode not in GRAPH_OPTIMIZERS:
        raise ValueError(
            f"graph_optimizer must be one of {', '.join(GRAPH_OPTIMIZERS)}; got {mode!r}"
        )
    cpu_only = mode == "auto" and not tf.config.list_logical_devices("GPU")
    options = {name: (False if cpu_only else None) for name in _CPU_PASSES_OFF}
    options["disable_model_pruning"] = cpu_only
    tf.config.optimizer.set_experimental_options(options)
    return options


def compile_model(model: keras.Model, model_config: ModelConfig, train_config: TrainConfig):
    """Compiles with one MSE per supervised stack, Torch's RMSprop and heatmap PCK."""
    names = model_config.output_names
    weights = train_config.loss_weights or (1.0,) * len(names)
    model.compile(
        optimizer=TorchRMSprop(
            learning_rate=train_config.learning_rate,
            rho=train_config.rho,
            epsilon=train_config.epsilon,
        ),
        loss={name: "mse" for name in names},
        loss_weights=dict(zip(names, weights, strict=True)),
        metrics={output_name(model_config.num_stacks): [HeatmapPCK()]},
        jit_compile=train_config.jit_compile,
    )
    _build_training_state(model)


def _build_training_state(model: keras.Model) -> None:
    """Creates the optimizer's slots and the loss and metric trackers now, eagerly.

    Keras creates them on the first step: inside the traced train function (without a
    distribution strategy), which makes tf.function trace the whole step a second time (~20 s
    of the 8-stack model's time to first step went to creating the optimizer's slots in graph
    mode alone), or by tracing the forward pass symbolically once more (under a strategy).
    Built from the model's symbolic outputs, nothing is left for the first step to create and
    it is traced once. `tests/training/test_trainer.py` checks the single trace.
    """
    model.optimizer.build(model.trainable_variables)
    outputs = model.output  # {heatmaps_i: KerasTensor}, the structure `model(x)` returns
    # Private attributes of Keras's compile, checked at import (`keras_hooks.check`).
    for compiled in (model._compile_loss, model._compile_metrics):
        if compiled is not None and not compiled.built:
            compiled.build(outputs, outputs)


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN, remembering the batch where it stopped."""

    stopped_at = None

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None:
            self.stopped_at = int(self.model.optimizer.iterations.numpy())


def train(config: ExperimentConfig, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains (or resumes) a stacked hourglass network; returns the summary dict.

    Args:
        config: the experiment (need not be `resolve()`d).
        callbacks: extra Keras callbacks, run after the package's own.

    Returns:
        The summary also written to `MODEL_DIR/summary.json`: steps, wall time, images/s and
        the final validation PCK table.

    Multi-worker (`TF_CONFIG` names several workers, see `cluster`): every worker runs this
    with the same config; `--batch_size` is the global batch; each worker reads its share of the
    files (or records); only the chief writes `model_dir`, the others write their checkpoints
    and final model to a temporary folder removed at the end, and return the summary without
    writing it. `model_dir` must be on storage every worker sees: on restart every worker
    resumes from the chief's checkpoint.

    Raises:
        TrainingDiverged: the loss or a weight became NaN/inf (the last good checkpoint stays
            the resume point; no final model is written).
        ValueError: a malformed TF_CONFIG.
    """
    start = time.perf_counter()
    train_config = config.train
    tf_config = cluster.parse_tf_config()  # A malformed TF_CONFIG fails here, before TF reads it.
    multi = train_config.distribution in ("auto", "multi_worker")
    workers = cluster.num_workers(tf_config) if multi else 1
    watchdog = cluster.StartupWatchdog(
        train_config.cluster_timeout if workers > 1 else 0,
        f"worker {cluster.worker_index(tf_config)} of {workers}" if workers > 1 else "training",
    ).start()
    try:
        strategy = make_strategy(train_config.distribution)
        chief = not cluster.is_multi_worker(strategy) or cluster.is_chief(tf_config)
        write_dir = train_config.model_dir
        if not chief:
            write_dir = tempfile.mkdtemp(prefix=f"hourglass-worker{cluster.worker_index()}-")
        try:
            return _train(config, callbacks, strategy, tf_config, write_dir, watchdog, start)
        finally:
            if write_dir != train_config.model_dir:
                shutil.rmtree(write_dir, ignore_errors=True)
    finally:
        watchdog.cancel()


def _train(config, callbacks, strategy, tf_config, write_dir, watchdog, start) -> dict:
    """`train` once the strategy exists; `write_dir` is model_dir on the chief."""
    train_config = config.train
    model_dir = train_config.model_dir
    chief = write_dir == model_dir
    multi_worker = cluster.is_multi_worker(strategy)
    keras.utils.set_random_seed(train_config.seed)
    policy = set_precision_policy(train_config.mixed_precision)
    set_graph_optimizer(train_config.graph_optimizer)
    config = config.resolve(num_replicas=strategy.num_replicas_in_sync)
    # Fail before building or writing anything when the data is not there or not of
    # --dataset's joints; list the shards once for the run. (After the strategy:
    # MultiWorkerMirroredStrategy must come before the first TensorFlow op of the process.)
    data = pipeline.open_splits(config.data, train_config.batch_size, train_config.steps_per_epoch)
    steps_per_epoch = data.steps_per_epoch
    if chief:
        run_dir.save_config(model_dir, config)
    codec = HeatmapCodec.for_model(config.model.input_size, config.data.sigma)

    def epoch_dataset(epoch: int, skip_steps: int = 0):
        """The batches of epoch `epoch` (0-based), less its first `skip_steps` steps' worth.

        Every epoch reads its own stream, seeded by (seed, epoch), rather than the run reading
        one stream throughout: a run resumed in epoch e then skips (reads and checks, without
        decoding) at most that epoch's records, not those of all epochs before it.
        """

        def dataset_fn(input_context=None):
            return pipeline.make_train_dataset(
                config.data,
                codec,
                train_config.batch_size,
                config.model.output_names,
                _epoch_seed(train_config.seed, epoch),
                input_context=input_context,
                skip_steps=skip_steps,
                split=data.train,
            )

        if multi_worker or strategy.num_replicas_in_sync > 1:
            # Each worker builds its own pipeline: its share of the files (or records), batches
            # of batch_size / replicas; Keras's fit takes the DistributedDataset as it is.
            return strategy.distribute_datasets_from_function(dataset_fn)
        return dataset_fn()

    eval_ds = pipeline.make_eval_dataset(
        data.valid,
        config.model.num_joints,
        codec,
        train_config.eval_batch_size,
        need_normalizer=True,
        max_pixels=config.data.max_pixels,
    )
    with strategy.scope():
        model = build_model(config.model)
        compile_model(model, config.model, train_config)

    # Every worker runs every callback (a save or a metric read may be a collective that all
    # workers must join); only the chief's land in model_dir.
    log_dir = run_dir.path(write_dir, run_dir.LOG_DIR)
    validation = callbacks_lib.Validation(
        eval_ds,
        config.data.joint_set,
        codec,
        train_config.valid_batches,
        log_dir,
        train_config.tensorboard_images,
        flip_test=train_config.valid_flip_test,
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor=validation.monitor,
        mode="max",
        factor=train_config.lr_factor,
        patience=train_config.lr_patience,
        min_lr=train_config.min_learning_rate,
        verbose=1,
    )
    resume = callbacks_lib.ResumeCheckpoint(
        model_dir, plateau, write_dir=write_dir, every_steps=train_config.checkpoint_every_steps
    )
    stop_on_nan = _StopOnNaN()
    with strategy.scope():  # Building the optimizer creates (distributed) variables.
        initial_epoch = resume.restore(model, steps_per_epoch)
    resumed_step = int(model.optimizer.iterations.numpy())
    if initial_epoch or resume.epoch_step:
        position = run_dir.describe_state({"epoch": initial_epoch, "epoch_step": resume.epoch_step})
        print(f"Resuming {model_dir} at {position} (step {resumed_step})")
    tensorboard = callbacks_lib.TensorBoard(
        log_dir=log_dir, update_freq=max(1, steps_per_epoch // 10)
    )
    history = keras.callbacks.History()
    all_callbacks = [
        watchdog,  # Disarmed by the first step: the cluster is up.
        stop_on_nan,
        validation,  # Before the plateau and checkpoint callbacks, which read what it logs.
        plateau,
        callbacks_lib.StepDrop(train_config.lr_drop_epochs, train_config.lr_factor),
        resume,  # After the two schedules: it saves the learning rate they set.
        tensorboard,
        keras.callbacks.CSVLogger(run_dir.path(write_dir, run_dir.HISTORY_FILE), append=True),
        *callbacks,
        history,  # Last, as Keras places it: it records what the others added to the logs.
    ]
    if multi_worker or strategy.num_replicas_in_sync > 1:
        _peek_local_batch(model, strategy)
    if multi_worker:
        _vector_logs(model)
    fit_start = time.perf_counter()
    try:
        _fit_epochs(
            model,
            epoch_dataset,
            keras.callbacks.CallbackList(
                all_callbacks, add_progbar=train_config.verbose != 0, model=model
            ),
            (initial_epoch, resume.epoch_step),
            train_config.epochs,
            steps_per_epoch,
            train_config.verbose,
        )
    finally:
        tensorboard.close()
    fit_seconds = time.perf_counter() - fit_start
    diverged = resume.diverged
    if stop_on_nan.stopped_at is not None:
        diverged = f"the loss became NaN or infinite at step {stop_on_nan.stopped_at}"
    if diverged:
        kept = run_dir.describe_state(run_dir.read_state(model_dir))
        raise TrainingDiverged(
            f"{model_dir}: {diverged}; no final model written; resume point kept: {kept}"
        )
    if validation.last_table is None:
        validation.set_model(model)
        validation.score()

    with files.atomic_path(run_dir.path(write_dir, run_dir.FINAL_MODEL_FILE)) as tmp:
        # Keras infers the format from the suffix.
        model.save(tmp + ".keras")
        os.replace(tmp + ".keras", tmp)
    steps = int(model.optimizer.iterations.numpy())
    images = (steps - resumed_step) * train_config.batch_size
    summary = {
        "model_dir": model_dir,
        "final_model": run_dir.path(model_dir, run_dir.FINAL_MODEL_FILE),
        "epochs": train_config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": steps,
        "resumed_from_epoch": initial_epoch,
        "resumed_from_step": resumed_step,
        "train_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - start,
        "images_per_second": images / fit_seconds if images and fit_seconds else None,
        "dtype_policy": policy,
        "replicas": strategy.num_replicas_in_sync,
        "workers": cluster.num_workers(tf_config) if multi_worker else 1,
        "parameters": int(model.count_params()),
        "validation_metric": validation.monitor,
        "validation": validation.last_table,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }
    if chief:
        files.write_json(run_dir.path(model_dir, run_dir.SUMMARY_FILE), summary)
    return summary


def _epoch_seed(seed: int, epoch: int) -> int:
    """The data seed of epoch `epoch` (0-based) of a run seeded `seed`."""
    return int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)[0])


def _fit_epochs(model, epoch_dataset, callbacks, start, epochs, steps_per_epoch, verbose) -> None:
    """Trains from `start` = (epoch, steps of it already trained) to the end of `epochs`, one
    `fit` per epoch, until a callback stops training.

    Keras's `initial_epoch` resumes at an epoch boundary only. One `fit` per epoch lets a resumed
    epoch run just its remaining steps on its own stream, and gives every epoch its own stream
    (`epoch_dataset`); the callbacks, one `CallbackList` across the calls, see the run's epoch
    numbers, and `params["epochs"]` is the run's.
    """
    epoch, done = start
    while epoch < epochs:
        steps = steps_per_epoch - done
        callbacks.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        model.fit(
            epoch_dataset(epoch, done),
            epochs=epoch + 1,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            # The pipeline shuffles (files, records); Keras's default would only warn here.
            shuffle=False,
            verbose=verbose,
        )
        if model.stop_training:  # TerminateOnNaN, or a caller's callback
            return
        epoch, done = epoch + 1, 0


def _peek_local_batch(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Works around Keras's `_maybe_symbolic_build` under a multi-worker strategy.

    Before training, `fit` peeks one distributed batch to build the metrics and calls
    `strategy.reduce("MEAN", (x, y), axis=None)` on the whole nested batch, which
    MultiWorkerMirroredStrategy rejects ("Attempt to convert a value (PerReplica...) to a
    Tensor"). The peeked batch only gives shapes and dtypes to a symbolic build, so this
    instance's hook takes the first local replica's values instead (no collective). The hook
    is private: `keras_hooks.check` fails the import on a Keras without it.
    """
    import types

    original = model._maybe_symbolic_build

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(it)
                )
                break
            iterator = None
        return original(iterator=iterator, data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)


def _vector_logs(model: keras.Model) -> None:
    """Works around the reduction of the step logs under MultiWorkerMirroredStrategy.

    `fit` reduces every replica's logs with `strategy.reduce("MEAN", value, axis=0)`, which
    fails on the scalars `train_step` returns ("Invalid reduction dimension 0 for input with 0
    dimensions") in the tested Keras releases (`keras_hooks.TESTED_KERAS`). Returned as [1]
    vectors, the same reduction is the mean over the replicas.
    """
    train_step = model.train_step

    def vector_train_step(data):
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), train_step(data))

    model.train_step = vector_train_step


def format_validation(summary: dict) -> str:
    """The validation table of a `train()` summary, as text."""
    return pck.format_table(summary["validation"])
