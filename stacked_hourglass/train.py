r"""Trains a stacked hourglass network.

    python -m stacked_hourglass.train --flagfile=configs/mpii_8stack.flags [--model_dir=DIR] [...]

Flags given after --flagfile override it. Re-running with the same --model_dir resumes from the
last completed epoch. See `stacked_hourglass.training` for what lands in --model_dir.
"""

from __future__ import annotations

import json

from absl import app, flags

from stacked_hourglass.data import pipeline
from stacked_hourglass.model import ModelConfig
from stacked_hourglass.training.trainer import trainer

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/default", "Checkpoints, logs, final model.")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "If set, export a versioned SavedModel here when training ends."
)
_EXPORT_FLIP_TEST = flags.DEFINE_bool("export_flip_test", False, "Bake the flip test into it.")

# Data.
_DATASET = flags.DEFINE_enum("dataset", "mpii", ["mpii", "flic", "synthetic"], "Joint set.")
_TRAIN_FILES = flags.DEFINE_string(
    "train_files", "tfrecords/mpii/train-*.tfrecord", "Training shards (comma-separated globs)."
)
_VALID_FILES = flags.DEFINE_string(
    "valid_files", "tfrecords/mpii/valid-*.tfrecord", "Validation shards (comma-separated globs)."
)
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Network input side in pixels.")
_SIGMA = flags.DEFINE_float("sigma", 1.0, "Target Gaussian sigma in heatmap pixels.")
_ROTATION = flags.DEFINE_float("rotation", 30.0, "Max rotation in degrees (0: off).")
_ROTATION_PROB = flags.DEFINE_float("rotation_prob", 0.4, "Probability of rotating a sample.")
_SCALE_AUG = flags.DEFINE_float("scale_aug", 0.25, "Scale factor range 1 ± this (0: off).")
_FLIP = flags.DEFINE_bool("flip", True, "Horizontal flip with left/right joint swap.")
_COLOR_JITTER = flags.DEFINE_float("color_jitter", 0.4, "Per-channel factor 1 ± this (0: off).")
_SHUFFLE_BUFFER = flags.DEFINE_integer("shuffle_buffer", 1024, "Shuffle buffer (examples).")

# Model.
_NUM_STACKS = flags.DEFINE_integer("num_stacks", 8, "Hourglass stacks.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Channels inside the hourglasses.")
_DEPTH = flags.DEFINE_integer("depth", 4, "Hourglass recursion depth.")
_NUM_MODULES = flags.DEFINE_integer(
    "num_modules", 1, "Residual modules per place (pose-hg-train's nModules; paper: 1)."
)
_SYNC_BATCH_NORM = flags.DEFINE_bool(
    "sync_batch_norm", True, "BatchNorm over the global batch when training on several replicas."
)

# Optimisation.
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 6, "Global batch size.")
_EPOCHS = flags.DEFINE_integer("epochs", 100, "Epochs.")
_STEPS_PER_EPOCH = flags.DEFINE_integer("steps_per_epoch", 0, "Steps per epoch (0: one pass).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2.5e-4, "RMSprop learning rate.")
_RHO = flags.DEFINE_float("rho", 0.99, "RMSprop decay (Torch's alpha).")
_EPSILON = flags.DEFINE_float("epsilon", 1e-8, "RMSprop epsilon (added after the sqrt).")
_LR_FACTOR = flags.DEFINE_float("lr_factor", 0.2, "ReduceLROnPlateau factor.")
_LR_PATIENCE = flags.DEFINE_integer("lr_patience", 5, "ReduceLROnPlateau patience (epochs).")
_MIN_LR = flags.DEFINE_float("min_learning_rate", 1e-7, "ReduceLROnPlateau floor.")
_LR_DROP_EPOCHS = flags.DEFINE_list(
    "lr_drop_epochs", [], "Also multiply the rate by lr_factor after these epochs (1-based)."
)
_SUPERVISE = flags.DEFINE_enum(
    "supervise", "all", ["all", "last"], "Supervise every stack (paper) or only the last."
)
_LOSS_WEIGHTS = flags.DEFINE_list("loss_weights", [], "Per-stack loss weights (default all 1).")
_VALID_BATCHES = flags.DEFINE_integer(
    "valid_batches", 0, "Validation batches scored per epoch (0: all)."
)
_EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", 16, "Validation batch size.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "none", ["none", "float16", "bfloat16", "auto"], "Mixed precision."
)
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
_DISTRIBUTION = flags.DEFINE_enum(
    "distribution",
    "auto",
    ["auto", "mirrored", "multi_worker", "none"],
    "auto: MirroredStrategy over visible GPUs, else CPU.",
)
_TENSORBOARD_IMAGES = flags.DEFINE_integer(
    "tensorboard_images", 4, "Validation images with predicted skeletons per epoch."
)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar, 2 a line per epoch.")


