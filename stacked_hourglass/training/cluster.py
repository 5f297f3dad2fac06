"""Where this process stands in a training cluster, and the distribution strategy it trains with.

TensorFlow does the coordination (`MultiWorkerMirroredStrategy`: all-reduce, synchronised
BatchNorm, broadcast of the initial weights); this module only reads `TF_CONFIG`,

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}

checks it before TensorFlow sees it (a malformed one is one `ValueError` line instead of a hang
or a page of C++), and bounds the start-up: a worker whose peers never come would otherwise wait
for them for as long as TensorFlow's coordination service allows (an hour by default).
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import threading

import keras
import tensorflow as tf

# Task types that train (MultiWorkerMirroredStrategy's "chief" and "worker" jobs).
TRAINING_JOBS = ("chief", "worker")


def parse_tf_config(text: str | None = None) -> dict | None:
    """The validated `TF_CONFIG` (default: the environment's), or None when it is unset/empty.

    Raises:
        ValueError: one line naming what is wrong (not JSON, no cluster or task, a task type the
            cluster lacks, an index out of range, an address that is not host:port).
    """
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {type(config).__name__}")
    cluster = config.get("cluster")
    if not cluster:
        # TF's own convention: a TF_CONFIG without a cluster is a single local process.
        if "task" in config:
            raise ValueError('TF_CONFIG has a "task" but no "cluster"')
        return None
    if not isinstance(cluster, dict) or not all(
        isinstance(v, list) and v for v in cluster.values()
    ):
        raise ValueError('TF_CONFIG "cluster" must map job names to non-empty address lists')
    for job, addresses in cluster.items():
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"TF_CONFIG cluster {job}: {address!r} is not host:port")
    if not any(job in cluster for job in TRAINING_JOBS):
        raise ValueError('TF_CONFIG "cluster" has neither a "chief" nor a "worker" job')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError('TF_CONFIG needs "task": {"type": ..., "index": ...}')
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"TF_CONFIG task index must be an integer, got {index!r}")
    if not 0 <= index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG task index {index} is out of range: the cluster has "
            f"{len(cluster[task_type])} {task_type!r} task(s)"
        )
    return config


def num_workers(tf_config: dict | None = None) -> int:
    """Training tasks (chief + workers) of the cluster; 1 without TF_CONFIG."""
    tf_config = parse_tf_config() if tf_config is None else tf_config
    if not tf_config:
        return 1
    return sum(len(tf_config["cluster"].get(job, ())) for job in TRAINING_JOBS)


def worker_index(tf_config: dict | None = None) -> int:
    """This task's rank among the training tasks (the chief first), as TF numbers input
    pipelines; 0 without TF_CONFIG."""
    tf_config = parse_tf_config() if tf_config is None else tf_config
    if not tf_config:
        return 0
    task_type, index = tf_config["task"]["type"], tf_config["task"]["index"]
    if task_type == "chief":
        return 0
    if task_type != "worker":
        raise ValueError(f"TF_CONFIG task type {task_type!r} does not train")
    return index + len(tf_config["cluster"].get("chief", ()))


def is_chief(tf_config: dict | None = None) -> bool:
    """True for the one task that writes the model directory: the "chief", else worker 0."""
    tf_config = parse_tf_config() if tf_config is None else tf_config
    if not tf_config:
        return True
    task_type, index = tf_config["task"]["type"], tf_config["task"]["index"]
    if "chief" in tf_config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The distribution strategy for `TrainConfig.distribution`.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names more than one training task, else
    MirroredStrategy over the visible GPUs (one or more), else the default strategy.
    one_device / none: the default strategy. mirrored, multi_worker: those strategies.
    TF_CONFIG is validated first (`ValueError`), whatever the choice.
    """
    tf_config = parse_tf_config()
    if distribution == "auto":
        if num_workers(tf_config) > 1:
            distribution = "multi_worker"
        elif tf.config.list_logical_devices("GPU"):
            distribution = "mirrored"
    if distribution == "multi_worker":
        if tf_config and tf_config["task"]["type"] not in TRAINING_JOBS:
            raise ValueError(f"TF_CONFIG task type {tf_config['task']['type']!r} does not train")
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            # "Collective ops must be configured at program startup": a TF op ran before.
            raise ValueError(
                "--distribution=multi_worker: the strategy must be created before any "
                f"TensorFlow op runs in the process (create it first): {e}"
            ) from None
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution in ("auto", "one_device", "none"):
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown distribution {distribution!r}")


class StartupWatchdog(keras.callbacks.Callback):
    """Ends the process (status 1, one line on stderr) if the first training step has not
    finished within `timeout` seconds of `start()`.

    `MultiWorkerMirroredStrategy` waits for every peer to register, then for every collective;
    a peer that never comes (wrong address, a port taken, a crashed start) would leave this
    worker waiting for TF's coordination-service timeout. The wait happens inside TF's C++
    code, which may hold the GIL (a Python timer thread then never runs: seen with TF 2.21), so
    the bound is two timers: a Python one that prints one line and exits, and `faulthandler`'s
    C-level one, 15 s later, which needs no GIL (it dumps the threads' stacks and exits 1).
    Disarmed by the end of the first batch; `timeout <= 0` disables it.
    """

    def __init__(self, timeout: float, what: str = "the cluster"):
        super().__init__()
        self.timeout = timeout
        self.what = what
        self._timer = None

    def _fire(self):
        sys.stdout.flush()
        print(
            f"train: error: {self.what} did not start training within {self.timeout:g} s "
            "(a peer that never came? check TF_CONFIG's addresses and ports; "
            "see --cluster_timeout)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    def start(self) -> StartupWatchdog:
        if self.timeout > 0 and self._timer is None:
            print(
                f"train: {self.what}: waiting up to {self.timeout:g} s for the cluster's first "
                "step (--cluster_timeout)",
                file=sys.stderr,
                flush=True,
            )
            self._timer = threading.Timer(self.timeout, self._fire)
            self._timer.daemon = True
            self._timer.start()
            faulthandler.dump_traceback_later(self.timeout + 15, exit=True, file=sys.__stderr__)
        return self

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            faulthandler.cancel_dump_traceback_later()

    def on_train_batch_end(self, batch, logs=None):
        self.cancel()
