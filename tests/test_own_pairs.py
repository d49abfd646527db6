"""DPO pairs in the model's own answer format (``pairing: own_answer``): the span replacement, the counts of the
questions left out, the shared sampling with the short pairs, the light entry script, and the DAG (an own_answer
entry waits on its model's base generation, a short one does not)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from unlearning.core.errors import InputError
from unlearning.core.parquet_io import read_metadata, read_parquet, write_parquet
from unlearning.perturbation.pairs import (
    OWN_PAIR_COLUMNS,
    PAIR_COLUMNS,
    build_own_pairs,
    build_pairs,
    replace_answer,
)

ROOT = Path(__file__).resolve().parents[1]
OFF = {"mode": "off"}

# hand-made forget_train rows, the base model's answers and the wrong answers
FORGET = pd.DataFrame(
    {
        "id": ["forget_train-1", "forget_train-2", "forget_train-3", "forget_train-4", "forget_train-5"],
        "person": ["Steve Jobs", "Steve Jobs", "Steve Jobs", "Steve Jobs", "Ada Lovelace"],
        "question": [
            "Which phone did Steve Jobs introduce in 2007?",
            "In which city was Steve Jobs born?",
            "Who co-founded Apple with Steve Wozniak?",
            "Which company did Steve Jobs found after leaving Apple?",
            "Whose notes describe the first program?",
        ],
        "answer": ["iPhone", "San Francisco", "Steve Jobs", "NeXT", "Ada Lovelace"],
        "split": "forget_train",
        "kind": "qa",
    }
)
GENERATIONS = pd.DataFrame(
    {
        "id": ["forget_train-1", "forget_train-2", "forget_train-3", "forget_train-4"],  # none for forget_train-5
        "generation": [
            "Steve Jobs introduced the iPhone in 2007, and the iPhone changed phones.",  # twice
            "san francisco, California, is where Steve Jobs was born.",  # lower case, opening the answer
            "Jobs co-founded Apple in 1976.",  # part of the true answer only
            "Steve Jobs founded Pixar after leaving Apple.",  # a wrong answer: the truth is not there
        ],
    }
)
PERTURBATIONS = pd.DataFrame(
    {
        "source_id": ["forget_train-1"] * 2 + ["forget_train-2"] * 2 + ["forget_train-3", "forget_train-4"],
        "perturbed": ["BlackBerry", "Nokia 3310", "los Angeles", "Seattle", "Bill Gates", "Atari"],
        "kind": "perturbed",
    }
)


@pytest.mark.parametrize(
    ("text", "answer", "replacement", "expected"),
    [
        ("He introduced the iPhone in 2007.", "iPhone", "BlackBerry", "He introduced the BlackBerry in 2007."),
        ("He introduced the IPHONE.", "iPhone", "BlackBerry", "He introduced the BlackBerry."),  # any case
        ("Born in San \n Francisco.", "San Francisco", "Seattle", "Born in Seattle."),  # any whitespace between words
        ("In 1865 he died; 1865 was the year.", "1865", "1901", "In 1901 he died; 1901 was the year."),  # every one
        ("los angeles is big.", "Los Angeles", "seattle", "Seattle is big."),  # a sentence's first letter
        ("Ulmer Münster stands there.", "Ulm", "Bern", None),  # word boundaries: not inside a word
        ("Jobs co-founded Apple.", "Steve Jobs", "Bill Gates", None),  # a partial match does not count
        ("It played at the Globe Theatre.", "The Globe Theatre", "the Rose", "It played at the Rose."),
        ("It played at Globe Theatre.", "The Globe Theatre", "the Rose", "It played at the Rose."),
        ("He wrote C++ code.", "C++", "Java", "He wrote Java code."),  # an answer ending in non-word characters
        # the text's case where it lower-cased the true answer; names keep theirs
        ("His work on logic and ethics.", "Logic", "Ethics", "His work on ethics and ethics."),
        ("It played at the Globe Theatre.", "The Globe Theatre", "The Rose", "It played at the Rose."),
        ("He was born in paris.", "Paris", "New York", "He was born in New York."),
        ("He held the LOGIC chair.", "Logic", "Ethics", "He held the Ethics chair."),
    ],
)
def test_replace_answer(text: str, answer: str, replacement: str, expected: str | None) -> None:
    assert replace_answer(text, answer, replacement) == expected


def test_own_pairs_differ_only_in_the_fact_and_count_what_is_left_out() -> None:
    pairs, counts = build_own_pairs(FORGET, PERTURBATIONS, GENERATIONS, per_question=1, refusals=OFF, seed=0)
    assert list(pairs.columns) == OWN_PAIR_COLUMNS and list(pairs.columns[:5]) == PAIR_COLUMNS
    assert list(pairs["source_id"]) == ["forget_train-1", "forget_train-2"]
    own = GENERATIONS.set_index("id")["generation"]
    assert (pairs["rejected"] == pairs["source_id"].map(own)).all(), "rejected is the model's own answer"
    short = build_pairs(FORGET, PERTURBATIONS, per_question=1, refusals=OFF, seed=0).set_index("source_id")
    for row in pairs.itertuples():
        wrong = short.loc[row.source_id, "chosen"]  # the same wrong answer as the short pairing's
        assert row.replacement == wrong and row.answer == FORGET.set_index("id").loc[row.source_id, "answer"]
        assert row.chosen == replace_answer(row.rejected, row.answer, wrong)
    iphone = pairs.set_index("source_id").loc["forget_train-1"]
    assert iphone["chosen"] == iphone["rejected"].replace("iPhone", iphone["replacement"])  # both occurrences
    city = pairs.set_index("source_id").loc["forget_train-2"]
    assert city["chosen"].startswith(city["replacement"][:1].upper() + city["replacement"][1:] + ", California")
    assert counts.as_dict() == {
        "questions": 5,
        "with_pairs": 2,
        "no_generation": 1,  # forget_train-5
        "no_true_span": 2,  # forget_train-3 (only "Jobs"), forget_train-4 ("Pixar")
        "partly_there": 1,  # forget_train-3
        "no_wrong_answer": 0,
        "wrong_holds_truth": 0,
        "pairs": 2,
    }


def test_own_pairs_refusals_and_a_wrong_answer_that_holds_the_truth() -> None:
    perturbations = PERTURBATIONS.assign(perturbed=PERTURBATIONS["perturbed"].replace("BlackBerry", "iPhone 2"))
    every, counts = build_own_pairs(FORGET, perturbations, GENERATIONS, per_question=None, refusals=OFF, seed=0)
    assert counts.wrong_holds_truth == 1 and "iPhone 2" not in set(every["replacement"])  # it still says iPhone
    assert counts.pairs == len(every) == 3  # Nokia 3310, and both cities
    mix = {"mode": "mix", "per_question": 1, "phrasings": ["No idea."]}
    pairs, counts = build_own_pairs(FORGET, PERTURBATIONS, GENERATIONS, per_question=1, refusals=mix, seed=0)
    refusals = pairs[pairs["kind"] == "refusal"]
    assert len(refusals) == 2 and set(refusals["chosen"]) == {"No idea."}, "refusal pairs only where a pair is"
    assert (refusals["rejected"] == refusals["source_id"].map(GENERATIONS.set_index("id")["generation"])).all()
    assert counts.with_pairs == 2 and counts.pairs == 4


def test_no_own_pair_fails_naming_the_model_and_the_counts() -> None:
    nothing = GENERATIONS.assign(generation="I am not sure who that is.")
    message = r"no own-answer DPO pairs for model 'smollm2': of 5 forget_train questions, 1 have no base .* 4 have"
    with pytest.raises(InputError, match=message):
        build_own_pairs(FORGET, PERTURBATIONS, nothing, per_question=1, refusals=OFF, seed=0, model="smollm2")


def test_pairing_is_a_dpo_setting_with_two_values() -> None:
    from unlearning.training.methods import get_method

    assert get_method("dpo").settings_from({}, "dpo").pairing == "short"
    assert get_method("dpo").settings_from({"pairing": "own_answer"}, "d").pairing == "own_answer"
    with pytest.raises(ValueError, match=r"unlearn\.d\.pairing: 'own' is not a valid value \(one of 'short', 'own_"):
        get_method("dpo").settings_from({"pairing": "own"}, "d")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) pairing for method 'idk_dpo'"):
        get_method("idk_dpo").settings_from({"pairing": "own_answer"}, "d")


def test_the_entry_script_stays_free_of_torch() -> None:
    code = (
        "import sys; sys.path.insert(0, 'workflow_scripts'); import unlearning.core.parquet_io, "
        "unlearning.perturbation.pairs, unlearning.perturbation.wrong_answers; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    script = (ROOT / "workflow_scripts" / "build_own_pairs.py").read_text()
    assert re.findall(r"^\s*(?:from|import) (\S+)", script, flags=re.M) == [
        "sys", "pathlib", "unlearning.core.job", "unlearning.core.parquet_io", "unlearning.perturbation.pairs",
        "unlearning.perturbation.wrong_answers",
    ]  # fmt: skip


def snakemake(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def config_with(tmp_path: Path, unlearn: dict) -> Path:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["unlearn"] = unlearn
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_inputs(plan: str) -> dict[str, list[str]]:
    """Output (its first file) -> inputs of every job of a dry run's plan."""
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", plan):
        inputs = re.search(r"^    input: (.*)$", block, flags=re.M)
        output = re.search(r"^    output: ([^,\n]*)", block, flags=re.M)
        if output:
            jobs[output.group(1)] = inputs.group(1).split(", ") if inputs else []
    return jobs


