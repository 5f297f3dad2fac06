"""Training: `model.fit` with intermediate supervision, Torch's RMSprop, plateau LR and resume.

`train(config)` is the library behind `python -m stacked_hourglass.train`. It writes a model
directory (`run_dir`): config.json first, checkpoints at every epoch end and every
`--checkpoint_every_steps` steps within one, the final model and summary.json at the end.
Re-running with the same model_dir resumes from the last checkpoint, mid-epoch included, with
the data stream where it was: with op determinism on, a killed and resumed run ends with the
same weights, bit for bit, as one that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import run_dir
from stacked_hourglass.config import (
    GRAPH_OPTIMIZERS,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    check_resume,
    output_name,
    with_records_joint_set,
)
from stacked_hourglass.data import pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.records.split import Split
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model.hourglass import build_model
from stacked_hourglass.training import callbacks as callbacks_lib
from stacked_hourglass.training import cluster, keras_hooks, losses, precision
from stacked_hourglass.training import init_from as init_from_lib
from stacked_hourglass.training.cluster import make_strategy
from stacked_hourglass.training.metrics import HeatmapPCK
from stacked_hourglass.training.optimizers import TorchRMSprop
from stacked_hourglass.utils import files, locks

keras_hooks.check()


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without writing a final model."""


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


