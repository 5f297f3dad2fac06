"""An exclusive lock on a folder for a process's life: two runs never write one model directory.

A second `train` on the same `--model_dir` (a command repeated in another terminal, two workers
given the same TF_CONFIG index, a scheduler's retry while the first attempt still runs) would
overwrite `config.json`, append a second header to `history.csv` and race on checkpoints. The
lock file `FOLDER/run.lock` holds who has it (host, PID, start time, command) as JSON.

- Local folders: `fcntl.flock` on the lock file. The kernel releases it when the process dies,
  however it dies, so a lock file left behind by a dead run is taken over (with a warning naming
  the dead holder); a live holder makes `DirectoryLock.acquire` raise `LockHeld`.
- URLs (`gs://`, other object stores): no lock primitive exists through `tf.io.gfile`. The lock
  file is written when absent and read back; one held by a process of this host whose PID is
  gone is taken over with a warning; one held by another host is refused (its liveness cannot
  be known from here: delete the file if that run is dead). Two starts within the same second
  can both pass; schedulers that retry only after a failure are safe.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys

from stacked_hourglass.utils import files

LOCK_FILE = "run.lock"


class LockHeld(OSError):
    """Another live process holds the folder's lock; the message names it."""


def _holder() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    }


def _describe(holder: dict) -> str:
    return (
        f"PID {holder.get('pid')} on {holder.get('host')} since {holder.get('started')} "
        f"({holder.get('command') or 'unknown command'})"
    )


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _parse(text: str) -> dict:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


class DirectoryLock:
    """`with DirectoryLock(folder):` holds `folder/run.lock` for the block (see module doc).

    Args:
        folder: the folder to lock (created if missing); a local path or a URL.
        warn: where the take-over warning goes (default: stderr).
    """

    def __init__(self, folder: str, warn=None):
        self.folder = os.fspath(folder)
        self.path = files.join(self.folder, LOCK_FILE)
        self._warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Takes the lock; `LockHeld` naming the holder when a live process has it."""
        files.makedirs(self.folder)
        if files.is_url(self.folder):
            self._acquire_url()
        else:
            self._acquire_local()

    def _acquire_local(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _parse(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise LockHeld(
                f"{self.folder} is in use by {_describe(holder)}; lock file {self.path}"
            ) from None
        previous = _parse(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
        if previous and previous.get("pid") != os.getpid():
            self._warn(f"{self.path}: taking over the lock left by {_describe(previous)}")
        payload = json.dumps(_holder()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        os.fsync(fd)
        self._fd = fd

    def _acquire_url(self) -> None:
        if files.exists(self.path):
            holder = _parse(files.read_bytes(self.path).decode("utf-8", "replace"))
            same_host = holder.get("host") == socket.gethostname()
            if not same_host or _pid_alive(holder.get("pid")):
                raise LockHeld(
                    f"{self.folder} is in use by {_describe(holder)}; lock file {self.path} "
                    "(delete it if that run is no longer running)"
                )
            self._warn(f"{self.path}: taking over the lock left by {_describe(holder)}")
        me = _holder()
        files.write_text(self.path, json.dumps(me))
        if _parse(files.read_bytes(self.path).decode("utf-8", "replace")) != me:
            raise LockHeld(f"{self.folder}: another run took the lock {self.path} at the same time")
        self._fd = -1

    def release(self) -> None:
        """Releases the lock (a local lock file stays, emptied; a URL's is removed)."""
        if self._fd is None:
            return
        if self._fd >= 0:
            import fcntl

            # Emptied first: a lock file with a holder in it means that holder died holding it.
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        else:
            files.remove(self.path)
        self._fd = None
