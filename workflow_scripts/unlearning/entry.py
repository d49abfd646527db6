"""What every Snakemake entry script needs around the library call: logging and clean failure.

Each stage logs both to its Snakemake log file (kept for the user and shown on failure) and to stderr (where
progress bars also go), and a user-fixable :class:`InputError` ends the job with its message alone rather than a
traceback that buries it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def stage(name: str, log_files: list[str] | tuple[str, ...] = ()) -> Iterator[logging.Logger]:
    """Run one stage: log to its file(s) and stderr; turn an InputError into a one-line failure."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for path in log_files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger = logging.getLogger(name)
    try:
        yield logger
    except InputError as exc:
        logger.error("%s", exc)
        raise SystemExit(f"{name} failed: {exc}") from None
