"""Load QA tables from the Hugging Face hub or from local files through one ``datasets`` code path.

Users bring WPU from the hub, their own CSV/JSON/Parquet exports, or the embedded sample; all three go through
``datasets.load_dataset`` so that a local file behaves exactly like a hub dataset, and the column mapping in the
config turns any of them into the project's column names. Every failure names the source and what was expected.

Every cell of a local CSV or JSON file is read as text exactly as written: an answer ``007``, ``1.80`` or ``1902``
stays that string (type inference would make it ``7``, ``1.8``, ``1902.0``), and ``None``, ``NA``, ``N/A``, ``null``
or ``nan`` stay text too (they are valid answers: "How many children did she have?" -> "None"). Only a really
empty CSV cell, or a JSON ``null``, is missing.

A local file is read as its content is, not as its name says (:func:`sniff`): Parquet named ``.csv``, JSON Lines
named ``.json``, tab- or semicolon-separated text named ``.csv``, UTF-16 text with a byte-order mark are read, with a
log line where the extension disagrees; content no reader takes (an Excel workbook, a zip or gzip file, binary data,
an empty file) is an error that names what the file is. The header check when the workflow is parsed
(:func:`local_header`) reads the file the same way.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from ..core.errors import InputError

LOCAL_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
#: what each extension promises, in messages
EXTENSION_CONTENT = {
    ".csv": "comma-separated text (CSV)",
    ".tsv": "tab-separated text (TSV)",
    ".json": "JSON",
    ".jsonl": "JSON Lines",
    ".parquet": "Parquet",
}
#: field separators a header line is tried with, by name
SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}
SEPARATED = {",": "comma-separated text (CSV)", "\t": "tab-separated text (TSV)", ";": "semicolon-separated text"}
SNIFF_BYTES = 1 << 16
#: byte-order marks: (the mark, the codec that decodes what follows it, the encoding the CSV readers are given)
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),  # before UTF-16 LE, whose mark starts it
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)
SPREADSHEET_HINT = "export the sheet as CSV (in Excel: File > Save As > CSV UTF-8) and point the config at that file"
HUB_HINT = (
    "the Hugging Face hub is unreachable (offline, or HF_HUB_OFFLINE=1). Download the dataset where the hub is "
    "reachable and point the config at the local file instead: `source: local` with `path: <file.csv|tsv|json|"
    "jsonl|parquet>`, and map its columns under `columns:`"
)
log = logging.getLogger(__name__)


def describe(spec: Mapping[str, Any]) -> str:
    """A short human name for a data source, used in every error message."""
    if "names" in spec:
        return f"the config's names list ({len(spec['names'])} names)"
    if spec.get("source") == "hub":
        name = f" (config {spec['name']})" if spec.get("name") else ""
        return f"hub dataset {spec['path']}{name}, split {spec.get('split', 'train')}"
    return str(spec["path"])


@dataclass(frozen=True)
class Content:
    """What a local file holds, judged from its first bytes rather than its name (:func:`sniff`)."""

    fmt: str  #: the reader: csv, json or parquet
    what: str  #: the content in words, for messages: "Parquet", "JSON Lines", "tab-separated text (TSV)", ...
    sep: str = ","  #: the field separator of csv content
    encoding: str = "utf-8"  #: the encoding the CSV readers are given (they skip a byte-order mark themselves)
    codec: str = "utf-8"  #: the codec of the text after its byte-order mark
    bom: int = 0  #: the byte-order mark's length
    note: str | None = None  #: set where the extension says otherwise: the log line that says how it was read


def _binary_kind(path: Path, head: bytes) -> tuple[str, str] | None:
    """(what the file is, what to do) for the binary files people mistake for a data table, or None."""
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                mimetype = archive.read("mimetype") if "mimetype" in names else b""
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive", "save the table as CSV (UTF-8), JSON Lines or Parquet"
        if any(name.startswith("xl/") for name in names):
            return "an Excel workbook (.xlsx, a zip archive)", SPREADSHEET_HINT
        if b"opendocument.spreadsheet" in mimetype:
            return "an OpenDocument spreadsheet (.ods, a zip archive)", SPREADSHEET_HINT
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        return f"a zip archive (holding {shown})", "extract the table from it"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "an old-style Microsoft Office file (an Excel .xls workbook?)", SPREADSHEET_HINT
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed", "decompress it first (gunzip)"
    if head.startswith(b"ARROW1"):
        return "an Arrow IPC (Feather) file", "write it as Parquet instead (pandas: DataFrame.to_parquet)"
    if b"\x00" in head and not head.startswith(tuple(bom for bom, _, _ in BOMS)):
        pairs = head[: len(head) // 2 * 2]
        odd, even = pairs[1::2].count(0), pairs[0::2].count(0)
        if max(odd, even) > 0.3 * (len(pairs) // 2) and min(odd, even) <= 0.05 * max(odd, even):
            return "UTF-16 text without a byte-order mark", "re-save it as UTF-8"
        return f"binary data, not text (it starts with {head[:12]!r})", (
            "save the table as CSV (UTF-8), JSON Lines or Parquet"
        )
    return None


def _fields(line: str, sep: str) -> int:
    return len(next(csv.reader([line], delimiter=sep), []))


def sniff(path: str | Path) -> Content:
    """What the local file ``path`` holds, from its first 64 KiB: Parquet (magic bytes ``PAR1``), JSON or JSON
    Lines (the first character ``{`` or ``[``), or delimited text, whose separator is the one of :data:`SEPARATORS`
    that splits the header line into the most fields (the extension's own on a tie). UTF-8, UTF-16 and UTF-32 text
    with a byte-order mark is read; the extension is only a tie-breaker.

    Content the readers cannot take (an Excel workbook, a zip or gzip file, UTF-16 without a byte-order mark,
    other binary data), an empty file, an unsupported extension or a missing file raise :class:`InputError`
    naming the file, its extension and what its content looks like. Where content and extension disagree but the
    content can be read, :attr:`Content.note` says so (the loader logs it, the preflight shows it as a warning).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = LOCAL_FORMATS.get(suffix)
    if fmt is None:
        hint = f"; {SPREADSHEET_HINT}" if suffix in (".xlsx", ".xls", ".xlsm", ".ods") else ""
        raise InputError(f"{path}: unsupported file type {suffix!r}; expected one of {sorted(LOCAL_FORMATS)}{hint}")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    promised = EXTENSION_CONTENT[suffix]
    if head.startswith(b"PAR1"):
        return _content(path, Content("parquet", "Parquet"), promised, "it starts with Parquet's magic bytes PAR1")
    binary = _binary_kind(path, head)
    if binary is not None:
        kind, advice = binary
        raise InputError(f"{path}: the file is {kind}, not {promised} as its extension {suffix!r} says; {advice}")
    bom, codec, encoding = next(((b, c, e) for b, c, e in BOMS if head.startswith(b)), (b"", "utf-8", "utf-8"))
    text = head[len(bom) :].decode(codec, errors="replace")
    body = text.lstrip()
    if not body and len(head) < SNIFF_BYTES:
        raise InputError(f"{path}: the file is empty (expected {_expected(suffix)})")
    text_kind = {"bom": len(bom), "codec": codec, "encoding": encoding}
    if body[:1] in ("{", "["):
        lines = [line for line in body.splitlines() if line.strip()]
        what = "JSON Lines" if len(lines) > 1 and _is_json(lines[0]) and lines[1].lstrip()[:1] == "{" else "JSON"
        return _content(path, Content("json", what, **text_kind), promised, f"it is text starting with {body[0]!r}")
    header = next((line for line in body.splitlines() if line.strip()), "")
    own = "\t" if suffix == ".tsv" else ","
    counts = {sep: _fields(header, sep) for sep in SEPARATORS}
    sep = max(counts, key=lambda s: (counts[s], s == own))
    if counts[sep] < 2:
        if fmt == "json":  # not JSON, and not a table either: the JSON reader names the line and the problem
            return Content("json", "JSON", **text_kind)
        if fmt == "parquet":
            raise InputError(
                f"{path}: the file is text, not Parquet as its extension {suffix!r} says (it starts with "
                f"{header[:60]!r}); save the table as Parquet, or as CSV (UTF-8) with a .csv extension"
            )
        sep = own
    why = f"its header line has {counts[sep]} {SEPARATORS[sep]}-separated fields"
    return _content(path, Content("csv", SEPARATED[sep], sep=sep, **text_kind), promised, why)


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def _expected(suffix: str) -> str:
    fmt = LOCAL_FORMATS[suffix]
    return {"csv": "a header row and at least one data row", "json": "JSON records", "parquet": "a Parquet table"}[fmt]


def _content(path: Path, content: Content, promised: str, why: str) -> Content:
    """``content`` with its note set where the extension promised something else."""
    same = promised == content.what or {promised, content.what} <= {"JSON", "JSON Lines"}
    notes = []
    if not same:
        notes.append(
            f"{path}: its content is {content.what}, not {promised} as its extension {path.suffix!r} says ({why}); "
            f"read as {content.what}"
        )
    if content.codec != "utf-8":
        notes.append(f"{path}: read as {_codec_name(content.codec)} text (it starts with a byte-order mark)")
    return replace(content, note="; ".join(notes)) if notes else content


def _codec_name(codec: str) -> str:
    """``utf-16-le`` -> ``UTF-16``."""
    return codec.upper().removesuffix("-LE").removesuffix("-BE")


def _read_text(path: Path, content: Content) -> str:
    """The whole text of a CSV or JSON file, failing with a line number on bytes its encoding cannot decode."""
    raw = path.read_bytes()[content.bom :]
    try:
        text = raw.decode(content.codec)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].decode(content.codec, errors="replace").count("\n") + 1
        bad = raw[exc.start : exc.start + 1]
        raise InputError(
            f"{path}: line {line} is not valid {_codec_name(content.codec)} (byte {exc.start + content.bom}: "
            f"{bad!r}); re-save the file as UTF-8"
        ) from exc
    if not text.strip():
        raise InputError(f"{path}: the file is empty (expected {_expected(path.suffix.lower())})")
    if content.fmt == "csv" and sum(1 for line in text.splitlines() if line.strip()) < 2:
        raise InputError(f"{path}: the file has a header but no data rows")
    return text


def load_local(path: str | Path) -> pd.DataFrame:
    """A local CSV, TSV, JSON, JSONL or Parquet file as a DataFrame, read as its content is (:func:`sniff`)."""
    path = Path(path)
    content = sniff(path)
    if content.note:
        log.warning("%s", content.note)
    if content.fmt == "json":
        df = _load_json_as_text(path, _read_text(path, content))
    else:
        options: dict[str, Any] = {}
        if content.fmt == "csv":  # every column a string, as written; no "NA"/"None"/"nan" -> missing
            _read_text(path, content)
            header = pd.read_csv(path, nrows=0, encoding=content.encoding, sep=content.sep).columns
            options = {
                "features": datasets.Features({str(c): datasets.Value("string") for c in header}),
                "keep_default_na": False,
                "sep": content.sep,
                "encoding": content.encoding,
            }
        try:
            ds = datasets.load_dataset(content.fmt, data_files=str(path), split="train", keep_in_memory=True, **options)
        except Exception as exc:  # datasets wraps parser errors in many types; re-raised with the file named
            raise InputError(f"{path}: could not be read as {content.what}: {exc}") from exc
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


def _load_json_as_text(path: Path, text: str) -> pd.DataFrame:
    """JSON Lines, a JSON list of records or an object of columns (``DataFrame.to_json``'s default), numbers as
    text, whatever the extension (``.json`` or ``.jsonl``): a text that starts with ``[`` is one JSON document; one
    that starts with ``{`` is one document when it parses whole, and JSON Lines when its first line is a JSON value
    of its own (a broken line is then named by its own number, not by where the whole text stopped parsing)."""
    if text.lstrip().startswith("["):
        data: Any = _json_document(path, text)
    else:
        try:
            data = _text_json(text)
        except json.JSONDecodeError as exc:
            first = next((line for line in text.splitlines() if line.strip()), "")
            if not _is_json(first):
                raise InputError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from exc
            data = _json_lines(path, text)
    if isinstance(data, dict):
        if data and all(isinstance(v, list | dict) for v in data.values()):
            return pd.DataFrame(data)
        data = [data]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return pd.DataFrame.from_records(data)
    raise InputError(
        f"{path}: expected JSON records: one object per line (JSON Lines), a list of objects, or an object of columns"
    )


def _json_document(path: Path, text: str) -> Any:
    try:
        return _text_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from exc


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


def local_content(spec: Mapping[str, Any]) -> Content | None:
    """:func:`sniff` of a local source's file; None for a hub dataset or a file that is not there (the data stage
    says so). Raises :class:`InputError` as :func:`load_local` would for content no reader takes."""
    if spec.get("source") == "hub" or not Path(spec["path"]).is_file():
        return None
    return sniff(spec["path"])


def local_header(spec: Mapping[str, Any]) -> list[str] | None:
    """The column names of a local CSV, TSV or Parquet source, read from its header alone (no data rows) the way
    :func:`load_local` reads the file (by its content, :func:`sniff`), so that the config can be checked against its
    data when the workflow is parsed.

    None where the header cannot be had cheaply or cleanly: a hub dataset, JSON content (its keys can differ row by
    row), a missing file, a CSV whose first line is not valid text or a damaged Parquet file. The data stage reads
    those sources whole and names the file, line and problem (:func:`load_local`). Content that no reader takes (an
    Excel workbook, a zip file, an empty file) raises the same :class:`InputError` as :func:`load_local`."""
    content = local_content(spec)
    if content is None or content.fmt == "json":
        return None
    path = Path(spec["path"])
    if content.fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError):
            return None  # load_local reports it with pyarrow's reason
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, encoding=content.encoding, sep=content.sep).columns]
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
