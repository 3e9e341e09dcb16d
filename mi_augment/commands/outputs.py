"""Output paths of the commands, checked before any work so a bad ``--out`` never costs a finished run."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_output_file", "describe_os_error"]


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an ``OSError``: the path it concerns and the system's reason.

    Args:
        exc: the error.
        path: the path to name when the error does not carry one.

    Example:
        >>> describe_os_error(IsADirectoryError(21, "Is a directory", "out"))
        'out: Is a directory'
    """
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {reason}" if where is not None else reason


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse an output file path that cannot be written, before the work that would fill it.

    A path is refused when it is an existing folder, when an existing file in it is not writable, or when
    its nearest existing parent is a file or a folder the user cannot write into (missing folders are
    created later, when the file is saved).

    Args:
        path: the file to write.
        flag: the option's name, for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Raises ``ValueError`` saying what is wrong.

    Example:
        >>> try:
        ...     check_output_file(".", "--out")
        ... except ValueError as exc:
        ...     print(exc)
        --out .: is a folder; give a file name inside it (e.g. ./out.json)
    """
    path = Path(path)
    if str(path) == "" or path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give a file name inside it (e.g. {path}/out.json)")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path}: the file exists and is not writable")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: folder {parent} is not writable")
    return path
