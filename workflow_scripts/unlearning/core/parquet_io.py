"""Parquet artifacts with provenance metadata, written atomically and read with validation.

Every artifact of the DAG is a Parquet file that a user may open on their own, so each carries the stage that
wrote it, the config slice it depends on (as JSON and as a hash), the run's seed and the library versions. Writes
go to a temporary file in the same folder and are renamed into place, so an interrupted job never leaves a file
that looks finished; reads fail loudly on a truncated or foreign file instead of returning an empty table.

Writes also refuse a column whose Arrow type is (or contains) ``null``: pandas stores an empty or all-missing
column of Python objects as ``object``, which pyarrow can only type as ``null``, so a table that happens to have no
rows would reach the user with ``Null`` columns (Polars) that clash with the same table's real types when unioned
(Polars ``concat``, DuckDB ``UNION``). Every writer must give its columns explicit dtypes instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError
from .file_modes import apply_umask

META_PREFIX = "unlearning."
TRACKED_LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "pandas",
    "pyarrow",
    "rouge-score",
    "nltk",
    "snakemake",
)
#: The pandas dtype for text columns. pandas 3 infers ``str`` for text (stored as Arrow ``large_string``) and keeps
#: it on an empty column; pandas 2 infers ``object``, which pyarrow can only type as ``null`` when the column is empty
#: or all missing, so its nullable ``string`` dtype stands in there.
TEXT_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else "string"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(value: Any) -> str:
    """Short stable hash of a config slice."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def library_versions(names: Iterable[str] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries whose behaviour shapes the results."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def typed_frame(rows: Iterable[Any], dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """A table of ``rows`` (records or sequences) with exactly the columns and dtypes of ``dtypes``, also with no
    rows, so that an empty table is written with the same Arrow types as a full one."""
    return pd.DataFrame(list(rows), columns=list(dtypes)).astype(dict(dtypes))


def null_typed_columns(schema: pa.Schema) -> list[str]:
    """Names of the columns whose Arrow type is ``null`` or nests one (a list of nulls, a struct with a null field)."""

    def has_null(dtype: pa.DataType) -> bool:
        if pa.types.is_null(dtype):
            return True
        return any(has_null(dtype.field(i).type) for i in range(dtype.num_fields))

    return [field.name for field in schema if has_null(field.type)]


def write_parquet(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    stage: str,
    config: Any,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``df`` to ``path`` atomically, with provenance metadata under the ``unlearning.`` prefix.

    Raises ``TypeError`` (naming ``path`` and the columns) and writes nothing if a column would be stored with the
    Arrow type ``null`` (see the module docstring): that is a writer that forgot its dtypes, not a user error.
    """
    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    untyped = null_typed_columns(table.schema)
    if untyped:
        raise TypeError(
            f"{path}: refusing to write column(s) {untyped} of Arrow type null (empty or all-missing columns of "
            "dtype object); give them an explicit dtype so the file keeps its types when it has no rows"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(table.schema.metadata or {})
    fields = {
        "stage": stage,
        "config": canonical_json(config),
        "config_hash": config_hash(config),
        "seed": canonical_json(seed),
        "versions": canonical_json(library_versions()),
    }
    for key, value in (extra or {}).items():
        fields[key] = canonical_json(value)
    for key, value in fields.items():
        meta[(META_PREFIX + key).encode()] = value.encode()
    table = table.replace_schema_metadata(meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_parquet(path: str | os.PathLike, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read an artifact, failing with the file's name if it is corrupt or lacks an expected column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a Parquet artifact)")
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc}); delete it and rerun its stage") from exc
    missing = [c for c in (columns or ()) if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def looks_complete(path: str | os.PathLike) -> bool:
    """Cheap check that a file starts and ends with Parquet's magic bytes (a truncated file does not)."""
    path = Path(path)
    if path.stat().st_size < 12:
        return False
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(-4, os.SEEK_END)
        return head == b"PAR1" and fh.read(4) == b"PAR1"


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``unlearning.`` metadata of an artifact, JSON-decoded where it was JSON."""
    raw = pq.read_schema(path).metadata or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode()
        if not name.startswith(META_PREFIX):
            continue
        text = value.decode()
        try:
            out[name[len(META_PREFIX) :]] = json.loads(text)
        except json.JSONDecodeError:
            out[name[len(META_PREFIX) :]] = text
    return out