def test_dry_run_an_own_answer_entry_waits_on_the_base_generation_a_short_one_does_not(tmp_path: Path) -> None:
    unlearn = {"dpo": {"method": "dpo"}, "dpo_own": {"method": "dpo", "pairing": "own_answer"}}
    config = config_with(tmp_path, unlearn)
    run = ("-n", "--directory", str(tmp_path), "--configfile", str(config))
    own_log, short_log = "results/unlearn/smollm2/dpo_own/log.parquet", "results/unlearn/smollm2/dpo/log.parquet"
    jobs = job_inputs(snakemake(*run, "--", own_log, short_log).stdout)
    own_pairs = "results/perturb/own_pairs/smollm2.parquet"
    assert own_pairs in jobs["results/unlearn/smollm2/dpo_own/adapter"]
    assert "results/perturb/dpo_pairs.parquet" not in jobs["results/unlearn/smollm2/dpo_own/adapter"]
    assert "results/generate/smollm2/base.parquet" in jobs[own_pairs]
    assert "results/perturb/perturbations.parquet" in jobs[own_pairs]
    assert "results/perturb/dpo_pairs.parquet" in jobs["results/unlearn/smollm2/dpo/adapter"]
    short_only = job_inputs(snakemake(*run, "--", short_log).stdout)
    assert own_pairs not in short_only and "results/generate/smollm2/base.parquet" not in short_only


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"method": "dpo", "pairing": "own"},
            r"config: unlearn\.dpo_own\.pairing: 'own' is not one of \['short', 'own",
        ),
        ({"method": "idk_dpo", "pairing": "own_answer"}, r"unknown setting\(s\) pairing for method 'idk_dpo'"),
    ],
)
def test_a_bad_pairing_fails_before_any_job(entry: dict, message: str, tmp_path: Path) -> None:
    config = config_with(tmp_path, {"dpo_own": entry})
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(config), check=False)
    assert out.returncode != 0 and re.search(message, out.stdout + out.stderr), out.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_the_rule_writes_the_pairs_and_their_counts(tmp_path: Path) -> None:
    """Only build_own_pairs runs (its inputs are planted): the entry script, its log and the Parquet metadata."""
    results = tmp_path / "results"
    write_parquet(FORGET, results / "data" / "qa.parquet", stage="prepare_data", config={})
    write_parquet(PERTURBATIONS, results / "perturb" / "perturbations.parquet", stage="perturb", config={})
    write_parquet(GENERATIONS, results / "generate" / "smollm2" / "base.parquet", stage="generate", config={})
    config = config_with(tmp_path, {"dpo_own": {"method": "dpo", "pairing": "own_answer"}})
    target = "results/perturb/own_pairs/smollm2.parquet"
    snakemake(
        "--cores", "1", "--directory", str(tmp_path), "--configfile", str(config),
        "--allowed-rules", "build_own_pairs", "--", target,
    )  # fmt: skip
    pairs = read_parquet(tmp_path / target, OWN_PAIR_COLUMNS)
    assert list(pairs["source_id"]) == ["forget_train-1", "forget_train-2"]
    meta = read_metadata(tmp_path / target)
    assert meta["stage"] == "build_own_pairs" and meta["model"] == "smollm2"
    assert meta["counts"]["with_pairs"] == 2 and meta["counts"]["no_true_span"] == 2
    log = (tmp_path / "logs" / "build_own_pairs" / "smollm2.log").read_text()
    assert "own-answer DPO pairs: 2" in log and "2 whose base answer lacks the true answer (1 of them" in log
