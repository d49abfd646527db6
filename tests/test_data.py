"""Data stage: loading through datasets, column mapping, validation errors and the seeded split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from unlearning.core.errors import InputError
from unlearning.core.parquet_io import read_metadata, read_parquet, write_parquet
from unlearning.data.qa_table import OFFICIAL_TRUTHFULQA_COLUMNS as TQA_COLUMNS
from unlearning.data.qa_table import WPU_COLUMNS, build_qa, build_truthfulqa
from unlearning.data.sources import load_local, load_source

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workflow_scripts" / "unlearning" / "data" / "sample_data"


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def person_rows(person: str, n: int) -> list[dict]:
    return [{"title": person, "question": f"Question {i} about {person}?", "answer": f"Answer {i}."} for i in range(n)]


@pytest.fixture
def persons(tmp_path: Path) -> dict:
    forget = write_csv(tmp_path / "forget.csv", person_rows("Ada", 5) + person_rows("Bob", 10) + person_rows("Cy", 1))
    retain = write_csv(tmp_path / "retain.csv", person_rows("Dee", 4))
    general = write_csv(tmp_path / "general.csv", person_rows("Eve", 3))
    return {
        "columns": WPU_COLUMNS,
        "forget": {"source": "local", "path": str(forget)},
        "retain": {"source": "local", "path": str(retain)},
        "general": {"source": "local", "path": str(general)},
    }


def test_split_holds_out_every_forgotten_person(persons: dict) -> None:
    qa = build_qa(persons, 0.2, seed=1)
    assert list(qa.columns) == ["id", "person", "question", "answer", "split", "kind"]
    counts = qa.groupby(["person", "split"]).size().to_dict()
    assert counts[("Ada", "forget_test")] == 1 and counts[("Ada", "forget_train")] == 4
    assert counts[("Bob", "forget_test")] == 2 and counts[("Bob", "forget_train")] == 8
    assert counts[("Cy", "forget_train")] == 1 and ("Cy", "forget_test") not in counts  # one pair: train only
    assert counts[("Dee", "retain_test")] == 1 and counts[("Dee", "retain_train")] == 3  # every set is split
    assert counts[("Eve", "general_test")] == 1 and counts[("Eve", "general_train")] == 2
    assert qa["id"].is_unique


def test_same_seed_gives_byte_identical_parquet(persons: dict, tmp_path: Path) -> None:
    a = write_parquet(build_qa(persons, 0.2, seed=7), tmp_path / "a.parquet", stage="t", config=persons, seed=7)
    b = write_parquet(build_qa(persons, 0.2, seed=7), tmp_path / "b.parquet", stage="t", config=persons, seed=7)
    assert a.read_bytes() == b.read_bytes()
    other = build_qa(persons, 0.2, seed=8)
    assert not other.equals(read_parquet(a))  # another seed holds out other questions
    meta = read_metadata(a)
    assert meta["stage"] == "t" and meta["seed"] == 7 and "transformers" in meta["versions"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_other_local_formats_load_the_same(persons: dict, tmp_path: Path, suffix: str) -> None:
    df = pd.read_csv(persons["forget"]["path"])
    path = tmp_path / f"forget{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(df.to_dict("records")))
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    persons["forget"]["path"] = str(path)
    pd.testing.assert_frame_equal(build_qa(persons, 0.2, 1), build_qa({**persons}, 0.2, 1))
    assert len(load_local(path)) == len(df)


def test_column_mapping_renames_custom_columns(persons: dict, tmp_path: Path) -> None:
    df = pd.read_csv(persons["forget"]["path"]).rename(columns={"title": "name", "answer": "truth"})
    df.to_csv(tmp_path / "custom.csv", index=False)
    persons["forget"]["path"] = str(tmp_path / "custom.csv")
    with pytest.raises(InputError, match=r"custom.csv: missing column\(s\) 'title' \(for person\)"):
        build_qa(persons, 0.2, 1)
    persons["forget"]["columns"] = {"person": "name", "answer": "truth"}
    assert set(build_qa(persons, 0.2, 1)["person"]) >= {"Ada", "Bob"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"title,question,answer\n", "no data rows"),
        (b"title,question,answer\nAda,Who?,\n", r"data row 1: column 'answer' is empty"),
        (b"title,question,answer\nAda,Who?,x\nAda,Where?, \n", r"data row 2: column 'answer' is empty"),
        (b"title,question,answer\nAda,Who?,x\nAda,Who?,y\n", "data row 2 repeats the question of data row 1"),
        (b"title,question,answer\nAda,Who?,caf\xe9\n", "line 2 is not valid UTF-8"),
        (b"title,question\nAda,Who?\n", r"missing column\(s\) 'answer'"),
    ],
)
def test_bad_input_names_file_and_row(persons: dict, tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    persons["forget"]["path"] = str(bad)
    with pytest.raises(InputError, match=message) as err:
        build_qa(persons, 0.2, 1)
    assert "bad.csv" in str(err.value)


def test_person_in_forget_and_retain_is_refused(persons: dict, tmp_path: Path) -> None:
    write_csv(tmp_path / "retain.csv", person_rows("Ada", 1) + [{"title": "Dee", "question": "Q?", "answer": "A."}])
    with pytest.raises(InputError, match=r"retain.csv: person\(s\) \['Ada'\] are also in the forget set"):
        build_qa(persons, 0.2, 1)


def test_question_in_two_sets_is_refused(persons: dict, tmp_path: Path) -> None:
    write_csv(tmp_path / "general.csv", [{"title": "Eve", "question": "Question 0 about Ada?", "answer": "A."}])
    with pytest.raises(InputError, match="also appears in"):
        build_qa(persons, 0.2, 1)


def test_hub_source_offline_says_how_to_use_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    spec = {"source": "hub", "path": "Shiyu-Lab/Wikipedia_Person_Unlearn", "name": "forget_20_1", "split": "train"}
    with pytest.raises(InputError, match="hub is unreachable.*source: local"):
        load_source(spec)


def test_embedded_sample_is_complete() -> None:
    persons = {
        "columns": WPU_COLUMNS,
        **{
            r: {"source": "local", "path": str(SAMPLE / f)}
            for r, f in [("forget", "forget.csv"), ("retain", "hard_retain.csv"), ("general", "general_retain.csv")]
        },
    }
    qa = build_qa(persons, 0.2, 42)
    assert qa["person"].nunique() >= 41
    assert qa.groupby("person").size().min() >= 5
    for role in ("forget", "retain", "general"):
        people = set(qa.loc[qa.split.str.startswith(role), "person"])
        assert len(people) >= 13
        for person in people:
            assert set(qa.loc[qa.person == person, "split"]) == {f"{role}_train", f"{role}_test"}
    assert qa["answer"].str.split().str.len().max() <= 7  # WPU-style short answer spans
    tqa = build_truthfulqa(
        {"source": "local", "path": str(SAMPLE / "truthfulqa_sample.csv"), "columns": TQA_COLUMNS}, 42
    )
    assert len(tqa) >= 30
    assert all(len(x) >= 1 for x in tqa["incorrect_answers"])


def test_real_truthfulqa_csv_loads_with_lists(shared_data: Path) -> None:
    spec = {"source": "local", "path": str(shared_data / "truthfulqa" / "TruthfulQA.csv"), "columns": TQA_COLUMNS}
    tqa = build_truthfulqa(spec, 0)
    assert len(tqa) == 817
    row = tqa.iloc[0]
    assert isinstance(row["correct_answers"], list | tuple) or hasattr(row["correct_answers"], "__len__")
    assert all(";" not in a for answers in tqa["incorrect_answers"] for a in answers)
    limited = build_truthfulqa({**spec, "limit": 50}, 0)
    assert len(limited) == 50 and limited.equals(build_truthfulqa({**spec, "limit": 50}, 0))


def test_shared_wpu_csv_maps_into_qa(shared_data: Path, tmp_path: Path) -> None:
    """The WPU-derived CSV has no person column: mapping a synthetic one in shows the loader on real text."""
    df = pd.read_csv(shared_data / "wpu_perturbed" / "llm_generated_random_labels.csv")
    true = df[df["is_correct"]].drop_duplicates("question").reset_index(drop=True)
    true["title"] = [f"person-{i % 10}" for i in range(len(true))]
    true[["title", "question", "answer"]].iloc[:200].to_csv(tmp_path / "f.csv", index=False)
    true[["title", "question", "answer"]].iloc[200:].assign(title=lambda d: "other-" + d["title"]).to_csv(
        tmp_path / "r.csv", index=False
    )
    qa = build_qa(
        {
            "columns": WPU_COLUMNS,
            "forget": {"source": "local", "path": str(tmp_path / "f.csv")},
            "retain": {"source": "local", "path": str(tmp_path / "r.csv")},
        },
        0.2,
        0,
    )
    assert (qa["split"] == "forget_test").sum() == 40
    assert qa["split"].isin(["retain_train", "retain_test"]).sum() == len(true) - 200


def test_corrupt_parquet_is_detected(tmp_path: Path) -> None:
    path = write_parquet(pd.DataFrame({"a": [1, 2]}), tmp_path / "x.parquet", stage="t", config={})
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_parquet(path)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_mode_of_the_umask(tmp_path: Path, umask: int) -> None:
    """An atomic Parquet write (a mkstemp file, 0600) and a folder of library-written files end readable as the
    umask allows, like any file the user creates."""
    import os

    from unlearning.core.file_modes import apply_umask

    old = os.umask(umask)
    try:
        path = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet", stage="t", config={})
        folder = tmp_path / "adapter"
        (folder / "sub").mkdir(parents=True)
        for name in ("adapter_model.safetensors", "sub/config.json"):
            (folder / name).write_text("{}")
            os.chmod(folder / name, 0o600)  # as the safetensors library leaves its files
        apply_umask(folder)
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == expected
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()} == {
        "adapter_model.safetensors": expected, "config.json": expected}  # fmt: skip