def configs_from_flags():
    """The (ModelConfig, DataConfig, TrainConfig) given on the command line."""
    model_config = ModelConfig(
        num_stacks=_NUM_STACKS.value,
        num_features=_NUM_FEATURES.value,
        depth=_DEPTH.value,
        input_size=_INPUT_SIZE.value,
        sync_batch_norm=_SYNC_BATCH_NORM.value,
        num_modules=_NUM_MODULES.value,
    )
    data_config = pipeline.DataConfig(
        dataset=_DATASET.value,
        train_files=_TRAIN_FILES.value,
        valid_files=_VALID_FILES.value,
        input_size=_INPUT_SIZE.value,
        sigma=_SIGMA.value,
        rotation=_ROTATION.value,
        rotation_prob=_ROTATION_PROB.value,
        scale=_SCALE_AUG.value,
        flip=_FLIP.value,
        color_jitter=_COLOR_JITTER.value,
        shuffle_buffer=_SHUFFLE_BUFFER.value,
        seed=_SEED.value,
    )
    train_config = trainer.TrainConfig(
        model_dir=_MODEL_DIR.value,
        batch_size=_BATCH_SIZE.value,
        epochs=_EPOCHS.value,
        steps_per_epoch=_STEPS_PER_EPOCH.value,
        learning_rate=_LEARNING_RATE.value,
        rho=_RHO.value,
        epsilon=_EPSILON.value,
        lr_factor=_LR_FACTOR.value,
        lr_patience=_LR_PATIENCE.value,
        min_learning_rate=_MIN_LR.value,
        lr_drop_epochs=tuple(int(e) for e in _LR_DROP_EPOCHS.value),
        supervise=_SUPERVISE.value,
        loss_weights=tuple(float(w) for w in _LOSS_WEIGHTS.value),
        valid_batches=_VALID_BATCHES.value,
        eval_batch_size=_EVAL_BATCH_SIZE.value,
        mixed_precision=_MIXED_PRECISION.value,
        jit_compile=_JIT_COMPILE.value,
        distribution=_DISTRIBUTION.value,
        tensorboard_images=_TENSORBOARD_IMAGES.value,
        seed=_SEED.value,
        verbose=_VERBOSE.value,
    )
    return model_config, data_config, train_config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        model_config, data_config, train_config = configs_from_flags()
        pipeline.list_files(data_config.train_files)
        pipeline.list_files(data_config.valid_files)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from e
    summary = trainer.train(model_config, data_config, train_config)
    if _EXPORT_DIR.value:
        from stacked_hourglass.serving import exporter

        path = exporter.export_from_model_dir(
            train_config.model_dir, _EXPORT_DIR.value, flip_test=_EXPORT_FLIP_TEST.value
        )
        summary["export_dir"] = path
    print(json.dumps({k: summary[k] for k in ("model_dir", "steps", "train_seconds")}, indent=1))
    print(trainer.format_validation(summary))


if __name__ == "__main__":
    app.run(main)
