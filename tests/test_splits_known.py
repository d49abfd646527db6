"""Held-out splits of every person set, the known-fact rule, the summary's subsets and WPU's real file shapes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import datasets
import pandas as pd
import pytest

from unlearning.core.errors import InputError
from unlearning.data.known_facts import DEFAULT_THRESHOLD, is_known, known_counts, known_facts
from unlearning.data.qa_table import SPLITS, TEST_SPLITS, WPU_COLUMNS, build_qa, held_out_count
from unlearning.data.sources import load_source
from unlearning.scoring.evaluation import QA_SPLITS, SUMMARY_COLUMNS, build_summary
from unlearning.scoring.metrics import rouge

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workflow_scripts" / "unlearning" / "data" / "sample_data"


def rows(person: str, n: int) -> list[dict]:
    return [{"title": person, "question": f"Q{i} about {person}?", "answer": f"A{i}"} for i in range(n)]


def persons_spec(tmp_path: Path, forget: list[dict], retain: list[dict], general: list[dict]) -> dict:
    spec = {"columns": WPU_COLUMNS}
    for role, data in (("forget", forget), ("retain", retain), ("general", general)):
        if data:
            pd.DataFrame(data).to_csv(tmp_path / f"{role}.csv", index=False)
            spec[role] = {"source": "local", "path": str(tmp_path / f"{role}.csv")}
    return spec


def sample_spec() -> dict:
    files = {"forget": "forget.csv", "retain": "hard_retain.csv", "general": "general_retain.csv"}
    return {"columns": WPU_COLUMNS, **{r: {"source": "local", "path": str(SAMPLE / f)} for r, f in files.items()}}


# --------------------------------------------------------------------------------------------- splits


def test_every_person_set_is_split_and_disjoint() -> None:
    """No scored held-out question is trained on: the train and test parts of every set share no question, and
    the retain term's default splits (retain_train, general_train) hold no test question."""
    qa = build_qa(sample_spec(), 0.2, seed=42)
    assert set(qa["split"]) == set(SPLITS)
    for role in ("forget", "retain", "general"):
        train = qa[qa.split == f"{role}_train"]
        test = qa[qa.split == f"{role}_test"]
        assert len(test) > 0 and len(train) > len(test)
        assert not set(train["question"]) & set(test["question"])
        assert set(train["person"]) == set(test["person"])  # every person holds out and keeps questions
    retain_term = qa[qa["split"].isin(["retain_train", "general_train"])]
    scored_held_out = qa[qa["split"].isin(TEST_SPLITS)]
    assert not set(retain_term["id"]) & set(scored_held_out["id"])
    assert not set(retain_term["question"]) & set(scored_held_out["question"])
    assert qa["id"].is_unique and qa["question"].is_unique


def test_split_is_seeded_per_person(tmp_path: Path) -> None:
    spec = persons_spec(tmp_path, rows("Ada", 10), rows("Dee", 10), rows("Eve", 10))
    a, b, c = build_qa(spec, 0.3, 1), build_qa(spec, 0.3, 1), build_qa(spec, 0.3, 2)
    pd.testing.assert_frame_equal(a, b)
    assert set(a.loc[a.split == "retain_test", "question"]) != set(c.loc[c.split == "retain_test", "question"])
    assert (a["split"].value_counts() == 7).sum() == 3 and (a["split"].value_counts() == 3).sum() == 3


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(10, 0.0, 0), (1, 0.5, 0), (2, 0.2, 1), (2, 0.8, 1), (5, 0.2, 1), (10, 0.2, 2), (10, 0.9, 9), (3, 0.01, 1)],
)
def test_held_out_count(n: int, fraction: float, expected: int) -> None:
    assert held_out_count(n, fraction) == expected


def test_fraction_zero_holds_nothing_out_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = persons_spec(tmp_path, rows("Ada", 5), rows("Dee", 4), [])
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING):
        qa = build_qa(spec, 0.0, 1, warnings=warnings)
    assert set(qa["split"]) == {"forget_train", "retain_train"}
    assert warnings == [
        "forget_test is empty: data.test_fraction is 0; no held-out figures for this set",
        "retain_test is empty: data.test_fraction is 0; no held-out figures for this set",
    ]
    assert "forget_test is empty" in caplog.text


