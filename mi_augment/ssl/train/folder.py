"""The run folder (``--out``): a run never replaces another run's files unless asked, and holds a lock while
it runs, so two runs never write into one folder at once.

* A folder that holds a run (``checkpoint.pt``, ``results.json`` or ``encoder.pt``) is refused unless
  ``--resume`` (continue it) or ``--overwrite`` (delete its files first) is given.
* ``--resume`` needs ``checkpoint.pt``; without one it is an error naming the folder.
* ``.lock`` holds the running process's id and host; a lock whose process is gone (same host) is stale and
  taken over with a note.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .checkpoint import CHECKPOINT, RESULTS

__all__ = ["LOCK", "RUN_FILES", "FolderLock", "RunFolderError", "prepare_run_folder"]

#: the lock file inside the run folder
LOCK = ".lock"
#: the files a run writes (a folder holding any of the first three holds a run)
RUN_FILES = (CHECKPOINT, RESULTS, "encoder.pt", "curves.png")


class RunFolderError(ValueError):
    """An ``--out`` folder that this run may not use as asked; the message names the folder and the way out."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class FolderLock:
    """An exclusive lock on a run folder: ``.lock`` created with ``O_EXCL``, holding ``{"pid", "host"}``.

    A lock left by a process that no longer exists on this host is stale: :meth:`acquire` replaces it and
    returns a note saying so. Use as a context manager, or :meth:`acquire` / :meth:`release`.

    Args:
        folder: the run folder (created if missing).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, FolderLock(d) as lock:
        ...     (Path(d) / ".lock").is_file()
        True
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False
        self.note = ""

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
        return True

    def acquire(self) -> str:
        """Take the lock; return a note when a stale lock was replaced (else ``""``). Raises
        :class:`RunFolderError` naming the process when a live run holds it."""
        if self.folder.exists() and not self.folder.is_dir():
            raise RunFolderError(f"--out {self.folder} is a file, not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            if self._create():
                self.held = True
                return self.note
            owner = self._owner()
            pid, host = owner.get("pid"), owner.get("host")
            elsewhere = host is not None and host != socket.gethostname()  # its process cannot be checked
            starting = not owner and time.time() - self._mtime() < 10  # created, owner not written yet
            if elsewhere or starting or (isinstance(pid, int) and _alive(pid)):
                raise RunFolderError(f"{self.folder} is in use by another run (process {pid} on {host}, lock "
                                     f"{self.path}); wait for it to finish or choose another --out")
            self.note = f"removed a stale lock {self.path} (process {pid} is gone)"
            self.path.unlink(missing_ok=True)
        raise RunFolderError(f"{self.folder} is locked ({self.path}) and the lock could not be taken; delete it if "
                             "no run uses this folder")

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        """Remove the lock if this object holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_run_folder(folder: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Check that a run may use ``folder`` as asked, before any work; with ``overwrite``, delete the previous
    run's files (:data:`RUN_FILES`). Call it while holding the folder's :class:`FolderLock`.

    Args:
        folder: the ``--out`` folder.
        resume: continue the run whose ``checkpoint.pt`` is there (an error if there is none).
        overwrite: replace whatever run is there.

    Raises :class:`RunFolderError` for a folder that holds a run when neither is given, for ``resume`` without a
    checkpoint, and for both flags at once.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     prepare_run_folder(d).is_dir()
        True
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--out {folder} is a file, not a folder")
    present = [name for name in RUN_FILES[:3] if (folder / name).is_file()]
    if resume:
        if not (folder / CHECKPOINT).is_file():
            raise RunFolderError(f"--resume: {folder} holds no {CHECKPOINT} to continue from; run without --resume "
                                 "to start a new run there")
    elif present and not overwrite:
        raise RunFolderError(f"{folder} already holds a run ({', '.join(present)}); pass --resume to continue it, "
                             "--overwrite to replace it, or choose another --out")
    elif overwrite:
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