def compile_model(
    model: keras.Model,
    model_config: ModelConfig,
    train_config: TrainConfig,
    data_config: DataConfig | None = None,
):
    """Compiles with one MSE per supervised stack, Torch's RMSprop and heatmap PCK.

    `data_config.unlabelled_rule` picks the MSE (`losses.heatmap_loss`: Keras's, or joints
    weighted by the batches' sample weights); None: `DataConfig()`'s.
    """
    names = model_config.output_names
    data_config = data_config or DataConfig()
    weights = train_config.loss_weights or (1.0,) * len(names)
    model.compile(
        optimizer=TorchRMSprop(
            learning_rate=train_config.learning_rate,
            rho=train_config.rho,
            epsilon=train_config.epsilon,
        ),
        loss={name: losses.heatmap_loss(data_config) for name in names},
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
        config: the experiment (need not be `resolve()`d). `model_dir` may be a local path or a
            URL of a TensorFlow file system (`gs://bucket/run`; `run_dir`).
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
        ValueError: a malformed TF_CONFIG, or a model_dir URL of a file system TensorFlow lacks.
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
        run = _Run(config, strategy, tf_config, write_dir, watchdog, start)
        try:
            return _train(run, callbacks)
        finally:
            run.lock.release()
            if not run.chief:
                shutil.rmtree(write_dir, ignore_errors=True)
    finally:
        watchdog.cancel()


@dataclasses.dataclass
class _Run:
    """What the steps of one `train` call share.

    Attributes:
        config: the experiment; `resolve()`d for the strategy's replicas by `_prepare`.
        strategy: the distribution strategy (made before any other TensorFlow op).
        tf_config: the parsed `TF_CONFIG` (None on a single machine).
        write_dir: where this process writes: `model_dir` on the chief, a private temporary
            folder on the other workers.
        watchdog: the cluster start-up watchdog, disarmed by the first step.
        start: `time.perf_counter()` when `train` was called.
        policy: the Keras dtype policy name (set by `_prepare`).
        codec: the heatmap codec of the model's input size and the data's sigma (`_prepare`).
        data: the training and validation splits, opened and checked once (`_prepare`).
        init: what --init_from loads (`_prepare`); None without it.
        lock: `write_dir`'s lock, taken by `_prepare` before it writes anything.
    """

    config: ExperimentConfig
    strategy: tf.distribute.Strategy
    tf_config: dict | None
    write_dir: str
    watchdog: keras.callbacks.Callback
    start: float
    policy: str = ""
    codec: HeatmapCodec | None = None
    data: pipeline.TrainingData | None = None
    init: init_from_lib.Plan | None = None
    lock: locks.DirectoryLock = dataclasses.field(init=False)

    def __post_init__(self):
        self.lock = locks.DirectoryLock(self.write_dir)

    @property
    def model_dir(self) -> str:
        return self.config.train.model_dir

    @property
    def chief(self) -> bool:
        """Whether this process writes `model_dir`."""
        return self.write_dir == self.model_dir

    @property
    def multi_worker(self) -> bool:
        return cluster.is_multi_worker(self.strategy)

    @property
    def distributed(self) -> bool:
        """Whether batches are split across replicas (several devices or workers)."""
        return self.multi_worker or self.strategy.num_replicas_in_sync > 1


@dataclasses.dataclass
class _Callbacks:
    """The package's callbacks of one run, and all callbacks in the order `fit` runs them."""

    validation: callbacks_lib.Validation
    resume: callbacks_lib.ResumeCheckpoint
    stop_on_nan: _StopOnNaN
    tensorboard: callbacks_lib.TensorBoard
    history: keras.callbacks.History
    ordered: list[keras.callbacks.Callback]


def _train(run: _Run, callbacks: Sequence[keras.callbacks.Callback]) -> dict:
    """`train` once the strategy exists: checks and config.json (`_prepare`), model, callbacks,
    resume point, the epochs (`_fit`), then the final model and summary.json."""
    steps_per_epoch = _prepare(run)
    eval_ds = _eval_dataset(run)
    with run.strategy.scope():
        model = build_model(run.config.model)
        compile_model(model, run.config.model, run.config.train, run.config.data)
        if run.init:  # --init_from, in a run that starts afresh
            init_from_lib.initialise(model, run.init, run.config.data.joint_set)
    loop = _make_callbacks(run, steps_per_epoch, eval_ds, callbacks)
    initial_epoch, resumed_step = _restore(run, model, loop.resume, steps_per_epoch)
    fit_seconds = _fit(run, model, loop, (initial_epoch, loop.resume.epoch_step), steps_per_epoch)
    _raise_if_diverged(run, loop)
    if loop.validation.last_table is None:
        loop.validation.set_model(model)
        loop.validation.score()
    run_dir.save_final_model(model, run.write_dir)
    summary = _summary(
        run, model, loop, steps_per_epoch, (initial_epoch, resumed_step), fit_seconds
    )
    if run.chief:
        files.write_json(run_dir.path(run.model_dir, run_dir.SUMMARY_FILE), summary)
    return summary


def _prepare(run: _Run) -> int:
    """Seeds, precision, graph options, the resolved config, the data checks and config.json;
    returns the steps per epoch."""
    train_config = run.config.train
    keras.utils.set_random_seed(train_config.seed)
    run.policy = precision.set_precision_policy(train_config.mixed_precision)
    warning = precision.emulated_bfloat16_warning(
        run.policy, bool(tf.config.list_logical_devices("GPU")), precision.read_cpu_flags()
    )
    if warning:
        print(f"train: warning: {warning}", file=sys.stderr)
    set_graph_optimizer(train_config.graph_optimizer)
    # The joint set comes from the training records' manifest (or --joints, checked against it).
    train_split = Split.open(run.config.data.train_files)
    run.config = with_records_joint_set(run.config, train_split.joints(), train_split.patterns)
    run.config, run.init = init_from_lib.prepare(run.config)
    run.config = run.config.resolve(num_replicas=run.strategy.num_replicas_in_sync)
    _check_resumed_config(run)
    run.codec = HeatmapCodec.for_model(run.config.model.input_size, run.config.data.sigma)
    # Fail before building or writing anything when the data is not there or not of
    # --dataset's joints; list the shards once for the run. (After the strategy:
    # MultiWorkerMirroredStrategy must come before the first TensorFlow op of the process.)
    run.data = pipeline.open_splits(
        run.config.data, train_config.batch_size, train_config.steps_per_epoch, train_split
    )
    # One run per model directory: a second one (a repeated command, a duplicated worker index,
    # a scheduler's retry) is refused here, naming the holder, before it writes anything.
    run.lock.acquire()
    if run.chief:
        run_dir.save_config(run.model_dir, run.config)
    return run.data.steps_per_epoch


def _check_resumed_config(run: _Run) -> None:
    """Refuses, before anything is written, a resume whose config differs from the stored one
    in a field `config.check_resume` does not allow; prints the allowed changes."""
    if run_dir.read_state(run.model_dir) is None:
        return  # nothing to resume: this run starts afresh and writes its own config.json
    stored = run_dir.load_config(run.model_dir)
    config_path = run_dir.path(run.model_dir, run_dir.CONFIG_FILE)
    try:
        changed = check_resume(stored, run.config)
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}; nothing written") from None
    if changed:
        print(f"Resuming {run.model_dir} with changed {', '.join(changed)}")


