"""Keras callbacks of the training loop: validation PCK, step LR drops and resumable checkpoints."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import joints, run_dir
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model import inference
from stacked_hourglass.utils import drawing


def metric_name(joint_set: joints.JointSet) -> str:
    """The monitored validation metric: `val_pckh` (head-normalised) or `val_pck` (torso)."""
    return "val_pckh" if joint_set.normalizer == "head" else "val_pck"


class Validation(keras.callbacks.Callback):
    """Scores the validation split in original pixels at every epoch end.

    Adds `val_pckh` (MPII/synthetic) or `val_pck` (FLIC) to the epoch logs, in %, so that
    `ReduceLROnPlateau` placed after it can monitor it, and `val_heatmap_mse` (the last stack's
    loss on unaugmented crops) from the same forward pass; logs validation images with the
    predicted skeleton to TensorBoard.
    """

    def __init__(
        self,
        eval_dataset: tf.data.Dataset,
        joint_set: joints.JointSet,
        codec: HeatmapCodec,
        valid_batches: int,
        log_dir: str,
        num_images: int,
        flip_test: bool = False,
    ):
        super().__init__()
        self.eval_dataset = eval_dataset
        self.joint_set = joint_set
        self.codec = codec
        self.valid_batches = valid_batches or None
        self.num_images = num_images
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
        self.monitor = metric_name(joint_set)
        # pose-hg-train always flip-averages at validation: with it the plateau schedule sees
        # the number users report.
        self.flip_permutation = joint_set.flip_permutation() if flip_test else None
        self.last_table = None

    def score(self) -> dict:
        """The validation PCK table of the model as it is now (also kept as `last_table`)."""
        result = inference.predict_dataset(
            inference.heatmaps_fn(self.model, self.flip_permutation),
            self.eval_dataset,
            self.codec,
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
        self.last_heatmap_mse = float(np.mean(result["heatmap_mse"]))
        return table

    def on_epoch_end(self, epoch, logs=None):
        table = self.score()
        if logs is not None:
            logs[self.monitor] = float(table["Mean"])
            logs["val_heatmap_mse"] = self.last_heatmap_mse
        with self.writer.as_default(step=epoch + 1):
            for column, value in table.items():
                if isinstance(value, float | np.floating):
                    tf.summary.scalar(f"pck/{column}", float(value))
            if self.num_images:
                tf.summary.image("predictions", self._images(), max_outputs=self.num_images)
        self.writer.flush()

    def _images(self):
        images, _ = next(iter(self.eval_dataset.unbatch().batch(self.num_images)))
        keypoints, scores = self.codec.decode(inference.predict_heatmaps(self.model, images))
        drawn = [
            drawing.render_pose(img, kp, self.joint_set, scores=sc)
            for img, kp, sc in zip(images.numpy(), keypoints.numpy(), scores.numpy(), strict=True)
        ]
        return np.stack(drawn)


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


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and the LR-plateau state at every epoch end, atomically.

    `restore()` (before `fit`) reloads the latest one and returns the epoch to start from, so a
    killed run continues where its last epoch ended with the same optimizer state.

    Multi-worker: every worker restores from `model_dir` (the chief's checkpoints, so it must be
    on storage every worker sees) and every worker saves (reading distributed variables may be a
    collective), but only the chief saves into `model_dir`; the others pass a private
    `write_dir`, which the trainer deletes at the end.
    """

    def __init__(
        self, model_dir, plateau: keras.callbacks.ReduceLROnPlateau, keep=2, write_dir=None
    ):
        super().__init__()
        self.model_dir = model_dir
        self.write_dir = write_dir or model_dir
        self.plateau = plateau
        self.keep = keep
        self._plateau_state = {}
        self._last_batch = None
        os.makedirs(os.path.join(self.write_dir, run_dir.CHECKPOINT_DIR), exist_ok=True)

    def restore(self, model) -> int:
        state = run_dir.read_state(self.model_dir)
        if state is None:
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(run_dir.state_checkpoint(self.model_dir, state))
        model.optimizer.learning_rate.assign(state["learning_rate"])
        self._plateau_state = state.get("plateau", {})
        return int(state["epoch"])

    def on_train_begin(self, logs=None):
        # ReduceLROnPlateau resets its counters in its own on_train_begin, which runs before
        # this one (it comes first in the callback list): put the saved ones back afterwards.
        for key, value in self._plateau_state.items():
            setattr(self.plateau, key, value)

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = None

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch = batch

    def on_epoch_end(self, epoch, logs=None):
        if logs and not np.isfinite(logs.get("loss", 0.0)):
            # A diverged epoch (TerminateOnNaN stopped it): keep the last good resume point.
            return
        steps = (self.params or {}).get("steps")
        if steps and self._last_batch is not None and self._last_batch + 1 < steps:
            # A callback stopped training mid-epoch (Keras still ends the epoch): the epoch is
            # not complete, so it is not a resume point either.
            return
        done = epoch + 1
        # Write under a temporary name, then rename: a kill leaves the previous state usable.
        # Keras weight files include the optimizer's variables (iterations, learning rate,
        # RMSprop accumulators).
        path = run_dir.checkpoint_path(self.write_dir, done)
        tmp = path.replace(".weights.h5", ".tmp.weights.h5")
        self.model.save_weights(tmp)
        os.replace(tmp, path)
        state = {
            "epoch": done,
            "checkpoint": os.path.basename(path),
            "step": int(self.model.optimizer.iterations.numpy()),
            "learning_rate": float(self.model.optimizer.learning_rate.numpy()),
            "plateau": {
                "best": float(self.plateau.best),
                "wait": int(self.plateau.wait),
                "cooldown_counter": int(self.plateau.cooldown_counter),
            },
        }
        run_dir.write_state(self.write_dir, state)
        old = run_dir.checkpoint_path(self.write_dir, done - self.keep)
        if os.path.exists(old):
            os.remove(old)
