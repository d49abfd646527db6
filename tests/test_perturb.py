"""Perturbation stage and DPO pairs: cleaning, filters, retry rounds, seeding, refusals, pre-made files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearning.core.errors import InputError
from unlearning.inference.generation import Generation
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.perturbation.pairs import DEFAULT_REFUSALS, build_pairs
from unlearning.perturbation.wrong_answers import (
    CandidateFilter,
    clean_candidate,
    fact_tokens,
    fill_template,
    key_facts,
    lcs_f1,
    load_template,
    perturb_from_file,
    perturb_with_model,
)

CFG = {
    "k": 2,
    "max_rounds": 2,
    "batch_size": 4,
    "max_new_tokens": 6,
    "temperature": 1.0,
    "top_p": 0.95,
    "rouge_threshold": 0.5,
    "max_failed_fraction": 1.0,
}


@pytest.fixture(scope="module")
def tiny(tiny_manifest: Manifest):
    return load_model(tiny_manifest, device=torch.device("cpu"))


def forget_set(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"forget_train-{i}" for i in range(n)],
            "person": "Ada",
            "question": [f"Where was person {i} born?" for i in range(n)],
            "answer": [f"Person {i} was born in London." for i in range(n)],
            "split": "forget_train",
        }
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Answer: Paris.", "Paris."),
        ("The wrong answer is: Einstein was born in Bern.", "Einstein was born in Bern."),
        ("The correct answer is: Einstein was born in Bern.", "The correct answer is: Einstein was born in Bern."),
        ("Wrong answer: He was born in 1901. He later moved.", "He was born in 1901."),
        ('\n\n"Berlin"\nmore text', "Berlin"),
        ("- Madrid", "Madrid"),
        ("1. Rome", "Rome"),
        ("   ", ""),
    ],
)
def test_clean_candidate(raw: str, clean: str) -> None:
    assert clean_candidate(raw) == clean


def test_filter_rejects_empty_duplicate_and_too_close() -> None:
    f = CandidateFilter(
        truth="Marie Curie was born in Warsaw.", question="In which city was Marie Curie born?", threshold=0.5
    )
    assert f.offer("She was born in Berlin in 1990.")
    assert not f.offer("")
    assert not f.offer("she was born in berlin in 1990")  # same after normalisation
    assert not f.offer("Marie Curie was born in Warsaw, Poland.")  # contains the truth
    assert not f.offer("Curie was born in Warsaw.")  # a paraphrase: the same fact words
    assert f.offer("Marie Curie was born in Krakow.")  # same form, other fact: the ideal wrong answer
    assert not f.offer("In which city was Marie Curie born?")  # the question echoed back
    assert dict(f.rejected) == {"empty": 1, "duplicate": 1, "too_close": 2, "not_an_answer": 1}
    assert f.accepted == ["She was born in Berlin in 1990.", "Marie Curie was born in Krakow."]


def test_an_answer_holding_every_key_fact_is_too_close() -> None:
    f = CandidateFilter(
        truth="Pablo Picasso died in 1973.", question="In which year did Pablo Picasso die?", threshold=0.5
    )
    assert not f.offer("In 1973, Pablo Picasso died.")
    assert not f.offer("The answer to this question is: 1973")
    assert f.offer("Pablo Picasso died in 1968.")
    assert key_facts("Marie Curie was born in Warsaw, Poland.", "In which city was Marie Curie born?") == {
        "warsaw",
        "poland",
    }


def test_fact_words_ignore_the_question_and_function_words() -> None:
    assert fact_tokens("Albert Einstein was born in Ulm, Germany.", "Where was Albert Einstein born?") == [
        "ulm",
        "germany",
    ]
    assert lcs_f1(["ulm", "germany"], ["munich", "germany"]) == 0.5
    assert lcs_f1(["a", "b"], []) == 0.0


def test_template_is_filled_without_format_interpretation() -> None:
    template = load_template({})
    text = fill_template(template, "What is {0.__class__}?", "{answer}")
    assert "What is {0.__class__}?" in text
    with pytest.raises(InputError, match="must contain"):
        load_template({"template": "no placeholders"})


def test_perturber_is_seeded_and_records_provenance(tiny) -> None:
    model, tokenizer = tiny
    a = perturb_with_model(model, tokenizer, forget_set(), CFG, perturber="tiny", seed=3)
    b = perturb_with_model(model, tokenizer, forget_set(), CFG, perturber="tiny", seed=3)
    c = perturb_with_model(model, tokenizer, forget_set(), CFG, perturber="tiny", seed=4)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table["perturbed"].equals(c.table["perturbed"])
    assert set(a.table.columns) >= {"source_id", "perturbed", "perturber", "template_hash", "seed", "round"}
    assert (a.table["perturber"] == "tiny").all() and (a.table["seed"] == 3).all()
    assert a.table.groupby("source_id").size().max() <= CFG["k"]
    stats = a.stats
    assert stats["candidates"] == stats["accepted"] + sum(stats["rejected"].values())


def test_short_questions_get_more_rounds(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scripted perturber: duplicates and empties in round 1 leave questions short, later rounds fill them."""
    model, tokenizer = tiny
    script = {1: ["Paris.", "Paris.", ""], 2: ["Rome.", "Rome.", "Rome."], 3: ["Oslo.", "Oslo.", "Bern."]}
    calls = []

    def scripted(model, tokenizer, prompts, *, seed, **kwargs):  # noqa: ANN001, ANN003
        rnd = seed % 1000
        calls.append(len(prompts))
        return [Generation(script[rnd][i % 3], 2) for i in range(len(prompts))]

    monkeypatch.setattr("unlearning.inference.generation.generate", scripted)
    cfg = {**CFG, "k": 3, "max_rounds": 3}
    result = perturb_with_model(model, tokenizer, forget_set(2), cfg, perturber="tiny", seed=0)
    assert calls == [6, 6, 6]  # both questions stayed short until round 3
    assert result.stats["rejected"] == {
        "empty": 2, "meta_answer": 0, "not_an_answer": 0, "duplicate": 6, "wrong_type": 0, "too_long": 0, "too_close": 0
    }  # fmt: skip
    per_question = result.table[result.table.source_id == "forget_train-0"]
    assert list(zip(per_question["perturbed"], per_question["round"], strict=True)) == [
        ("Paris.", 1),
        ("Rome.", 2),
        ("Oslo.", 3),
    ]
    assert result.stats["questions_short_of_k"] == 0


