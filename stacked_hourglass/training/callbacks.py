"""Keras callbacks of the training loop: validation PCK, step LR drops, resumable checkpoints and
TensorBoard across the loop's `fit` calls."""

from __future__ import annotations

import csv
import errno
import io
import os

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass import joints, run_dir
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model import inference
from stacked_hourglass.utils import drawing, files


def metric_name(joint_set: joints.JointSet) -> str:
    """The monitored validation metric: `val_pckh` (head-normalised) or `val_pck` (torso)."""
    return "val_pckh" if joint_set.normalizer == "head" else "val_pck"


class Validation(keras.callbacks.Callback):
    """Scores the validation split in original pixels at every epoch end.

    Adds `val_pckh` (MPII/synthetic) or `val_pck` (FLIC) to the epoch logs, in %, so that
    `ReduceLROnPlateau` placed after it can monitor it, and `val_heatmap_mse` (the last stack's
    loss on unaugmented crops; with `ignore_unlabelled`, as under `--unlabelled=ignore`, without
    the joints that are not annotated) from the same forward pass; logs validation images with
    the predicted skeleton to TensorBoard.
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
        ignore_unlabelled: bool = False,
    ):
        super().__init__()
        self.eval_dataset = eval_dataset
        self.joint_set = joint_set
        self.codec = codec
        self.valid_batches = valid_batches or None
        self.num_images = num_images
        self.writer = tf.summary.create_file_writer(files.join(log_dir, "validation"))
        self.monitor = metric_name(joint_set)
        # pose-hg-train always flip-averages at validation: with it the plateau schedule sees
        # the number users report.
        self.flip_permutation = joint_set.flip_permutation() if flip_test else None
        self.ignore_unlabelled = ignore_unlabelled
        self.last_table = None
        self._step = None  # (model, traced step): traced once per run, not once per epoch
        self._image_batch = None  # the people drawn at every epoch end, read once per run

    def score(self) -> dict:
        """The validation PCK table of the model as it is now (also kept as `last_table`)."""
        heatmaps = inference.heatmaps_fn(self.model, self.flip_permutation)
        if self._step is None or self._step[0] is not self.model:
            step = inference.predict_step(heatmaps, self.codec, self.ignore_unlabelled)
            self._step = (self.model, step)
        result = inference.predict_dataset(
            heatmaps,
            self.eval_dataset,
            self.codec,
            max_batches=self.valid_batches,
            step=self._step[1],
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
        if self._image_batch is None:
            self._image_batch = next(iter(self.eval_dataset.unbatch().batch(self.num_images)))[0]
        images = self._image_batch
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


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, for a training loop of several `fit` calls.

    The trainer runs one `fit` per epoch (and a resumed run starts anew): Keras's callback
    numbers its batch summaries from 0 and closes its writers at the end of every `fit`, after
    which writing fails. Here batch summaries are numbered by the optimizer's step, and the
    writers stay open until `close()`.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = int(self.model.optimizer.iterations.numpy())

    def _close_writers(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        """Closes the writers (once training is over)."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class CSVLogger(keras.callbacks.Callback):
    """One row per epoch (`epoch` 0-based, then the epoch logs by name) in a CSV file, kept
    across the loop's `fit` calls and across resumed runs.

    Keras's CSVLogger keeps the file open for appending, which fails on TensorFlow's file
    systems (its `GFile` has no `closed`; object stores cannot append): here every epoch end
    rewrites the file atomically (`files.write_text`), the rows before it included. The columns
    are those of the file's header when it exists, else the first epoch's log names, sorted;
    a log a row lacks is "NA"; a per-replica vector (multi-worker logs) is written as its mean.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        lines = []
        if files.exists(self.path):
            lines = files.read_bytes(self.path).decode("utf-8").splitlines()
        if not lines:
            lines = [",".join(["epoch", *sorted(logs)])]
        columns = next(csv.reader(lines[:1]))
        row = [str(epoch)] + [_csv_value(logs.get(name, "NA")) for name in columns[1:]]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        files.write_text(self.path, "\n".join(lines) + "\n" + out.getvalue())


def _csv_value(value) -> str:
    if isinstance(value, str):
        return value
    return repr(float(np.mean(keras.ops.convert_to_numpy(value))))


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and the LR-plateau state atomically: at every epoch end and
    every `every_steps` steps within an epoch.

    `restore()` (before training) reloads the latest resume point and returns the epochs it
    completed; `epoch_step` is then the steps of the next epoch it had trained too. The trainer
    trains the rest of that epoch on the epoch's stream with those steps' records skipped, so
    that a killed and resumed run computes what an uninterrupted one does.

    Every save writes the weights under a temporary name and renames them, then replaces
    `state.json` (atomically) to name them, and only then deletes the files they supersede: a
    kill at any moment, a kill -9 mid-write included, leaves `state.json` naming a complete
    checkpoint. Kept: the last `keep` epoch checkpoints and the latest mid-epoch one (until the
    next epoch end). A step whose loss is not finite, or after which a callback stopped
    training, is never a resume point; nor are weights holding a NaN or infinity: then training
    stops and `diverged` says where (a NaN in early weights need not reach the loss, see
    `_weights_finite`).

    The trainer runs one `fit` per epoch, so `on_train_begin` comes at every epoch: there it
    gives `ReduceLROnPlateau` back the counters its own `on_train_begin` reset.

    Multi-worker: every worker restores from `model_dir` (the chief's checkpoints, so it must be
    on storage every worker sees) and every worker saves (reading distributed variables may be a
    collective), but only the chief saves into `model_dir`; the others pass a private
    `write_dir`, which the trainer deletes at the end.
    """

    def __init__(
        self,
        model_dir,
        plateau: keras.callbacks.ReduceLROnPlateau,
        keep=2,
        write_dir=None,
        every_steps=0,
    ):
        super().__init__()
        self.model_dir = model_dir
        self.write_dir = write_dir or model_dir
        self.plateau = plateau
        self.keep = keep
        self.every_steps = every_steps
        self.epoch_step = 0
        self._plateau_state = {}
        self._resumed = None  # (epoch, steps of it already trained) after restore()
        self._epoch = 0
        self._epoch_start = 0  # steps of the current epoch trained before this fit
        self._last_batch = None
        self.diverged = None  # "NaN or infinite weights in ... after step N", once seen
        files.makedirs(run_dir.path(self.write_dir, run_dir.CHECKPOINT_DIR))

    def restore(self, model, steps_per_epoch: int | None = None) -> int:
        """Loads the latest resume point into `model` (compiled); returns its completed epochs.

        Sets `epoch_step`. A mid-epoch point at or past `steps_per_epoch` (the flag changed
        since) restarts that epoch from its first step, with the weights as they are.
        """
        state = run_dir.read_state(self.model_dir)
        if state is None:
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        run_dir.load_weights(model, run_dir.state_checkpoint(self.model_dir, state))
        model.optimizer.learning_rate.assign(state["learning_rate"])
        self._plateau_state = state.get("plateau", {})
        epoch = int(state["epoch"])
        self.epoch_step = int(state.get("epoch_step", 0))
        if steps_per_epoch and self.epoch_step >= steps_per_epoch:
            print(
                f"{self.model_dir}: the checkpoint is {self.epoch_step} steps into epoch "
                f"{epoch + 1}, which now has {steps_per_epoch}: restarting that epoch"
            )
            self.epoch_step = 0
        self._resumed = (epoch, self.epoch_step)
        return epoch

    def on_train_begin(self, logs=None):
        # ReduceLROnPlateau resets its counters in its own on_train_begin, which runs before
        # this one (it comes first in the callback list): put the saved ones back afterwards.
        for key, value in self._plateau_state.items():
            setattr(self.plateau, key, value)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._last_batch = None
        self._epoch_start = self._resumed[1] if self._resumed and self._resumed[0] == epoch else 0

    def on_train_batch_end(self, batch, logs=None):
        done_before = self._epoch_start + (0 if self._last_batch is None else self._last_batch + 1)
        self._last_batch = batch
        if not self.every_steps:
            return
        done = self._epoch_start + batch + 1
        steps = (self.params or {}).get("steps")
        if steps and batch + 1 >= steps:
            return  # The epoch's last step: its end saves, after validation and the schedules.
        if done // self.every_steps == done_before // self.every_steps:
            return
        if self.model.stop_training or not _finite_loss(logs) or not self._weights_finite():
            return
        path = run_dir.checkpoint_path(self.write_dir, self._epoch + 1, step=done)
        self._save(path, {"epoch": self._epoch, "epoch_step": done})
        for old in run_dir.step_checkpoints(self.write_dir):
            if old != path:
                files.remove(old)

    def on_epoch_end(self, epoch, logs=None):
        # The next epoch's fit begins by resetting the plateau: it gets these counters back.
        if self.plateau is not None:
            self._plateau_state = self._plateau_counters()
        if self._resumed and self._resumed[0] == epoch:
            self._resumed = None
        if not _finite_loss(logs):
            # A diverged epoch (TerminateOnNaN stopped it): keep the last good resume point.
            return
        steps = (self.params or {}).get("steps")
        if steps and self._last_batch is not None and self._last_batch + 1 < steps:
            # A callback stopped training mid-epoch (Keras still ends the epoch): the epoch is
            # not complete, so it is not a resume point either.
            return
        if not self._weights_finite():
            return
        done = epoch + 1
        self._save(run_dir.checkpoint_path(self.write_dir, done), {"epoch": done, "epoch_step": 0})
        old = run_dir.checkpoint_path(self.write_dir, done - self.keep)
        for path in [old, *run_dir.step_checkpoints(self.write_dir)]:
            files.remove(path)

    def _weights_finite(self) -> bool:
        """Whether every weight (moving statistics included) is finite; if not, stops training
        and sets `diverged`.

        The loss alone misses some divergence: in a traced step TensorFlow fuses BatchNorm with
        the ReLU after it, and that fused ReLU maps NaN to 0, so NaN weights before a
        BatchNorm-ReLU pair leave the heatmaps and the loss finite while the weights stay NaN.
        Reading the weights costs ~0.1 s for 25 M parameters, once per save.
        """
        bad = [
            weight.path
            for weight in self.model.weights
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight.value)))
        ]
        if not bad:
            return True
        step = int(self.model.optimizer.iterations.numpy())
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        self.diverged = f"NaN or infinite weights in {', '.join(bad[:3])}{more} after step {step}"
        self.model.stop_training = True
        return False

    def _plateau_counters(self) -> dict:
        best = self.plateau.best  # None until the plateau's first epoch end
        return {
            "best": None if best is None else float(best),
            "wait": int(self.plateau.wait),
            "cooldown_counter": int(self.plateau.cooldown_counter),
        }

    def _save(self, path: str, position: dict) -> None:
        """Writes the checkpoint at `path`, then the state naming it (`position`: epoch,
        epoch_step); the caller deletes what it supersedes afterwards."""
        # Keras weight files include the optimizer's variables (iterations, learning rate,
        # RMSprop accumulators). Written under a hidden temporary name, then renamed.
        step = int(self.model.optimizer.iterations.numpy())
        try:
            run_dir.save_weights(self.model, path)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            last = run_dir.read_state(self.write_dir) or {}
            complete = (
                f"{last.get('checkpoint')} (optimizer step {last.get('step')})"
                if last.get("checkpoint")
                else "none (no checkpoint yet)"
            )
            detail = error.strerror.removeprefix("no space left on device: ")
            raise OSError(
                errno.ENOSPC,
                f"no space left on device while writing checkpoint {os.path.basename(path)} "
                f"(optimizer step {step}); the last complete checkpoint is {complete} ({detail})",
            ) from None
        state = {
            **position,
            "checkpoint": os.path.basename(path),
            "step": step,
            "learning_rate": float(self.model.optimizer.learning_rate.numpy()),
            "plateau": self._plateau_counters(),
        }
        run_dir.write_state(self.write_dir, state)
        # A kill mid-write leaves a temporary file (see `files.atomic_path`) that no later save
        # renames away.
        folder = run_dir.path(self.write_dir, run_dir.CHECKPOINT_DIR)
        for name in files.listdir(folder):
            if name.startswith(".") and ".tmp" in name:
                files.remove(files.join(folder, name))


def _finite_loss(logs) -> bool:
    """Whether the loss in `logs` is finite (True without one; a vector under multi-worker)."""
    return bool(np.all(np.isfinite((logs or {}).get("loss", 0.0))))