def test_single_pair_persons_and_capped_persons_are_named(tmp_path: Path) -> None:
    forget = rows("Ada", 2) + rows("Bob", 1) + rows("Cy", 5)
    retain = rows("Dee", 1) + rows("Fay", 1)  # every retain person has one pair, as in WPU's subsets
    spec = persons_spec(tmp_path, forget, retain, [])
    warnings: list[str] = []
    qa = build_qa(spec, 0.8, 1, warnings=warnings)
    counts = qa.groupby(["person", "split"]).size().to_dict()
    assert counts[("Ada", "forget_train")] == 1 and counts[("Ada", "forget_test")] == 1  # keeps a training question
    assert counts[("Bob", "forget_train")] == 1 and ("Bob", "forget_test") not in counts
    assert counts[("Cy", "forget_train")] == 1 and counts[("Cy", "forget_test")] == 4
    assert "forget: 1 person(s) have a single QA pair, kept in forget_train with nothing held out: Bob" in warnings
    assert (
        "forget: 1 person(s) hold out fewer than data.test_fraction=0.8 of their pairs, so that each keeps a "
        "training question: Ada" in warnings
    )
    assert any(w.startswith("retain_test is empty: every retain person has a single QA pair") for w in warnings)
    assert not (qa.groupby("person")["split"].apply(lambda s: s.str.endswith("_train").any()) == False).any()  # noqa: E712


# --------------------------------------------------------------------------------------------- WPU shapes


@pytest.mark.parametrize("wikipage", [False, True])
def test_pandas_index_csv_in_wpu_shape_loads(tmp_path: Path, wikipage: bool) -> None:
    """WPU saved with DataFrame.to_csv: an unnamed index column first (``,title,question,answer``), with or
    without the ``wikipage`` column."""
    df = pd.DataFrame(rows("Benedetto Varchi", 4))
    if wikipage:
        df.insert(1, "wikipage", "Benedetto Varchi was an Italian humanist, historian and poet.")
    df.to_csv(tmp_path / "forget.csv")  # index=True, the pandas default
    assert (tmp_path / "forget.csv").read_text().startswith(",title," if not wikipage else ",title,wikipage,")
    qa = build_qa(
        {"columns": WPU_COLUMNS, "forget": {"source": "local", "path": str(tmp_path / "forget.csv")}}, 0.25, 0
    )
    assert list(qa.columns) == ["id", "person", "question", "answer", "split", "kind"]
    assert sorted(qa["answer"]) == ["A0", "A1", "A2", "A3"] and set(qa["person"]) == {"Benedetto Varchi"}
    assert qa["split"].value_counts().to_dict() == {"forget_train": 3, "forget_test": 1}


def test_hub_configs_go_through_the_same_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub source (config name, split) reaches datasets.load_dataset as given; WPU's hub columns map as is."""
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):  # noqa: ANN001, ANN003
        calls.append((path, name, split))
        data = rows("Ada", 5) if name == "forget_2_1" else rows("Dee", 5)
        return datasets.Dataset.from_pandas(pd.DataFrame(data).assign(wikipage="text"))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = "Shiyu-Lab/Wikipedia_Person_Unlearn"
    spec = {
        "columns": WPU_COLUMNS,
        "forget": {"source": "hub", "path": hub, "name": "forget_2_1", "split": "train"},
        "retain": {"source": "hub", "path": hub, "name": "forget_2_1_hard_retain", "split": "train"},
    }
    qa = build_qa(spec, 0.2, 0)
    assert calls == [(hub, "forget_2_1", "train"), (hub, "forget_2_1_hard_retain", "train")]
    assert set(qa["split"]) == {"forget_train", "forget_test", "retain_train", "retain_test"}
    assert len(load_source(spec["forget"])) == 5


# --------------------------------------------------------------------------------------------- known facts


@pytest.mark.parametrize(
    ("reference", "answer", "known"),
    [
        ("German", "Albert Einstein was German.", True),  # a one-word span, present
        ("German", "Albert Einstein was Swiss.", False),
        ("United States", "He moved to the United Kingdom.", False),  # 1 of 2 words: 0.5 < 0.6
        ("The Globe Theatre", "They were performed at the Globe Theatre.", True),  # 3 of 3
        ("The Globe Theatre", "They were performed at Globe Theatre.", True),  # 2 of 3 = 0.67
        ("Theory of relativity", "He is best known for the theory of general relativity.", True),  # in order
        ("Nobel Prize in Physics", "He won the Nobel Prize.", False),  # 2 of 4 = 0.5
        ("1879", "Albert Einstein was born in 1879.", True),
        ("1879", "Albert Einstein was born in 1878.", False),
    ],
)
def test_known_fact_rule_worked_examples(reference: str, answer: str, known: bool) -> None:
    recall = rouge([answer], [reference])["rougeL_recall"].iloc[0]
    assert is_known(recall) is known
    assert DEFAULT_THRESHOLD == 0.6


