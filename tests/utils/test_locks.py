"""utils/locks.DirectoryLock: one run per folder, a dead holder's lock taken over."""

import json
import os
import subprocess
import sys

import pytest

from stacked_hourglass.utils import locks

_HOLD = """
import sys, time
from stacked_hourglass.utils import locks
lock = locks.DirectoryLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _holder_process(folder):
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    child = _holder_process(tmp_path)
    try:
        with pytest.raises(locks.LockHeld, match=rf"in use by PID {child.pid} on "):
            locks.DirectoryLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path):
    child = _holder_process(tmp_path)
    child.kill()
    child.wait()
    warnings = []
    with locks.DirectoryLock(tmp_path, warn=warnings.append) as lock:
        holder = json.loads((tmp_path / locks.LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and lock.path.endswith(locks.LOCK_FILE)
    assert len(warnings) == 1 and f"PID {child.pid}" in warnings[0]


def test_released_lock_is_taken_again_without_warning(tmp_path):
    warnings = []
    with locks.DirectoryLock(tmp_path, warn=warnings.append):
        pass
    assert (tmp_path / locks.LOCK_FILE).read_text() == ""
    with locks.DirectoryLock(tmp_path, warn=warnings.append):
        pass
    assert warnings == []


def test_same_process_twice_is_refused(tmp_path):
    with locks.DirectoryLock(tmp_path), pytest.raises(locks.LockHeld, match="in use by"):
        locks.DirectoryLock(tmp_path).acquire()


def test_url_lock(tmp_path):
    folder = f"ram://locks/{tmp_path.name}"
    warnings = []
    held = pytest.raises(locks.LockHeld, match="delete it if that run is no longer running")
    with locks.DirectoryLock(folder, warn=warnings.append), held:
        locks.DirectoryLock(folder).acquire()
    # A same-host holder whose PID is gone is taken over.
    from stacked_hourglass.utils import files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    files.write_text(
        f"{folder}/run.lock", json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)})
    )
    with locks.DirectoryLock(folder, warn=warnings.append):
        pass
    assert len(warnings) == 1 and f"PID {int(dead.stdout)}" in warnings[0]
    assert not files.exists(f"{folder}/run.lock")
    # Another host's lock is never taken over.
    files.write_text(f"{folder}/run.lock", json.dumps({"host": "elsewhere", "pid": 1}))
    with pytest.raises(locks.LockHeld, match="PID 1 on elsewhere"):
        locks.DirectoryLock(folder).acquire()
