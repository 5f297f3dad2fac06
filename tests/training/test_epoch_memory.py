"""The trainer's one `fit` per epoch keeps no earlier epoch's input pipeline: the eager context's
function library (where a pipeline's traced map and filter functions live) stays the same size
from epoch to epoch.

A dropped tf.data pipeline is held in reference cycles inside TensorFlow; the trainer collects
it at every epoch end rather than waiting for Python's cyclic collector, whose timing depends on
everything else the process allocates. These tests switch that collector off, so that a
pipeline left to it would stay (`gc.disable` does not stop an explicit `gc.collect`).
"""

from __future__ import annotations

import dataclasses
import gc

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from stacked_hourglass.training import trainer

from .test_trainer import TINY_MODEL, tiny_config


class FunctionCount(keras.callbacks.Callback):
    """The number of functions in the eager context at each `fit`'s start."""

    def __init__(self):
        super().__init__()
        self.counts = []

    def on_train_begin(self, logs=None):
        self.counts.append(len(context.context().list_function_names()))


@pytest.fixture
def cyclic_gc_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def toy_epoch_dataset(epoch, skip_steps=0):
    """Like the trainer's epochs: a new pipeline per epoch, with a traced map (a `tf.cond`)."""
    ds = tf.data.Dataset.range(64).shuffle(16, seed=epoch).skip(skip_steps * 4)
    ds = ds.map(lambda i: tf.cond(i > 3, lambda: i * 2, lambda: i))
    ds = ds.map(lambda i: (tf.fill([1], tf.cast(i, tf.float32)), tf.zeros([1])))
    return ds.batch(4).repeat()


def test_fit_epochs_releases_each_epochs_pipeline(cyclic_gc_off):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    count = FunctionCount()
    callbacks = keras.callbacks.CallbackList([count, keras.callbacks.History()], model=model)
    trainer._fit_epochs(model, toy_epoch_dataset, callbacks, (0, 1), 5, 2, verbose=0)
    assert len(count.counts) == 5
    # The first fit traces the train step; from the second on, only the pipelines change.
    assert count.counts[1:] == [count.counts[1]] * 4, count.counts


@pytest.mark.large
def test_training_keeps_no_earlier_epochs_pipeline(synthetic_records, tmp_path, cyclic_gc_off):
    """The real pipeline, validation, checkpoints and logs (~1 min on a shared 2-core CPU)."""
    count = FunctionCount()
    model = dataclasses.replace(TINY_MODEL, num_stacks=1)
    config = tiny_config(synthetic_records, tmp_path / "run", model, epochs=4, steps_per_epoch=1)
    trainer.train(config, callbacks=[count])
    assert len(count.counts) == 4
    # Validation traces its step at the first epoch's end, so the count settles by the second.
    assert count.counts[1:] == [count.counts[1]] * 3, count.counts
    assert np.all(np.diff(count.counts) >= 0)