def _restore(run: _Run, model, resume: callbacks_lib.ResumeCheckpoint, steps_per_epoch: int):
    """Loads the resume point of `model_dir`, if any; returns (its epochs, its global step)."""
    with run.strategy.scope():  # Building the optimizer creates (distributed) variables.
        initial_epoch = resume.restore(model, steps_per_epoch)
    resumed_step = int(model.optimizer.iterations.numpy())
    if initial_epoch or resume.epoch_step:
        where = run_dir.describe_state({"epoch": initial_epoch, "epoch_step": resume.epoch_step})
        print(f"Resuming {run.model_dir} at {where} (step {resumed_step})")
    return initial_epoch, resumed_step


def _epoch_datasets(run: _Run):
    """`epoch_dataset(epoch, skip_steps=0)`: the batches of epoch `epoch` (0-based), less its
    first `skip_steps` steps' worth.

    Every epoch reads its own stream, seeded by (seed, epoch), rather than the run reading one
    stream throughout: a run resumed in epoch e then skips (reads and checks, without decoding)
    at most that epoch's records, not those of all epochs before it.
    """
    config, train_config = run.config, run.config.train

    def epoch_dataset(epoch: int, skip_steps: int = 0):
        def dataset_fn(input_context=None):
            return pipeline.make_train_dataset(
                config.data,
                run.codec,
                train_config.batch_size,
                config.model.output_names,
                _epoch_seed(train_config.seed, epoch),
                input_context=input_context,
                skip_steps=skip_steps,
                split=run.data.train,
            )

        if run.distributed:
            # Each worker builds its own pipeline: its share of the files (or records), batches
            # of batch_size / replicas; Keras's fit takes the DistributedDataset as it is.
            return run.strategy.distribute_datasets_from_function(dataset_fn)
        return dataset_fn()

    return epoch_dataset


def _eval_dataset(run: _Run):
    """The validation split, unaugmented, in batches of `eval_batch_size`."""
    return pipeline.make_eval_dataset(
        run.data.valid,
        run.config.model.num_joints,
        run.codec,
        run.config.train.eval_batch_size,
        need_normalizer=True,
        max_pixels=run.config.data.max_pixels,
    )


