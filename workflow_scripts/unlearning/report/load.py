"""Reading the report's inputs: the summary's long table, per-row scores, training logs and benchmark files."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..core.errors import InputError
from ..core.parquet_io import read_parquet
from ..scoring.evaluation import split_attacks

SUMMARY_COLUMNS = ("model", "variant", "split", "subset", "kind", "metric", "value")
#: the change rows' bootstrap intervals (summaries from before intervals lack them)
INTERVAL_COLUMNS = ("ci_low", "ci_high", "ci_note")
SCORE_COLUMNS = ("id", "split", "question", "reference", "generation", "rougeL_recall")
#: columns every method's log has; a method may add more (e.g. DPO's rewards_*)
LOG_COLUMNS = ("step", "loss")
#: summary rows that are not a model variant (older summaries hold precomputed changes under this name)
NOT_VARIANTS = frozenset({"headline"})
#: the summary's kind of rows over every probe kind
ALL_KINDS = "all"


def load_summary(path: Path) -> pd.DataFrame:
    """The long table ``model, variant, split, subset, kind, metric, value`` and, where the summary has them, the
    intervals ``ci_low, ci_high, ci_note``; a summary without ``subset`` is all ``all``, one without ``kind`` (before
    probe kinds) is all ``all`` kinds."""
    df = read_parquet(path, columns=[c for c in SUMMARY_COLUMNS if c not in ("subset", "kind")])
    if "attack" in pq.read_schema(path).names:  # the attacked runs' rows share the variants' keys: set them apart
        attack = read_parquet(path, columns=["attack"])["attack"].to_numpy()
        df = split_attacks(df.assign(attack=attack))[0].drop(columns="attack")
    for col in ("subset", "kind"):
        if col not in df.columns:
            df[col] = "all"
    columns = [*SUMMARY_COLUMNS, *(c for c in INTERVAL_COLUMNS if c in df.columns)]
    df = df.loc[~df["variant"].isin(NOT_VARIANTS), columns].copy()
    for col in ("model", "variant", "split", "subset", "kind", "metric"):
        df[col] = df[col].astype(str)
    for col in ("value", "ci_low", "ci_high"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.reset_index(drop=True)


def load_attacks(path: Path) -> pd.DataFrame:
    """The summary's attacked-run rows (:data:`SUMMARY_COLUMNS`, the intervals and ``attack``); empty for a summary
    from before attacks."""
    rows = split_attacks(read_parquet(path))[1]
    return rows[[*SUMMARY_COLUMNS, *INTERVAL_COLUMNS, "attack"]].reset_index(drop=True) if len(rows) else rows


def load_scores(scores: Mapping[str, Mapping[str, Path]]) -> dict[str, dict[str, pd.DataFrame]]:
    """model -> variant -> per-row scores (the columns the examples need, plus ``person`` where present)."""
    return {
        str(model): {str(variant): read_parquet(path, columns=SCORE_COLUMNS) for variant, path in variants.items()}
        for model, variants in scores.items()
    }


def load_training_logs(logs: Mapping[str, Mapping[str, Path]]) -> dict[str, dict[str, pd.DataFrame]]:
    """model -> method -> per-step log, numeric, sorted by step."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for model, methods in logs.items():
        out[str(model)] = {}
        for method, path in methods.items():
            df = read_parquet(path, columns=LOG_COLUMNS)
            for col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="coerce")
            out[str(model)][str(method)] = df.sort_values("step", kind="mergesort").reset_index(drop=True)
    return out


def load_benchmarks(benchmarks: Mapping[str, Path]) -> pd.DataFrame:
    """One row per job label: mean wall seconds, peak max RSS (MB), number of repeats in the TSV."""
    rows = []
    for label, path in benchmarks.items():
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: benchmark file of {label!r} not found")
        try:
            df = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a Snakemake benchmark TSV ({exc})") from exc
        if "s" not in df.columns or df.empty:
            raise InputError(f"{path}: expected a Snakemake benchmark TSV with an 's' column and one row or more")
        seconds = pd.to_numeric(df["s"], errors="coerce")
        rss = pd.to_numeric(df["max_rss"], errors="coerce") if "max_rss" in df.columns else pd.Series([math.nan])
        rows.append(
            {
                "job": str(label),
                "seconds": float(seconds.mean()),
                "max_rss_mb": float(rss.max()) if rss.notna().any() else math.nan,
                "repeats": len(df),
            }
        )
    return pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb", "repeats"])
