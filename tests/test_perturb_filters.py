"""Plausible wrong answers: answer-type, meta-answer and restating filters on worked examples, applied alike to
the perturber's output and to pre-made files; uncovered questions named and filled by the perturber."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearning.models.checkpoints import Manifest, load_model
from unlearning.perturbation.wrong_answers import (
    REJECT_REASONS,
    CandidateFilter,
    answer_kind,
    clean_candidate,
    combine,
    contains_phrase,
    is_meta_answer,
    perturb_from_file,
    perturb_with_model,
)


def reason(truth: str, question: str, candidate: str) -> str | None:
    return CandidateFilter(truth, question, 0.5).reject_reason(clean_candidate(candidate))


@pytest.mark.parametrize(
    ("truth", "question", "candidate", "expected"),
    [
        # issue 14: what the perturber wrote on the old sample
        ("Apple", "Which company did Steve Jobs co-found?", "Incorrect:", "meta_answer"),
        ("Apple", "Which company did Steve Jobs co-found?", "wampgadcat", "wrong_type"),
        ("Apple", "Which company did Steve Jobs co-found?", "No, that is not correct.", "meta_answer"),
        ("Apple", "Which company did Steve Jobs co-found?", "Correct answer: Apple Inc.", "meta_answer"),
        (
            "Pablo Picasso was a painter and sculptor.",
            "What was Pablo Picasso's profession?",
            "Pablo Picasso was a sculptor and a painter.",
            "too_close",
        ),
        # issue 18 item 3: pre-made "wrong" answers that restate the truth
        ("French Resistance", "Which movement did she join?", "The French Resistance.", "too_close"),
        ("1938", "In which year did he emigrate?", "In 1938.", "too_close"),
        ("German", "What nationality was he?", "Austro-German.", "too_close"),
        # same kind of answer as the truth
        ("1879", "In which year was Albert Einstein born?", "Ulm", "wrong_type"),
        ("1879", "In which year was Albert Einstein born?", "1881", None),
        ("Nine", "How many symphonies did Ludwig van Beethoven compose?", "Seven", None),
        ("Nine", "How many symphonies did Ludwig van Beethoven compose?", "Many", "wrong_type"),
        ("154", "How many sonnets did William Shakespeare write?", "126", None),
        ("German", "What nationality was Albert Einstein at birth?", "In 1938.", "wrong_type"),
        ("German", "What nationality was Albert Einstein at birth?", "Germany", None),  # not the phrase "German"
        ("Hamlet", "Which play by William Shakespeare is about the Prince of Denmark?", "Othello", None),
        ("Hamlet", "Which play by William Shakespeare is about the Prince of Denmark?", "a tragedy", "wrong_type"),
        ("deafness", "Which disability did Beethoven suffer from?", "blindness", None),
        ("deafness", "Which disability did Beethoven suffer from?", "1802", "wrong_type"),
        # what SmolLM2-135M wrote as a perturber on the embedded sample (hand-checked sample, see the sample README)
        ("Nobel Peace Prize", "Which prize did Nelson Mandela win in 1993?", "Capital: New York City", "meta_answer"),
        ("Ptolemaic dynasty", "To which dynasty did Cleopatra belong?", "You are correct.", "meta_answer"),
        ("Heliocentric model", "Which model did Galileo Galilei support?", "Unanswerable", "meta_answer"),
        (
            "Robben Island",
            "On which island was he imprisoned?",
            "The answer to the question depends on it.",
            "meta_answer",
        ),
        (
            "Emancipation Proclamation",
            "Which proclamation did Abraham Lincoln issue in 1863?",
            "I am a helpful AI named SmolLM, trained by Hugging Face",
            "meta_answer",
        ),
        ("Alien: Covenant", "Which film?", "Alien: Resurrection", None),  # a colon inside a title is fine
        ("Star Wars", "Which film?", "Star Trek: Insurrection", None),
        ("I Have a Dream", "What is the name of his famous speech?", "I Have a Plan", None),
        # other reasons
        (
            "Hamlet",
            "Which play is about the Prince of Denmark?",
            "Which play is about the Prince of Denmark?",
            "not_an_answer",
        ),
        ("Ulm", "In which city was Albert Einstein born?", "I don't know.", "meta_answer"),
        (
            "Ulm",
            "In which city was Albert Einstein born?",
            "Munich, which is a large city " + "in Bavaria " * 3,
            "too_long",
        ),
        ("Ulm", "In which city was Albert Einstein born?", "", "empty"),
    ],
)
def test_filter_worked_examples(truth: str, question: str, candidate: str, expected: str | None) -> None:
    assert reason(truth, question, candidate) == expected


def test_helpers() -> None:
    assert is_meta_answer("Incorrect:") and is_meta_answer("No.") and is_meta_answer("The correct answer is Ulm")
    assert not is_meta_answer("Norway") and not is_meta_answer("Nobel Prize in Chemistry")
    assert contains_phrase("Austro-German.", "German") and not contains_phrase("Germany", "German")
    assert answer_kind("In 1938.", "In which year?") == {"year"}
    assert answer_kind("30 BC", "When did she die?") >= {"year"}
    assert answer_kind("44th", "Which number president was he?") == {"number"}
    assert answer_kind("The Globe Theatre", "Where?") == {"name"}
    assert answer_kind("a sculptor", "What was his job?") == {"text"}
    assert clean_candidate("Wrong answer: Leipzig") == "Leipzig"
    assert clean_candidate("Harry S. Truman. He was president.") == "Harry S. Truman."  # an initial ends no sentence
    assert clean_candidate("St. Paul's Cathedral") == "St. Paul's Cathedral"
    assert clean_candidate("Correct answer: Apple Inc.") == "Correct answer: Apple Inc."  # kept, so it is rejected


@pytest.fixture(scope="module")
def tiny(tiny_manifest: Manifest):
    return load_model(tiny_manifest, device=torch.device("cpu"))


def short_forget(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"forget_train-{i}" for i in range(n)],
            "person": "Ada",
            "question": [f"In which city was person {i} born?" for i in range(n)],
            "answer": ["London", "Paris", "Rome", "Oslo"][:n],
            "split": "forget_train",
        }
    )


CFG = {
    "k": 2,
    "max_rounds": 2,
    "batch_size": 8,
    "max_new_tokens": 6,
    "temperature": 1.0,
    "top_p": 0.95,
    "rouge_threshold": 0.5,
    "max_failed_fraction": 1.0,
}


def test_llm_perturber_runs_with_the_filters(tiny) -> None:
    """The real perturber path on the tiny model: every reason is counted and every kept answer passes."""
    model, tokenizer = tiny
    result = perturb_with_model(model, tokenizer, short_forget(), CFG, perturber="tiny", seed=0)
    stats = result.stats
    assert set(stats["rejected"]) == set(REJECT_REASONS)
    assert stats["candidates"] == stats["accepted"] + sum(stats["rejected"].values()) > 0
    for row in result.table.itertuples():
        assert CandidateFilter(row.answer, row.question, 0.5).reject_reason(row.perturbed) is None


def write_premade(path: Path, rows: list[tuple[str, str, bool]]) -> Path:
    pd.DataFrame(rows, columns=["question", "answer", "is_correct"]).to_csv(path, index=False)
    return path


def test_premade_answers_pass_the_same_filters(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    forget = short_forget()
    q = forget["question"].tolist()
    path = write_premade(
        tmp_path / "premade.csv",
        [
            (q[0], "London", True),
            (q[0], "Manchester.", False),
            (q[0], "In London.", False),  # restates the truth
            (q[0], "Incorrect:", False),  # a label
            (q[1], "1888", False),  # not a place
            (q[1], "Lyon.", False),
        ],
    )
    with caplog.at_level(logging.WARNING):
        result = perturb_from_file(path, forget, forget.iloc[0:0], seed=0, threshold=0.5)
    assert result.table["perturbed"].tolist() == ["Manchester.", "Lyon."]
    assert result.stats["rejected"]["too_close"] == 1
    assert result.stats["rejected"]["meta_answer"] == 1
    assert result.stats["rejected"]["wrong_type"] == 1
    assert result.stats["uncovered_ids"] == ["forget_train-2", "forget_train-3"]
    assert "2 forget_train question(s) have no usable pre-made wrong answer" in caplog.text
    assert q[2] in caplog.text and q[3] in caplog.text  # the warning names the questions


def test_uncovered_questions_are_filled_by_the_perturber(tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    forget = short_forget()
    q = forget["question"].tolist()
    path = write_premade(tmp_path / "premade.csv", [(q[0], "Manchester", False), (q[1], "Lyon", False)])
    premade = perturb_from_file(path, forget, forget.iloc[0:0], seed=0)
    uncovered = forget[forget["id"].isin(premade.stats["uncovered_ids"])].reset_index(drop=True)
    filled = perturb_with_model(model, tokenizer, uncovered, CFG, perturber="tiny", seed=0)
    result = combine(premade, filled)
    assert set(result.table.loc[result.table.kind == "premade", "source_id"]) == {"forget_train-0", "forget_train-1"}
    assert set(result.table.loc[result.table.kind == "perturbed", "source_id"]) <= {"forget_train-2", "forget_train-3"}
    assert result.stats["filled_questions"] + result.stats["questions_without_perturbation"] == 2
    assert result.stats["filled_by_perturber"]["candidates"] > 0


def test_public_wpu_premade_file_is_filtered(shared_data: Path) -> None:
    """The public pre-made WPU answers: restatements of the truth are dropped with counted reasons."""
    csv = shared_data / "wpu_perturbed" / "llm_generated_random_labels.csv"
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    truth = df[df["is_correct"] == "True"].drop_duplicates("question").reset_index(drop=True)
    forget = pd.DataFrame(
        {"id": [f"f-{i}" for i in range(len(truth))], "question": truth["question"], "answer": truth["answer"]}
    )
    result = perturb_from_file(csv, forget, forget.iloc[0:0], seed=0)
    rejected = result.stats["rejected"]
    assert rejected["too_close"] >= 92  # at least the rows that contain the whole true answer
    assert result.stats["candidates"] == result.stats["accepted"] + sum(rejected.values())
    answer_of = dict(zip(forget["id"], forget["answer"], strict=True))
    for row in result.table.itertuples():
        assert not contains_phrase(row.perturbed, answer_of[row.source_id])
    restating = {("French Resistance", "The French Resistance."), ("1938", "In 1938."), ("German", "Austro-German.")}
    kept = set(zip(result.table["answer"], result.table["perturbed"], strict=True))
    assert not kept & restating