def _make_callbacks(run: _Run, steps_per_epoch: int, eval_ds, extra) -> _Callbacks:
    """The run's callbacks, in the order `fit` runs them (the comments below say why).

    Every worker runs every callback (a save or a metric read may be a collective that all
    workers must join); only the chief's land in model_dir.
    """
    config, train_config = run.config, run.config.train
    log_dir = run_dir.path(run.write_dir, run_dir.LOG_DIR)
    validation = callbacks_lib.Validation(
        eval_ds,
        config.data.joint_set,
        run.codec,
        train_config.valid_batches,
        log_dir,
        train_config.tensorboard_images,
        flip_test=train_config.valid_flip_test,
        ignore_unlabelled=config.data.unlabelled_rule == "ignore",
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
        run.model_dir,
        plateau,
        write_dir=run.write_dir,
        every_steps=train_config.checkpoint_every_steps,
    )
    stop_on_nan = _StopOnNaN()
    board = callbacks_lib.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 10))
    history = keras.callbacks.History()
    ordered = [
        run.watchdog,  # Disarmed by the first step: the cluster is up.
        stop_on_nan,
        validation,  # Before the plateau and checkpoint callbacks, which read what it logs.
        plateau,
        callbacks_lib.StepDrop(train_config.lr_drop_epochs, train_config.lr_factor),
        resume,  # After the two schedules: it saves the learning rate they set.
        board,
        callbacks_lib.CSVLogger(run_dir.path(run.write_dir, run_dir.HISTORY_FILE)),
        *extra,
        history,  # Last, as Keras places it: it records what the others added to the logs.
    ]
    return _Callbacks(validation, resume, stop_on_nan, board, history, ordered)


def _fit(run: _Run, model, loop: _Callbacks, start: tuple[int, int], steps_per_epoch: int):
    """Trains from `start` = (epoch, steps of it trained) to the end; returns the seconds."""
    train_config = run.config.train
    if run.distributed:
        _peek_local_batch(model, run.strategy)
    if run.multi_worker:
        _vector_logs(model)
    fit_start = time.perf_counter()
    try:
        _fit_epochs(
            model,
            _epoch_datasets(run),
            keras.callbacks.CallbackList(
                loop.ordered, add_progbar=train_config.verbose != 0, model=model
            ),
            start,
            train_config.epochs,
            steps_per_epoch,
            train_config.verbose,
        )
    except tf.errors.OpError as error:
        bad = pipeline.input_error(error, [run.data.train, run.data.valid], run.config.data)
        if bad is None:
            raise
        raise bad from None
    finally:
        loop.tensorboard.close()
    return time.perf_counter() - fit_start


def _raise_if_diverged(run: _Run, loop: _Callbacks) -> None:
    """`TrainingDiverged` when the loss or a weight became NaN/inf (no final model then)."""
    diverged = loop.resume.diverged
    if loop.stop_on_nan.stopped_at is not None:
        diverged = f"the loss became NaN or infinite at step {loop.stop_on_nan.stopped_at}"
    if diverged:
        kept = run_dir.describe_state(run_dir.read_state(run.model_dir))
        raise TrainingDiverged(
            f"{run.model_dir}: {diverged}; no final model written; resume point kept: {kept}"
        )


def _summary(run: _Run, model, loop: _Callbacks, steps_per_epoch: int, resumed, fit_seconds):
    """The run's summary (`summary.json`); `resumed` = (epoch, step) where this call began."""
    train_config = run.config.train
    steps = int(model.optimizer.iterations.numpy())
    images = (steps - resumed[1]) * train_config.batch_size
    return {
        "model_dir": run.model_dir,
        "final_model": run_dir.path(run.model_dir, run_dir.FINAL_MODEL_FILE),
        "epochs": train_config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": steps,
        "resumed_from_epoch": resumed[0],
        "resumed_from_step": resumed[1],
        "train_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - run.start,
        "images_per_second": images / fit_seconds if images and fit_seconds else None,
        "dtype_policy": run.policy,
        "replicas": run.strategy.num_replicas_in_sync,
        "workers": cluster.num_workers(run.tf_config) if run.multi_worker else 1,
        "parameters": int(model.count_params()),
        "validation_metric": loop.validation.monitor,
        "validation": loop.validation.last_table,
        "history": {k: [float(x) for x in v] for k, v in loop.history.history.items()},
    }


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

    Each epoch's pipeline is collected as soon as its `fit` returns (`gc.collect`): a dropped
    tf.data pipeline sits in reference cycles inside TensorFlow, and until Python's cyclic
    collector reaches them its traced map and filter functions stay in the eager context's
    function library, tens of MiB per epoch (BUILD.md, "Soak").
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
        gc.collect()
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