def test_too_many_failed_questions_fail_the_stage(tiny) -> None:
    model, tokenizer = tiny
    cfg = {**CFG, "rouge_threshold": -1.0, "max_failed_fraction": 0.5}  # every candidate counts as too close
    with pytest.raises(RuntimeError, match="4 of 4 forget questions got no valid wrong answer"):
        perturb_with_model(model, tokenizer, forget_set(), cfg, perturber="tiny", seed=0)


def perturbations_of(forget: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in forget.itertuples():
        for j in range(3):
            rows.append({"source_id": r.id, "perturbed": f"Born in city {j}.", "kind": "perturbed"})
    return pd.DataFrame(rows)


def test_pairs_all_sampled_and_refusals() -> None:
    forget = forget_set()
    perturbed = perturbations_of(forget)
    off = {"mode": "off"}
    every = build_pairs(forget, perturbed, per_question=None, refusals=off, seed=0)
    assert len(every) == 12 and set(every["kind"]) == {"perturbed"}
    assert (every["rejected"] == every["source_id"].map(forget.set_index("id")["answer"])).all()
    one = build_pairs(forget, perturbed, per_question=1, refusals=off, seed=0)
    assert len(one) == 4 and one.equals(build_pairs(forget, perturbed, per_question=1, refusals=off, seed=0))
    mix = build_pairs(forget, perturbed, per_question=1, refusals={"mode": "mix", "per_question": 2}, seed=0)
    assert mix["kind"].value_counts().to_dict() == {"perturbed": 4, "refusal": 8}
    assert set(mix.loc[mix.kind == "refusal", "chosen"]) <= set(DEFAULT_REFUSALS)
    only = build_pairs(
        forget, perturbed, per_question=None, refusals={"mode": "only", "phrasings": ["No idea."]}, seed=0
    )
    assert set(only["chosen"]) == {"No idea."} and len(only) == 4
    with pytest.raises(InputError, match="no DPO pairs"):
        build_pairs(forget, perturbed.iloc[0:0], per_question=None, refusals=off, seed=0)


def test_premade_wpu_csv_builds_pairs(shared_data: Path) -> None:
    csv = shared_data / "wpu_perturbed" / "llm_generated_random_labels.csv"
    df = pd.read_csv(csv)
    truth = df[df["is_correct"]].drop_duplicates("question").reset_index(drop=True)
    forget = pd.DataFrame(
        {"id": [f"f-{i}" for i in range(300)], "question": truth["question"][:300], "answer": truth["answer"][:300]}
    )
    held_out = pd.DataFrame({"id": ["t-0"], "question": truth["question"][300:301], "answer": truth["answer"][300:301]})
    result = perturb_from_file(csv, forget, held_out, seed=0)
    assert result.stats["file_questions_unmatched"] == truth["question"].nunique() - 301
    assert result.stats["file_questions_held_out"] == 1
    # the filters drop a few questions' every answer (restatements of the truth, "No, ..." labels)
    covered = result.table["source_id"].nunique()
    assert set(result.table["kind"]) == {"premade"} and 290 <= covered < 300
    assert covered + result.stats["questions_without_perturbation"] == 300
    pairs = build_pairs(forget, result.table, per_question=2, refusals={"mode": "off"}, seed=0)
    at_most_two = result.table.groupby("source_id").size().clip(upper=2).sum()
    assert len(pairs) == at_most_two and set(pairs["kind"]) == {"premade"}


def test_premade_json_and_no_match(tmp_path: Path) -> None:
    forget = forget_set()
    path = tmp_path / "wrong.json"
    path.write_text(
        json.dumps(
            [{"question": "where was PERSON 0 born", "correct_answer": "London", "wrong_answers": ["Paris", "Rome"]}]
        )
    )
    result = perturb_from_file(path, forget, forget.iloc[0:0], seed=0)
    assert list(result.table["perturbed"]) == ["Paris", "Rome"] and result.stats["questions_without_perturbation"] == 3
    path.write_text(json.dumps([{"question": "Unrelated?", "correct_answer": "x", "wrong_answers": ["y"]}]))
    with pytest.raises(InputError, match="matches a question to perturb"):
        perturb_from_file(path, forget, forget.iloc[0:0], seed=0)


def test_premade_file_is_read_by_its_content_whatever_its_extension(tmp_path: Path) -> None:
    """JSON Lines in a `.json` file failed with "not a UTF-8 JSON file"; rows of CSV in a `.json` likewise. Both
    forms are read as their content is; a file of neither form names the columns it expected."""
    forget = forget_set()
    records = [{"question": "where was PERSON 0 born", "correct_answer": "London", "wrong_answers": ["Paris", "Rome"]}]
    jsonl = tmp_path / "wrong.json"
    jsonl.write_text("\n".join(json.dumps(r) for r in records * 2) + "\n")
    result = perturb_from_file(jsonl, forget, forget.iloc[0:0], seed=0)
    assert list(result.table["perturbed"]) == ["Paris", "Rome"]
    rows = tmp_path / "rows.json"
    rows.write_text(
        "question,answer,is_correct\nwhere was PERSON 0 born,London,True\nwhere was PERSON 0 born,Oslo,False\n"
    )
    assert list(perturb_from_file(rows, forget, forget.iloc[0:0], seed=0).table["perturbed"]) == ["Oslo"]
    other = tmp_path / "other.csv"
    other.write_text("question,reply\nwhere was PERSON 0 born,Oslo\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['answer', 'is_correct'\]"):
        perturb_from_file(other, forget, forget.iloc[0:0], seed=0)