def base_scores() -> pd.DataFrame:
    refs = ["German", "1879", "Hamlet", "Vienna", "Pixar", "Paris"]
    gens = ["He was German.", "He was born in 1900.", "He wrote Hamlet.", "Salzburg.", "Pixar.", "Rome."]
    splits = ["forget_train", "forget_train", "forget_test", "retain_test", "general_test", "general_test"]
    df = pd.DataFrame({"id": [f"q{i}" for i in range(6)], "split": splits, "reference": refs, "generation": gens})
    return pd.concat([df, rouge(gens, refs)], axis=1)


def test_known_facts_table_and_counts() -> None:
    known = known_facts(base_scores())
    assert list(known.columns) == ["id", "split", "known", "base_rougeL_recall"]
    assert known["known"].tolist() == [True, False, True, False, True, False]
    assert known_counts(known) == {
        "forget_test": {"all": 1, "known": 1},
        "forget_train": {"all": 2, "known": 1},
        "general_test": {"all": 2, "known": 1},
        "retain_test": {"all": 1, "known": 0},
    }
    assert known_facts(base_scores(), {"known_threshold": 0.0})["known"].all()
    with pytest.raises(InputError, match="known_rule"):
        known_facts(base_scores(), {"known_rule": "exact"})


def scored(df: pd.DataFrame, recall: list[float]) -> pd.DataFrame:
    out = df[["id", "split", "reference", "generation"]].copy()
    out["rougeL_recall"] = recall
    for col in ("rougeL_f1", "rouge1_f1", "bleu", "answer_prob", "perplexity", "mc1", "mc2"):
        out[col] = 0.5
    out["degenerate"] = False
    return out


def test_summary_reports_all_and_known_with_counts_for_any_variants() -> None:
    base = base_scores()
    known = known_facts(base)
    runs = {
        ("tiny", "base"): scored(base, base["rougeL_recall"].tolist()),
        ("tiny", "npo"): scored(base, [0.0] * 6),
        ("tiny", "dpo"): scored(base, [0.5] * 6),
    }
    notes: list[str] = []
    summary = build_summary(runs, {"tiny": known}, notes)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(summary["kind"]) == {"all", "qa"}  # tables without a kind column are all QA
    assert set(summary["variant"]) == {"base", "npo", "dpo", "headline"} and set(summary["subset"]) == {"all", "known"}
    assert set(summary.loc[summary.variant == "headline", "metric"]) == {"degenerate_base"}

    def value(variant: str, split: str, subset: str, metric: str) -> float:
        sel = summary[
            (summary.variant == variant)
            & (summary.split == split)
            & (summary.subset == subset)
            & (summary.metric == metric)
            & (summary.kind == "all")
        ]
        assert len(sel) <= 1
        return float(sel["value"].iloc[0]) if len(sel) else math.nan

    assert value("npo", "forget_train", "all", "n") == 2 and value("npo", "forget_train", "known", "n") == 1
    assert value("base", "forget_train", "known", "rougeL_recall") == 1.0
    assert value("npo", "forget_train", "known", "rougeL_recall_drop") == 1.0
    assert value("dpo", "forget_train", "known", "rougeL_recall_drop") == 0.5
    # a split with no known facts: n = 0 and no NaN-only metric rows, plus a note saying why
    assert value("base", "retain_test", "known", "n") == 0
    empty = summary[(summary.split == "retain_test") & (summary.subset == "known")]
    assert empty["metric"].tolist() == ["n"] * 3 and set(empty["kind"]) == {"all"}
    assert "tiny retain_test (known): n=0, the base model knows none" in notes
    assert "tiny truthfulqa (all): n=0, no questions in this split" in notes
    assert not summary["value"].isna().any()
    for split in QA_SPLITS:
        assert value("base", split, "all", "n") >= 0 and value("base", split, "known", "n") >= 0
