"""File permissions of the workflow's outputs.

A temporary file made by :func:`tempfile.mkstemp` (our atomic Parquet writes) and the ``.safetensors`` files the
``safetensors`` library writes are created with mode 0600, so on a shared machine or cluster the team could not
read each other's results. Every output gets the mode a plain ``open(path, "w")`` would give it under the
process's umask (0644 under the usual umask 022).
"""

from __future__ import annotations

import os
from pathlib import Path


def umask_mode() -> int:
    """The mode of a new file under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or every file under a folder) the mode of a newly created file under the umask."""
    path = Path(path)
    mode = umask_mode()
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        os.chmod(file, mode)
