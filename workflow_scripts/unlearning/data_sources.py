"""Load QA tables from the Hugging Face hub or from local files through one ``datasets`` code path.

Users bring WPU from the hub, their own CSV/JSON/Parquet exports, or the embedded sample; all three go through
``datasets.load_dataset`` so that a local file behaves exactly like a hub dataset, and the column mapping in the
config turns any of them into the project's column names. Every failure names the source and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from .errors import InputError

LOCAL_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
HUB_HINT = (
    "the Hugging Face hub is unreachable (offline, or HF_HUB_OFFLINE=1). Download the dataset where the hub is "
    "reachable and point the config at the local file instead: `source: local` with `path: <file.csv|json|jsonl|"
    "parquet>`, and map its columns under `columns:`"
)


def describe(spec: Mapping[str, Any]) -> str:
    """A short human name for a data source, used in every error message."""
    if spec.get("source") == "hub":
        name = f" (config {spec['name']})" if spec.get("name") else ""
        return f"hub dataset {spec['path']}{name}, split {spec.get('split', 'train')}"
    return str(spec["path"])


def _check_text_file(path: Path, fmt: str) -> None:
    """Fail early, with a line number, on an empty or non-UTF-8 text file (datasets would give a vague error)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty (expected a header row and at least one data row)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}: line {line} is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "re-save the file as UTF-8"
        ) from exc
    if fmt == "csv" and sum(1 for line in raw.splitlines() if line.strip()) < 2:
        raise InputError(f"{path}: the file has a header but no data rows")


def load_local(path: str | Path) -> pd.DataFrame:
    """A local CSV, JSON, JSONL or Parquet file as a DataFrame, read through ``datasets``."""
    path = Path(path)
    fmt = LOCAL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; expected one of {sorted(LOCAL_FORMATS)}")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if fmt in ("csv", "json"):
        _check_text_file(path, fmt)
    try:
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train", keep_in_memory=True)
    except Exception as exc:  # datasets wraps parser errors in many types; re-raised with the file named
        raise InputError(f"{path}: could not be read as {fmt}: {exc}") from exc
    df = ds.to_pandas()
    if len(df) == 0:
        raise InputError(f"{path}: the file has no data rows")
    return df


def load_hub(path: str, name: str | None = None, split: str = "train") -> pd.DataFrame:
    """A hub dataset split as a DataFrame; offline, an error that says how to use local files."""
    try:
        ds = datasets.load_dataset(path, name, split=split)
    except ConnectionError as exc:
        raise InputError(f"hub dataset {path} ({name}): {HUB_HINT}") from exc
    return ds.to_pandas()


def load_source(spec: Mapping[str, Any]) -> pd.DataFrame:
    """Load one configured source (``source: hub|local``) as a raw DataFrame."""
    if spec.get("source") == "hub":
        return load_hub(spec["path"], spec.get("name"), spec.get("split", "train"))
    return load_local(spec["path"])


def map_columns(df: pd.DataFrame, mapping: Mapping[str, str], where: str) -> pd.DataFrame:
    """Rename the configured source columns to the project's names, failing on any that is absent."""
    missing = {ours: theirs for ours, theirs in mapping.items() if theirs not in df.columns}
    if missing:
        wanted = ", ".join(f"{theirs!r} (for {ours})" for ours, theirs in missing.items())
        raise InputError(
            f"{where}: missing column(s) {wanted}; the file has {list(df.columns)}. "
            "Fix the file or the `columns:` mapping in the config"
        )
    return df[list(mapping.values())].rename(columns={v: k for k, v in mapping.items()})
