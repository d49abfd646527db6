"""Probe kinds in the QA table (kind, probe_of), the perturbation stage's scope, the summary per probe kind, and
TruthfulQA's three public forms, on small hand-made tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearning.core.errors import InputError
from unlearning.data.qa_table import (
    KINDS,
    OFFICIAL_TRUTHFULQA_COLUMNS,
    WPU_COLUMNS,
    build_qa,
    build_truthfulqa,
    trainable,
)
from unlearning.perturbation.wrong_answers import forget_questions, scored_questions
from unlearning.scoring.evaluation import SUMMARY_COLUMNS, build_summary, likelihood_requests, score_answers

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workflow_scripts" / "unlearning" / "data" / "sample_data"


def person_rows(person: str, n: int) -> list[dict]:
    return [{"title": person, "question": f"Q{i} about {person}?", "answer": f"A{i}"} for i in range(n)]


def write_spec(tmp_path: Path, forget: list[dict], retain: list[dict]) -> dict:
    spec = {"columns": WPU_COLUMNS}
    for role, data in (("forget", forget), ("retain", retain)):
        pd.DataFrame(data).to_csv(tmp_path / f"{role}.csv", index=False)
        spec[role] = {"source": "local", "path": str(tmp_path / f"{role}.csv")}
    return spec


def test_probes_follow_the_split_of_the_pair_they_probe(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    forget = person_rows("Ada", 5)
    plain = build_qa(write_spec(tmp_path, forget, person_rows("Bob", 5)), 0.4, seed=1)
    assert set(plain["kind"]) == {"qa"}  # WPU-form data without a kind column: QA pairs only
    test_q = plain.loc[plain.split == "forget_test", "question"].iloc[0]
    train_q = plain.loc[plain.split == "forget_train", "question"].iloc[0]
    forget = [{**r, "kind": "", "probe_of": ""} for r in forget] + [
        {"title": "Ada", "question": "Fill in: Ada's answer is ___.", "answer": "A0", "kind": "cloze",
         "probe_of": test_q.upper()},  # matching ignores case
        {"title": "Ada", "question": "Which person answers A1?", "answer": "Ada", "kind": "reverse",
         "probe_of": train_q},
        {"title": "Ada", "question": "Orphan probe?", "answer": "x", "kind": "paraphrase", "probe_of": "no such"},
        {"title": "Ada", "question": "Free probe?", "answer": "y", "kind": "prefix_injection", "probe_of": ""},
    ]  # fmt: skip
    with caplog.at_level("WARNING"):
        qa = build_qa(write_spec(tmp_path, forget, person_rows("Bob", 5)), 0.4, seed=1)
    qa_rows = qa[qa.kind == "qa"].set_index("id")
    # the QA pairs split exactly as without probes (same ids, same splits)
    assert qa_rows["split"].to_dict() == plain.set_index("id")["split"].to_dict()
    by_q = qa.set_index("question")
    assert by_q.at["Fill in: Ada's answer is ___.", "split"] == "forget_test"
    assert by_q.at["Which person answers A1?", "split"] == "forget_train"
    assert by_q.at["Orphan probe?", "split"] == "forget_test" and by_q.at["Free probe?", "split"] == "forget_test"
    assert "1 probe(s) name a probe_of question that is not a QA pair" in caplog.text
    # probes are never trained on: the DPO pairs' questions are forget_train's QA pairs only, and the retain term's
    # rows come from trainable()
    assert set(trainable(qa)["kind"]) == {"qa"} and len(trainable(qa)) == len(plain)
    train, held_out = forget_questions(qa)
    assert set(train["kind"]) == {"qa"} and set(held_out["kind"]) == {"qa"}
    # but every forget and retain question, probes included, gets wrong answers for scoring
    scored = scored_questions(qa)
    assert len(scored) == len(qa) and set(scored["kind"]) == {
        "qa",
        "cloze",
        "reverse",
        "paraphrase",
        "prefix_injection",
    }


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    forget = [{**r, "kind": "qa"} for r in person_rows("Ada", 3)] + [
        {"title": "Ada", "question": "Quiz?", "answer": "A", "kind": "quiz"}
    ]
    with pytest.raises(InputError, match="data row 4: kind 'quiz' is not one of qa, cloze"):
        build_qa(write_spec(tmp_path, forget, person_rows("Bob", 3)), 0.3, seed=1)


def test_embedded_sample_ships_every_probe_kind_for_forget_and_neighbours() -> None:
    files = {"forget": "forget.csv", "retain": "hard_retain.csv", "general": "general_retain.csv"}
    spec = {"columns": WPU_COLUMNS, **{r: {"source": "local", "path": str(SAMPLE / f)} for r, f in files.items()}}
    qa = build_qa(spec, 0.2, seed=42)
    for role in ("forget", "retain"):
        kinds = qa[qa.split.str.startswith(role)].groupby("kind")["person"].nunique()
        # QA pairs of all 13 persons, every probe kind for the 8 probed persons
        assert set(kinds.index) == set(KINDS) and kinds["qa"] == 13 and (kinds.drop("qa") == 8).all(), kinds
        # probes of held-out facts and of trained facts both exist
        probes = qa[qa.split.str.startswith(role) & (qa.kind != "qa")]
        assert set(probes["split"]) == {f"{role}_train", f"{role}_test"}
    assert set(qa[qa.split.str.startswith("general")]["kind"]) == {"qa"}
    # every probe's wrong answers are in the pre-made file (the multiple-choice options are exactly those listed)
    premade = pd.read_csv(SAMPLE / "forget_wrong_answers.csv", dtype=str, keep_default_na=False)
    covered = set(premade["question"])
    assert set(qa.loc[qa.kind != "qa", "question"]) <= covered
    mc = qa[qa.kind == "multiple_choice"].iloc[0]
    options = premade[premade["question"] == mc["question"]]["answer"].tolist()
    assert all(o in mc["question"] for o in options) and mc["answer"] in options
    # and they pass the perturbation stage's filters (a multiple-choice probe's options are judged without the
    # question, which lists them all)
    from unlearning.perturbation.wrong_answers import perturb_from_file

    questions = scored_questions(qa)
    result = perturb_from_file(SAMPLE / "forget_wrong_answers.csv", questions, questions.iloc[:0], seed=0)
    # every forget and hard-retain question of the sample, QA pairs and probes, has its 3 wrong answers: the
    # default run needs no perturber for them
    assert result.stats["uncovered_ids"] == [] and sum(result.stats["rejected"].values()) == 0
    assert (result.table.groupby("source_id").size().reindex(questions["id"]) == 3).all()


# ----------------------------------------------------------------------------------------- summary per kind


def scores_table(recall: dict[str, float]) -> pd.DataFrame:
    rows = []
    for split in ("forget_test", "retain_test"):
        for kind in ("qa", "cloze"):
            for i in range(2):
                rows.append({
                    "id": f"{split}-{kind}-{i}", "split": split, "kind": kind, "reference": "A", "generation": "A b",
                    "rougeL_recall": recall[kind], "rougeL_f1": 0.5, "rouge1_f1": 0.5, "bleu": 0.1,
                    "answer_prob": 0.5, "perplexity": 4.0, "degenerate": False, "mc1": math.nan, "mc2": math.nan,
                    "loss": (3.0 + i) if split == "forget_test" else (1.0 + i), "mink_pp": 0.0,
                    "truth_ratio_true_better": 0.5, "choice_accuracy": 1.0, "fluency_entropy": 1 / 3,
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_has_every_figure_per_kind_and_over_all_kinds() -> None:
    base = scores_table({"qa": 1.0, "cloze": 0.5})
    unlearned = scores_table({"qa": 0.0, "cloze": 0.5})
    summary = build_summary({("m", "base"): base, ("m", "npo"): unlearned})
    assert list(summary.columns) == SUMMARY_COLUMNS
    wide = summary.set_index(["variant", "split", "subset", "kind", "metric"])["value"]
    assert wide[("base", "forget_test", "all", "all", "rougeL_recall")] == pytest.approx(0.75)
    assert wide[("base", "forget_test", "all", "cloze", "rougeL_recall")] == 0.5
    assert wide[("npo", "forget_test", "all", "qa", "rougeL_recall_drop")] == 1.0
    assert wide[("npo", "forget_test", "all", "cloze", "rougeL_recall_drop")] == 0.0
    assert wide[("base", "forget_test", "all", "qa", "n")] == 2
    assert wide[("base", "forget_test", "all", "all", "n")] == 4
    # LOSS separates forget (3, 4) from neighbours (1, 2) completely, per kind and over all kinds
    assert wide[("base", "forget_test", "all", "all", "mia_auc_loss")] == 1.0
    assert wide[("base", "forget_test", "all", "cloze", "mia_auc_loss")] == 1.0
    assert ("base", "retain_test", "all", "all", "mia_auc_loss") not in wide.index  # forget splits only
    # model utility: harmonic mean of retain_test answer_prob 0.5, rougeL_recall 0.75, truth ratio 0.5
    # (no general or TruthfulQA rows here) = 3 / (2 + 4/3 + 2) = 0.692308
    assert wide[("base", "overall", "all", "all", "model_utility")] == pytest.approx(3 / (2 + 4 / 3 + 2))
    assert wide[("base", "forget_test", "all", "all", "fluency_entropy")] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------- TruthfulQA forms


def test_official_csv_at_full_size_builds_every_items_options(shared_data: Path) -> None:
    spec = {"source": "local", "path": str(shared_data / "truthfulqa" / "TruthfulQA.csv"),
            "columns": OFFICIAL_TRUTHFULQA_COLUMNS}  # fmt: skip
    tqa = build_truthfulqa(spec, seed=0)
    assert len(tqa) == 817 and tqa["category"].nunique() == 38
    questions = pd.DataFrame({"id": tqa["id"], "split": "truthfulqa", "reference": tqa["best_answer"]})
    requests, slices = likelihood_requests(questions, ["Q"] * len(tqa), tqa)
    assert len(slices) == 817
    for item in tqa.itertuples():
        start, n_correct, n_incorrect, n = slices[item.id]
        assert n_correct >= 1 and n_incorrect >= 1 and n == 1 + n_correct + n_incorrect
        assert requests[start][1] == item.best_answer


def test_hub_configs_load_and_mc1_uses_mc1_targets(tmp_path: Path, tiny_manifest) -> None:
    from unlearning.inference.likelihood import continuation_logliks
    from unlearning.inference.prompting import PromptStyle, build_prompt
    from unlearning.models.checkpoints import load_model
    from unlearning.scoring.metrics import mc1, mc2

    # the generation config: snake_case columns with list cells (here as a JSON Lines export)
    gen_row = {"type": "Adversarial", "category": "Misconceptions", "question": "Is the Earth flat?",
               "best_answer": "No", "correct_answers": ["No", "It is round"], "incorrect_answers": ["Yes"],
               "source": "x"}  # fmt: skip
    (tmp_path / "gen.jsonl").write_text(json.dumps(gen_row) + "\n", encoding="utf-8")
    columns = {k: k for k in ("question", "best_answer", "correct_answers", "incorrect_answers", "category")}
    gen = build_truthfulqa({"source": "local", "path": str(tmp_path / "gen.jsonl"), "columns": columns}, seed=0)
    assert gen.iloc[0]["correct_answers"] == ["No", "It is round"] and "mc1_incorrect" not in gen.columns
    # the multiple_choice config: recognised by its columns, whatever the mapping says
    mc_row = {"question": "Is the Earth flat?",
              "mc1_targets": {"choices": ["No", "Yes", "Only in Kansas"], "labels": [1, 0, 0]},
              "mc2_targets": {"choices": ["No", "It is round", "Yes"], "labels": [1, 1, 0]}}  # fmt: skip
    (tmp_path / "mc.jsonl").write_text(json.dumps(mc_row) + "\n", encoding="utf-8")
    tqa = build_truthfulqa({"source": "local", "path": str(tmp_path / "mc.jsonl"), "columns": columns}, seed=0)
    item = tqa.iloc[0]
    assert list(item["mc1_incorrect"]) == ["Yes", "Only in Kansas"] and list(item["incorrect_answers"]) == ["Yes"]
    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    style = PromptStyle(instruction="Give only one sentence answer.")
    gens = pd.DataFrame({"id": [item["id"]], "split": ["truthfulqa"], "kind": ["qa"], "person": [""],
                         "question": [item["question"]], "reference": ["No"], "generation": ["No"],
                         "new_tokens": [1]})  # fmt: skip
    scores = score_answers(model, tokenizer, gens, tqa, style, batch_size=4)
    prompt = build_prompt(tokenizer, item["question"], **vars(style))
    opts = ["No", "Yes", "Only in Kansas", "It is round"]
    ll = {o: x.total for o, x in zip(opts, continuation_logliks(model, tokenizer, [prompt] * 4, opts, batch_size=1),
                                        strict=True)}  # fmt: skip
    assert scores.iloc[0]["mc1"] == mc1(ll["No"], [ll["Yes"], ll["Only in Kansas"]])
    assert scores.iloc[0]["mc2"] == pytest.approx(mc2([ll["No"], ll["It is round"]], [ll["Yes"]]), rel=1e-4)


def test_report_table_by_probe_kind() -> None:
    from unlearning.report.render import kinds_table
    from unlearning.report.tables import Figures, kind_rows

    summary = build_summary(
        {("m", "base"): scores_table({"qa": 1.0, "cloze": 0.5}), ("m", "npo"): scores_table({"qa": 0.0, "cloze": 0.5})}
    )
    fig = Figures(summary)
    assert set(fig.summary["kind"]) == {"all"}  # the main tables read figures over all kinds
    rows = kind_rows(fig, "m", ["base", "npo"])
    got = {(r["split"], r["kind"], r["metric"]): r["cells"]["npo"].verdict for r in rows}
    # ROUGE-L recall falls 1.0 -> 0.0 on forget QA (good), stays on cloze (same); neighbours unchanged
    assert got[("forget_test", "qa", "rougeL_recall")] == "good"
    assert got[("forget_test", "cloze", "rougeL_recall")] == "neutral"
    assert ("retain_test", "cloze", "choice_accuracy") in got
    assert [r["kind"] for r in rows if r["split"] == "forget_test"][:2] == ["qa", "qa"]  # qa first, then probes
    assert kinds_table(fig, "m", ["base", "npo"])["headers"][:2] == ["split", "probe kind"]
    # a summary without probes (WPU) has no such table
    plain = build_summary({("m", "base"): scores_table({"qa": 1.0, "cloze": 0.5}).assign(kind="qa")})
    assert kind_rows(Figures(plain), "m", ["base"]) == []
