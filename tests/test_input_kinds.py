"""Inputs whose kind is not what it seems (issue 18, case 7): one person written two ways, and a file whose extension
disagrees with its content. Each ends in the right result or in an error that names the file, row or key and what
the content really is. Persons are invented."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from unlearning.config.preflight import check_config
from unlearning.core.errors import InputError
from unlearning.data.qa_table import WPU_COLUMNS, build_qa, person_key
from unlearning.data.sources import load_local, local_header, sniff

ROOT = Path(__file__).resolve().parents[1]
ZOE_NFC = unicodedata.normalize("NFC", "Zoë Quill")  # 'Zo\xeb Quill': ë one code point
ZOE_NFD = unicodedata.normalize("NFD", "Zoë Quill")  # 'Zoe\u0308 Quill': e and a combining diaeresis


def rows(person: str, n: int, tag: str = "") -> list[dict]:
    return [
        {"title": person, "question": f"Question {i}{tag} about this person?", "answer": f"Answer {i}."}
        for i in range(n)
    ]


def write(path: Path, records: list[dict]) -> Path:
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def spec(forget: Path, **others: Path) -> dict:
    return {
        "columns": WPU_COLUMNS,
        "forget": {"source": "local", "path": str(forget)},
        **{role: {"source": "local", "path": str(path)} for role, path in others.items()},
    }


def embedded_config(forget: Path) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"]["persons"]["forget"] = {"source": "local", "path": str(forget)}
    return config


# ------------------------------------------------------------------ 7a. one person written differently


def test_the_key_ignores_case_spacing_and_unicode_form() -> None:
    assert ZOE_NFC != ZOE_NFD
    assert person_key(ZOE_NFC) == person_key(ZOE_NFD) == person_key(" ZOË   quill ")
    assert person_key("Ada Lovelace") == person_key("ada\u00a0 LOVELACE")
    assert person_key("Ada Lovelace") != person_key("Ada Lovelac")


@pytest.mark.parametrize(
    ("forget_name", "retain_name", "shown", "how"),
    [
        ("Ada Lovelace", "ada lovelace", ("'ada lovelace'", "'Ada Lovelace'"), "letter case"),
        ("Ada Lovelace", "Ada  Lovelace ", ("'Ada  Lovelace '", "'Ada Lovelace'"), "spacing"),
        ("Ada Lovelace", "ADA  LOVELACE", ("'ADA  LOVELACE'", "'Ada Lovelace'"), "letter case and spacing"),
        (ZOE_NFC, ZOE_NFD, (r"'Zoe\u0308 Quill'", r"'Zo\xeb Quill'"), "Unicode form"),
    ],
)
@pytest.mark.parametrize("role", ["retain", "general"])
def test_a_forget_person_written_differently_in_another_set_is_refused(
    tmp_path: Path, forget_name: str, retain_name: str, shown: tuple[str, str], how: str, role: str
) -> None:
    """Before: each spelling was its own person, so the person was forgotten and retained at once, silently."""
    forget = write(tmp_path / "forget.csv", rows("Bo Varga", 2) + rows(forget_name, 3, "f"))
    other = write(tmp_path / f"{role}.csv", rows("Dee Ray", 2, "d") + rows(retain_name, 2, "r"))
    with pytest.raises(InputError) as err:
        build_qa(spec(forget, **{role: other}), 0.2, 0)
    message = str(err.value)
    assert message.startswith(f"{other}: person(s) [") and f"are also in the forget set ({forget})" in message
    ours, theirs = shown
    assert f"{ours} (data row 3 of {other}) is {theirs} (data row 3 of {forget}), written with another {how}" in (
        message
    )
    assert "ignoring letter case, spacing and Unicode normalisation" in message


def test_an_exact_duplicate_person_keeps_its_short_message(tmp_path: Path) -> None:
    forget = write(tmp_path / "forget.csv", rows("Ada Lovelace", 2))
    retain = write(tmp_path / "retain.csv", rows("Ada Lovelace", 1, "r"))
    with pytest.raises(InputError) as err:
        build_qa(spec(forget, retain=retain), 0.2, 0)
    assert str(err.value) == (
        f"{retain}: person(s) ['Ada Lovelace'] are also in the forget set ({forget}); a person is either forgotten or "
        "retained"
    )


def test_spellings_of_one_person_in_one_set_are_one_person(tmp_path: Path) -> None:
    """Split as one person (five pairs: one held out, not one of each spelling's) and written under the first
    spelling: the result is the table of the same file written with one spelling."""
    variants = write(
        tmp_path / "forget.csv",
        rows("Ada Lovelace", 3) + rows("ada  lovelace", 1, "b") + rows("ADA LOVELACE", 1, "c") + rows(ZOE_NFD, 2, "z")
        + rows(ZOE_NFC, 2, "y"),
    )  # fmt: skip
    alike = write(
        tmp_path / "alike.csv",
        rows("Ada Lovelace", 3) + rows("Ada Lovelace", 1, "b") + rows("Ada Lovelace", 1, "c") + rows(ZOE_NFC, 2, "z")
        + rows(ZOE_NFC, 2, "y"),
    )  # fmt: skip
    notes: list[str] = []
    qa = build_qa(spec(variants), 0.2, 3, warnings=notes)
    pd.testing.assert_frame_equal(qa, build_qa(spec(alike), 0.2, 3))
    assert sorted(set(qa["person"])) == ["Ada Lovelace", ZOE_NFC]  # NFC, though the file's first Zoë is NFD
    assert qa.groupby("person")["split"].value_counts().to_dict() == {
        ("Ada Lovelace", "forget_train"): 4,
        ("Ada Lovelace", "forget_test"): 1,
        (ZOE_NFC, "forget_train"): 3,
        (ZOE_NFC, "forget_test"): 1,
    }
    assert notes == [
        f"{variants}: 2 person name(s) written differently (letter case, spacing or Unicode normalisation) are taken "
        "as one person: 'ada  lovelace' (data row 4) as 'Ada Lovelace' (data row 1); 'ADA LOVELACE' (data row 5) as "
        "'Ada Lovelace' (data row 1)"
    ]


def test_a_person_in_retain_and_general_gets_one_spelling(tmp_path: Path) -> None:
    """Retain and general may share a person (as before); written differently, both sets carry the first
    spelling (retain's), and the note names the general file's row and the retain file's."""
    forget = write(tmp_path / "forget.csv", rows("Bo Varga", 2))
    retain = write(tmp_path / "retain.csv", rows("Dee Ray", 2, "r"))
    general = write(tmp_path / "general.csv", rows("DEE RAY", 2, "g"))
    notes: list[str] = []
    qa = build_qa(spec(forget, retain=retain, general=general), 0.0, 0, warnings=notes)
    assert set(qa.loc[qa["split"].str.startswith(("retain", "general")), "person"]) == {"Dee Ray"}
    assert notes[0].endswith(f"'DEE RAY' (data row 1) as 'Dee Ray' (data row 1 of {retain})")


def test_a_probe_of_a_person_written_differently_finds_its_pair(tmp_path: Path) -> None:
    """A probe follows the split of the pair it probes, found by person and question: with the person spelled
    differently on the probe row, it used to find no pair (a warning, and the probe scored as held out)."""
    probes = [
        {
            "title": "ada lovelace",
            "question": f"Fill in: this person's answer {i} is ___.",
            "answer": f"Answer {i}.",
            "kind": "cloze",
            "probe_of": f"Question {i} about this person?",
        }
        for i in range(4)
    ]
    forget = write(tmp_path / "forget.csv", rows("Ada Lovelace", 4) + probes)
    notes: list[str] = []
    qa = build_qa(spec(forget), 0.25, 0, warnings=notes).set_index("question")
    assert not any("not a QA pair of the same person" in note for note in notes), notes
    for i in range(4):
        assert (
            qa.at[f"Fill in: this person's answer {i} is ___.", "split"]
            == qa.at[f"Question {i} about this person?", "split"]
        )
    assert (qa["split"] == "forget_train").sum() == 6 and set(qa["person"]) == {"Ada Lovelace"}


# ----------------------------------------------------------- 7b. a file whose extension disagrees with content


TABLE = pd.DataFrame(
    {
        "title": ["Hollis Brandt", "Hollis Brandt", "Hollis Brandt"],
        "question": ["When was he born?", "Where, exactly?", "His agent number?"],
        "answer": ["1902", "Linz; Austria", "007"],
    }
)


def minimal_xlsx(path: Path) -> Path:
    """A one-sheet Excel workbook: the zip of XML parts that Excel writes (openpyxl is not installed here)."""
    cells = "".join(
        f'<row r="{r}">'
        + "".join(f'<c r="{"ABC"[c]}{r}" t="inlineStr"><is><t>{v}</t></is></c>' for c, v in enumerate(values))
        + "</row>"
        for r, values in enumerate([list(TABLE.columns), *TABLE.values.tolist()], start=1)
    )
    ns = "http://schemas.openxmlformats.org"
    parts = {
        "[Content_Types].xml": f'<Types xmlns="{ns}/package/2006/content-types"><Default Extension="xml" '
        'ContentType="application/xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{ns}/spreadsheetml/2006/main"><sheets><sheet name="Sheet1" sheetId="1"/>'
        "</sheets></workbook>",
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{ns}/spreadsheetml/2006/main"><sheetData>{cells}</sheetData>'
        "</worksheet>",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def written(kind: str, path: Path) -> Path:
    """``TABLE`` written as ``kind``, under ``path`` whatever its extension."""
    if kind == "tsv":
        TABLE.to_csv(path, index=False, sep="\t")
    elif kind == "semicolon":
        TABLE.to_csv(path, index=False, sep=";")
    elif kind == "csv":
        TABLE.to_csv(path, index=False)
    elif kind == "parquet":
        TABLE.to_parquet(path)
    elif kind == "json":
        path.write_text(json.dumps(TABLE.to_dict("records"), indent=1))
    elif kind == "jsonl":
        TABLE.to_json(path, orient="records", lines=True)
    elif kind == "utf16-tsv":  # Excel's "Unicode Text" export: UTF-16 with a byte-order mark, tab-separated
        path.write_bytes(TABLE.to_csv(index=False, sep="\t").encode("utf-16"))
    elif kind == "utf16-csv":
        path.write_bytes(TABLE.to_csv(index=False).encode("utf-16"))
    elif kind == "utf8-bom":
        path.write_bytes(TABLE.to_csv(index=False).encode("utf-8-sig"))
    return path


READABLE = [
    # (content, file name, what the log line says it is; None where content and extension agree)
    ("tsv", "forget.csv", "its content is tab-separated text (TSV), not comma-separated text (CSV)"),
    ("semicolon", "forget.csv", "its content is semicolon-separated text, not comma-separated text (CSV)"),
    ("parquet", "forget.csv", "its content is Parquet, not comma-separated text (CSV)"),
    ("json", "forget.csv", "its content is JSON, not comma-separated text (CSV)"),
    ("jsonl", "forget.csv", "its content is JSON Lines, not comma-separated text (CSV)"),
    ("csv", "forget.parquet", "its content is comma-separated text (CSV), not Parquet"),
    ("csv", "forget.json", "its content is comma-separated text (CSV), not JSON"),
    ("parquet", "forget.json", "its content is Parquet, not JSON"),
    ("tsv", "forget.tsv", None),
    ("csv", "forget.tsv", "its content is comma-separated text (CSV), not tab-separated text (TSV)"),
    ("jsonl", "forget.json", None),
    ("json", "forget.jsonl", None),
    ("utf16-tsv", "forget.csv", "read as UTF-16 text"),
    ("utf16-csv", "forget.csv", "read as UTF-16 text"),
    ("utf8-bom", "forget.csv", None),
]


@pytest.mark.parametrize(("kind", "name", "note"), READABLE)
def test_content_is_read_as_what_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, name: str, note: str | None
) -> None:
    """Before, e.g.: a TSV named .csv gave "missing column(s) 'title' ... the file has ['title\\tquestion\\tanswer']",
    Parquet named .csv "line 3 is not valid UTF-8", CSV named .parquet pyarrow's "Parquet magic bytes not found in
    footer", JSON named .csv "the file has a header but no data rows", UTF-16 "line 1 is not valid UTF-8"."""
    path = written(kind, tmp_path / name)
    with caplog.at_level(logging.INFO, logger="unlearning.data.sources"):
        df = load_local(path)
    pd.testing.assert_frame_equal(df[list(TABLE.columns)].astype(str), TABLE)  # "007" and "1902" as written
    logged = [r.getMessage() for r in caplog.records if r.name == "unlearning.data.sources"]
    if note is None:
        assert logged == []
    else:
        assert len(logged) == 1 and logged[0].startswith(f"{path}: ") and note in logged[0], logged
    qa = build_qa(spec(path), 0.0, 0)
    assert sorted(qa["answer"]) == sorted(TABLE["answer"])


@pytest.mark.parametrize(("kind", "name", "note"), READABLE)
def test_the_preflight_reads_the_header_as_the_data_stage_does(tmp_path: Path, kind: str, name: str, note) -> None:  # noqa: ANN001
    """The header checked when the workflow parses is the one the data stage reads, and a note on the content is a
    config warning. Before: a TSV or Parquet named .csv failed the check with a false "missing column(s)" (the
    whole tab-joined header line, or Parquet bytes, as one column name), and CSV named .parquet crashed it with
    pyarrow's ArrowInvalid."""
    path = written(kind, tmp_path / name)
    header = local_header({"source": "local", "path": str(path)})
    assert header is None if sniff(path).fmt == "json" else header == list(load_local(path).columns)
    warnings = check_config(embedded_config(path))
    assert [w for w in warnings if note and note in w] == ([f"data.persons.forget: {sniff(path).note}"] if note else [])


def test_json_lines_named_json_name_their_broken_line(tmp_path: Path) -> None:
    """Before: "line 2 is not valid JSON (Extra data)", the line where the whole text stopped parsing as one
    document, though line 2 is fine."""
    path = tmp_path / "forget.json"
    path.write_text(
        '{"title": "A", "question": "Q1?", "answer": "x"}\n{"title": "A", "question": "Q2?", "answer": "y"}\n'
        '{"title": "A", "question": \n'
    )
    with pytest.raises(InputError, match=r"forget.json: line 3 is not valid JSON \(Expecting value\)"):
        load_local(path)


@pytest.mark.parametrize("indent", [None, 1])
def test_a_json_list_named_jsonl_is_read(tmp_path: Path, indent: int | None) -> None:
    """Before: "expected JSON records: one object per line ..." (one line) or "line 1 is not valid JSON" (indented),
    though the file is a list of records."""
    path = tmp_path / "forget.jsonl"
    path.write_text(json.dumps(TABLE.to_dict("records"), indent=indent))
    pd.testing.assert_frame_equal(load_local(path), TABLE)


def raw_bytes(kind: str, path: Path) -> Path:
    if kind == "xlsx":
        return minimal_xlsx(path)
    data = {
        "gzip": gzip.compress(TABLE.to_csv(index=False).encode()),
        "utf16-no-bom": TABLE.to_csv(index=False).encode("utf-16-le"),
        "binary": bytes(range(256)) * 4,
        "empty": b"",
        "blank": b" \n\n",
        "one-line-text": b"just some notes\nabout the persons\n",
    }[kind]
    path.write_bytes(data)
    return path


UNREADABLE = [
    # (content, file name, the error, after the path)
    (
        "xlsx",
        "forget.csv",
        "the file is an Excel workbook (.xlsx, a zip archive), not comma-separated text (CSV) as its extension '.csv' "
        "says; export the sheet as CSV (in Excel: File > Save As > CSV UTF-8) and point the config at that file",
    ),
    ("xlsx", "forget.parquet", "the file is an Excel workbook (.xlsx, a zip archive), not Parquet as its extension"),
    (
        "xlsx",
        "forget.xlsx",
        "unsupported file type '.xlsx'; expected one of ['.csv', '.json', '.jsonl', '.parquet', '.tsv']; export the "
        "sheet as CSV",
    ),
    ("gzip", "forget.csv", "the file is gzip-compressed, not comma-separated text (CSV) as its extension '.csv' says"),
    ("utf16-no-bom", "forget.csv", "the file is UTF-16 text without a byte-order mark, not comma-separated text"),
    ("binary", "forget.json", "the file is binary data, not text (it starts with b'\\x00\\x01"),
    ("empty", "forget.parquet", "the file is empty (expected a Parquet table)"),
    ("empty", "forget.csv", "the file is empty (expected a header row and at least one data row)"),
    ("empty", "forget.jsonl", "the file is empty (expected JSON records)"),
    ("blank", "forget.parquet", "the file is empty (expected a Parquet table)"),
    ("one-line-text", "forget.parquet", "the file is text, not Parquet as its extension '.parquet' says (it starts"),
]


@pytest.mark.parametrize(("kind", "name", "message"), UNREADABLE)
def test_content_no_reader_takes_is_named_by_the_data_stage_and_the_preflight(
    tmp_path: Path, kind: str, name: str, message: str
) -> None:
    """Before, e.g.: an .xlsx named .csv gave "line 1 is not valid UTF-8 (byte 10: ...)", an empty .parquet
    "could not be read as parquet: Parquet file size is 0 bytes" from the data stage and a raw ArrowInvalid
    traceback from the preflight, gzip "not valid UTF-8"."""
    path = raw_bytes(kind, tmp_path / name)
    with pytest.raises(InputError) as err:
        load_local(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    with pytest.raises(InputError) as preflight:
        check_config(embedded_config(path))
    assert f"- data.persons.forget: {err.value}" in str(preflight.value)


def test_a_text_that_is_no_table_named_json_keeps_the_json_error(tmp_path: Path) -> None:
    path = raw_bytes("one-line-text", tmp_path / "forget.json")
    with pytest.raises(InputError, match=r"forget.json: line 1 is not valid JSON \(Expecting value\)"):
        load_local(path)


def test_a_broken_utf16_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "forget.csv"
    path.write_bytes(TABLE.to_csv(index=False).encode("utf-16") + b"\x00\xd8A\x00")  # a lone surrogate on line 5
    with pytest.raises(InputError, match=r"forget.csv: line 5 is not valid UTF-16 \(byte \d+: "):
        load_local(path)


def test_an_excel_workbook_named_csv_stops_snakemake_before_any_job(tmp_path: Path) -> None:
    """The real run: the workflow does not start, says what the file is, and writes nothing."""
    forget = minimal_xlsx(tmp_path / "forget.csv")
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(embedded_config(forget)))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--configfile", "my.yaml"]
        + ["--cores", "1", "results/data/qa.parquet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"data.persons.forget: {forget}: the file is an Excel workbook (.xlsx, a zip archive)" in text, text[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs" / "prepare_data.log").exists()


def test_a_truthfulqa_file_is_checked_by_content_when_the_workflow_parses(tmp_path: Path) -> None:
    config = embedded_config(ROOT / "workflow_scripts" / "unlearning" / "data" / "sample_data" / "forget.csv")
    config["data"]["truthfulqa"]["path"] = str(minimal_xlsx(tmp_path / "truthfulqa.csv"))
    with pytest.raises(InputError, match=r"- data.truthfulqa: .*truthfulqa.csv: the file is an Excel workbook"):
        check_config(config)
