"""Deterministic file names of the report's plots, importable without matplotlib (Snakemake's DAG parse uses it)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

TRADEOFF_PLOT = "tradeoff.png"
SWEEPS_PLOT = "sweeps.png"
ATTACKS_PLOT = "attacks.png"


def safe_name(model: str) -> str:
    """``model`` reduced to characters that are safe in a file name (and an HTML id)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(model)) or "_"


def split_plot(model: str) -> str:
    """Per-split bars of every variant of ``model``."""
    return f"splits_{safe_name(model)}.png"


def training_plot(model: str) -> str:
    """Training curves of every method of ``model``."""
    return f"training_{safe_name(model)}.png"


def plot_names(models: Sequence[str]) -> list[str]:
    """File names (inside the plot folder) of every PNG the report writes for ``models``; the set never depends on
    the data, so a Snakemake rule can declare them as outputs."""
    return [*map(split_plot, models), *map(training_plot, models), TRADEOFF_PLOT, SWEEPS_PLOT, ATTACKS_PLOT]


def plot_files(plot_dir: str | os.PathLike, models: Sequence[str]) -> list[Path]:
    """Paths of :func:`plot_names` under ``plot_dir`` (for a Snakemake rule's ``output:``)."""
    return [Path(plot_dir) / name for name in plot_names(models)]
