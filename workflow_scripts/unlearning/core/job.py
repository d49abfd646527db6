"""What every Snakemake entry script needs around the library call: logging and clean failure.

Each stage logs both to its Snakemake log file (kept for the user and shown on failure) and to stderr (where
progress bars also go). Whatever ends a stage early is written to its log file, because Snakemake points the user
there ("check log file(s) for error details") and on a cluster stderr is in another file:

- a user-fixable :class:`InputError` as its one-line message (a traceback would bury it);
- any other exception with its full traceback;
- an interrupt or a SIGTERM (a scheduler's time limit, ``scancel``, Snakemake stopping its jobs) as one line.

Entry scripts import their library modules *inside* the ``with stage(...)`` block, so that a failing import (a
missing package, a broken CUDA install) reaches the log too.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Terminated(BaseException):
    """SIGTERM reached the job; a BaseException so that library code's ``except Exception`` does not swallow it."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def stage(name: str, log_files: list[str] | tuple[str, ...] = ()) -> Iterator[logging.Logger]:
    """Run one stage: log to its file(s) and stderr; every failure ends up in the log file."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for path in log_files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger = logging.getLogger(name)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if main_thread:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield logger
    except InputError as exc:
        logger.error("%s", exc)
        raise SystemExit(f"{name} failed (input error, message above and in the log)") from None
    except Terminated as exc:
        logger.error("%s stopped by %s (a time limit, scancel or Snakemake ending its jobs)", name, exc)
        raise SystemExit(128 + signal.SIGTERM) from None
    except KeyboardInterrupt:
        logger.error("%s interrupted", name)
        raise
    except Exception as exc:
        logger.exception("%s failed: %s: %s", name, type(exc).__name__, exc)
        raise SystemExit(f"{name} failed ({type(exc).__name__}; traceback above and in the log)") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        for handler in handlers:
            handler.flush()
