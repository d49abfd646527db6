"""Load QA tables from the Hugging Face hub or from local files through one ``datasets`` code path.

Users bring WPU from the hub, their own CSV/JSON/Parquet exports, or the embedded sample; all three go through
``datasets.load_dataset`` so that a local file behaves exactly like a hub dataset, and the column mapping in the
config turns any of them into the project's column names. Every failure names the source and what was expected.

Every cell of a local CSV or JSON file is read as text exactly as written: an answer ``007``, ``1.80`` or ``1902``
stays that string (type inference would make it ``7``, ``1.8``, ``1902.0``), and ``None``, ``NA``, ``N/A``, ``null``
or ``nan`` stay text too (they are valid answers: "How many children did she have?" -> "None"). Only a really
empty CSV cell, or a JSON ``null``, is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from ..core.errors import InputError

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
    if fmt == "json":
        df = _load_json_as_text(path)
    else:
        options = {}
        if fmt == "csv":  # every column a string, as written; no "NA"/"None"/"nan" -> missing
            header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
            options = {
                "features": datasets.Features({str(c): datasets.Value("string") for c in header}),
                "keep_default_na": False,
            }
        try:
            ds = datasets.load_dataset(fmt, data_files=str(path), split="train", keep_in_memory=True, **options)
        except Exception as exc:  # datasets wraps parser errors in many types; re-raised with the file named
            raise InputError(f"{path}: could not be read as {fmt}: {exc}") from exc
        df = ds.to_pandas()
    if len(df) == 0:
        raise InputError(f"{path}: the file has no data rows")
    return df


def _text_json(text: str) -> Any:
    """JSON with every number kept as the text it was written as (``1.80`` stays ``"1.80"``)."""
    return json.loads(text, parse_int=str, parse_float=str, parse_constant=str)


def _json_lines(path: Path, text: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(_text_json(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
    return records


def _load_json_as_text(path: Path) -> pd.DataFrame:
    """JSON Lines, a JSON list of records or an object of columns (``DataFrame.to_json``'s default), numbers as
    text. A ``.json`` file may hold JSON Lines too, as ``datasets`` allows."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        data: Any = _json_lines(path, text)
    else:
        try:
            data = _text_json(text)
        except json.JSONDecodeError as exc:
            try:
                data = _json_lines(path, text)
            except InputError:
                raise InputError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from exc
    if isinstance(data, dict):
        if data and all(isinstance(v, list | dict) for v in data.values()):
            return pd.DataFrame(data)
        data = [data]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return pd.DataFrame.from_records(data)
    raise InputError(
        f"{path}: expected JSON records: one object per line (JSON Lines), a list of objects, or an object of columns"
    )


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


def missing_columns(columns: Sequence[str], mapping: Mapping[str, str], where: str) -> str | None:
    """The error for the columns of ``mapping`` (ours -> the source's) that ``columns`` lacks, or None."""
    missing = {ours: theirs for ours, theirs in mapping.items() if theirs not in columns}
    if not missing:
        return None
    wanted = ", ".join(f"{theirs!r} (for {ours})" for ours, theirs in missing.items())
    return (
        f"{where}: missing column(s) {wanted}; the file has {list(columns)}. "
        "Fix the file or the `columns:` mapping in the config"
    )


def map_columns(df: pd.DataFrame, mapping: Mapping[str, str], where: str) -> pd.DataFrame:
    """Rename the configured source columns to the project's names, failing on any that is absent."""
    check_column_mapping(mapping, where)
    problem = missing_columns(list(df.columns), mapping, where)
    if problem:
        raise InputError(problem)
    return df[list(mapping.values())].rename(columns={v: k for k, v in mapping.items()})


def local_header(spec: Mapping[str, Any]) -> list[str] | None:
    """The column names of a local CSV or Parquet source, read from its header alone (no data rows), so that the
    config can be checked against its data when the workflow is parsed.

    None where the header cannot be had cheaply or cleanly: a hub dataset, a JSON file (its keys can differ row by
    row), a missing file, or a CSV whose first line is empty or not UTF-8. The data stage reads those sources
    whole and names the file, line and problem (:func:`load_local`)."""
    path = Path(spec["path"])
    fmt = LOCAL_FORMATS.get(path.suffix.lower())
    if spec.get("source") == "hub" or fmt not in ("csv", "parquet") or not path.is_file():
        return None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8").columns]
    except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None  # load_local reports these with the line and byte


def check_column_mapping(mapping: Mapping[str, str], where: str) -> None:
    """One source column can play one role only: ``{person: question}`` would make every question its own person
    (and lose the person column), so a column named for two roles is refused with the mapping spelled out."""
    roles: dict[str, list[str]] = {}
    for ours, theirs in mapping.items():
        roles.setdefault(theirs, []).append(ours)
    shared = {theirs: ours for theirs, ours in roles.items() if len(ours) > 1}
    if shared:
        detail = "; ".join(f"column {theirs!r} is mapped to {' and '.join(ours)}" for theirs, ours in shared.items())
        raise InputError(
            f"{where}: the `columns:` mapping {dict(mapping)} gives one column two roles ({detail}); each of "
            "person, question and answer needs its own column. A file without a person column needs one added "
            "(WPU's is `title`)"
        )
