"""Local multi-worker training: N `train` processes on 127.0.0.1 with their `TF_CONFIG`.

For tests and for users without a scheduler. TensorFlow's `MultiWorkerMirroredStrategy` does all
the coordination (all-reduce, synchronised BatchNorm, fault tolerance through `BackupAndRestore`);
this module only starts the processes, gives each its `TF_CONFIG` (the same cluster, its own
task index), streams their output with a `[worker i]` prefix, and stops all of them as soon as
one fails, so that a broken worker ends the run instead of leaving the others waiting forever in
a collective. The workers' temporary files (a non-chief worker writes its checkpoints to one) go to
a folder of the launcher's, removed when the run ends, however the workers ended: a worker that
is stopped or killed cannot remove its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports that were free a moment ago (bound to port 0, then released)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def tf_configs(num_workers: int, host: str = "127.0.0.1", ports: Sequence[int] = ()) -> list[str]:
    """One `TF_CONFIG` JSON string per worker of a local cluster (worker 0 is the chief)."""
    if num_workers < 1:
        raise ValueError(f"--workers must be >= 1, got {num_workers}")
    ports = list(ports) or free_ports(num_workers, host)
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(num_workers)
    ]


def _stream(process: subprocess.Popen, prefix: str, out) -> None:
    for line in iter(process.stdout.readline, ""):
        out.write(f"{prefix}{line}")
        out.flush()


def exit_status(returncode: int) -> int:
    """A worker's status as a shell reports it: 128 + n for a death by signal n (Popen: -n)."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    """ "exited with status 2" or "was killed by signal SIGSEGV (11)"."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by signal {name} ({-returncode})"


def _stop(processes: list[subprocess.Popen], grace_seconds: float) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(
    num_workers: int,
    train_args: Sequence[str],
    *,
    python: str = sys.executable,
    module: str = "stacked_hourglass.train",
    ports: Sequence[int] = (),
    grace_seconds: float = 10.0,
    out=None,
) -> int:
    """Runs `python -m module *train_args` as `num_workers` workers; returns the exit status.

    Every worker gets `--distribution=multi_worker` (unless the arguments set a distribution)
    and its `TF_CONFIG`. The first worker to exit non-zero stops the others (SIGTERM, then
    SIGKILL after `grace_seconds`) and its status is returned (128 + n for a worker killed by
    signal n, as a shell reports it); 0 when all finish. Every worker's
    TMPDIR is a fresh folder under the launcher's temporary folder, removed at the end.
    """
    out = out or sys.stdout
    args = list(train_args)
    if not any(a.startswith("--distribution") for a in args):
        args.append("--distribution=multi_worker")
    configs = tf_configs(num_workers, ports=ports)
    processes, threads = [], []
    status = 0
    scratch = tempfile.mkdtemp(prefix="hourglass-launch-")
    try:
        for index, tf_config in enumerate(configs):
            tmp = os.path.join(scratch, f"worker{index}")
            os.mkdir(tmp)
            env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1", "TMPDIR": tmp}
            process = subprocess.Popen(
                [python, "-m", module, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            processes.append(process)
            thread = threading.Thread(target=_stream, args=(process, f"[worker {index}] ", out))
            thread.start()
            threads.append(thread)
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0)]
            if failed:
                status = exit_status(failed[0].returncode)
                index = processes.index(failed[0])
                what = describe_exit(failed[0].returncode)
                out.write(f"launch: worker {index} {what}; stopping all\n")
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        status = 130
    finally:
        # Also when a worker could not be started: the ones already running are stopped.
        _stop(processes, grace_seconds)
        for thread in threads:
            thread.join()
        shutil.rmtree(scratch, ignore_errors=True)
    if status == 0:
        status = next((exit_status(p.returncode) for p in processes if p.returncode), 0)
    return status
