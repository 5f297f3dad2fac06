"""`training/cluster.py`: TF_CONFIG parsing and validation, the strategy choice (in-process)."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from stacked_hourglass.training import cluster

TWO = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}}


def _config(index=0, task_type="worker", cluster_spec=None):
    spec = dict(TWO if cluster_spec is None else cluster_spec)
    return json.dumps({**spec, "task": {"type": task_type, "index": index}})


def test_unset_or_empty_is_a_single_process():
    assert cluster.parse_tf_config("") is None
    assert cluster.parse_tf_config("{}") is None
    assert cluster.num_workers({}) == 1 and cluster.worker_index({}) == 0
    assert cluster.is_chief({})


def test_workers_index_and_chief():
    second = cluster.parse_tf_config(_config(1))
    assert cluster.num_workers(second) == 2
    assert cluster.worker_index(second) == 1 and not cluster.is_chief(second)
    assert cluster.is_chief(cluster.parse_tf_config(_config(0)))
    with_chief = {"chief": ["h:1"], "worker": ["h:2", "h:3"]}
    worker0 = cluster.parse_tf_config(_config(0, cluster_spec={"cluster": with_chief}))
    assert cluster.num_workers(worker0) == 3
    assert cluster.worker_index(worker0) == 1 and not cluster.is_chief(worker0)
    chief = cluster.parse_tf_config(_config(0, "chief", {"cluster": with_chief}))
    assert cluster.is_chief(chief) and cluster.worker_index(chief) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"cluster": ', "TF_CONFIG is not valid JSON"),
        ("[1, 2]", "TF_CONFIG must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'has a "task" but no "cluster"'),
        (json.dumps(TWO), 'TF_CONFIG needs "task"'),
        (_config(2), "TF_CONFIG task index 2 is out of range: the cluster has 2 'worker'"),
        (_config(-1), "index -1 is out of range"),
        (_config("0"), "task index must be an integer"),
        (_config(0, "ps"), "task type 'ps' is not a job of the cluster"),
        (_config(0, cluster_spec={"cluster": {"worker": ["nohost"]}}), "is not host:port"),
        (_config(0, cluster_spec={"cluster": {"worker": []}}), "non-empty address lists"),
        (_config(0, "ps", {"cluster": {"ps": ["h:1"]}}), 'neither a "chief" nor a "worker"'),
    ],
)
def test_malformed_tf_config_is_one_line(text, message):
    with pytest.raises(ValueError, match=None) as info:
        cluster.parse_tf_config(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_make_strategy_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    default = tf.distribute.get_strategy()
    for name in ("one_device", "none"):
        assert cluster.make_strategy(name) is default
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    auto = cluster.make_strategy("auto")
    assert isinstance(auto, tf.distribute.MirroredStrategy) if has_gpu else auto is default
    assert isinstance(cluster.make_strategy("mirrored"), tf.distribute.MirroredStrategy)
    # A malformed TF_CONFIG fails before any strategy is created, whatever the choice.
    monkeypatch.setenv("TF_CONFIG", _config(5))
    for name in ("auto", "multi_worker", "one_device"):
        with pytest.raises(ValueError, match="out of range"):
            cluster.make_strategy(name)


def test_auto_picks_multi_worker_when_the_cluster_has_several_tasks(monkeypatch):
    # Creating MultiWorkerMirroredStrategy would start a server in this process: check the
    # choice by replacing the constructor.
    made = []
    monkeypatch.setattr(
        tf.distribute, "MultiWorkerMirroredStrategy", lambda: made.append("mwms") or "mwms"
    )
    monkeypatch.setenv("TF_CONFIG", _config(1))
    assert cluster.make_strategy("auto") == "mwms"
    assert cluster.make_strategy("one_device") is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", _config(0, cluster_spec={"cluster": {"worker": ["h:1"]}}))
    assert cluster.make_strategy("auto") != "mwms"
    assert made == ["mwms"]


def test_multi_worker_after_the_first_op_is_a_clear_error(monkeypatch):
    def too_late():
        raise RuntimeError("Collective ops must be configured at program startup")

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", too_late)
    monkeypatch.setenv("TF_CONFIG", _config(1))
    with pytest.raises(ValueError, match="before any TensorFlow op runs .* program startup"):
        cluster.make_strategy("multi_worker")


def test_watchdog_is_disarmed_by_the_first_step():
    watchdog = cluster.StartupWatchdog(1000.0).start()
    assert watchdog._timer.is_alive()
    watchdog.on_train_batch_end(0)
    watchdog._timer.join(1)
    assert not watchdog._timer.is_alive()
    assert cluster.StartupWatchdog(0).start()._timer is None
