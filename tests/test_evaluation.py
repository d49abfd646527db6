"""Generation table, per-row scores and the summary, on a tiny model and on the real TruthfulQA CSV."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearning.data.qa_table import OFFICIAL_TRUTHFULQA_COLUMNS as TQA_COLUMNS
from unlearning.data.qa_table import build_truthfulqa
from unlearning.inference.batching import run_batched
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle, build_prompt
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.scoring.evaluation import (
    QA_SPLITS,
    answer_questions,
    build_summary,
    evaluation_questions,
    score_answers,
)

STYLE = PromptStyle(instruction="Give only one sentence answer.")


@pytest.fixture(scope="module")
def tiny(tiny_manifest: Manifest):
    return load_model(tiny_manifest, device=torch.device("cpu"))


def qa_table() -> pd.DataFrame:
    rows = []
    for split in ("forget_train", "forget_test", "retain_train", "retain_test", "general_train", "general_test"):
        for i in range(2):
            rows.append((f"{split}-{i}", "Ada", f"{split} question {i}?", f"Answer {i}.", split))
    return pd.DataFrame(rows, columns=["id", "person", "question", "answer", "split"])


def test_loglik_matches_a_manual_forward_pass(tiny) -> None:
    model, tokenizer = tiny
    [ll] = continuation_logliks(model, tokenizer, ["Question: Who?\nAnswer:"], ["Ada Lovelace."], batch_size=1)
    p = tokenizer("Question: Who?\nAnswer:", add_special_tokens=False)["input_ids"]
    c = tokenizer(" Ada Lovelace.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([p + c])).logits[0].float(), -1)
    manual = sum(float(logp[len(p) - 1 + i, tok]) for i, tok in enumerate(c))
    assert ll.tokens == len(c) and ll.total == pytest.approx(manual, abs=1e-4)
    batched = continuation_logliks(
        model, tokenizer, ["A", "Question: Who?\nAnswer:"], ["b c d e", "Ada Lovelace."], batch_size=2
    )
    assert batched[1].total == pytest.approx(ll.total, abs=1e-4), "padding in a batch must not change a score"


def test_oom_halves_the_batch_and_retries() -> None:
    sizes = []

    def fn(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return [x * 10 for x in batch]

    assert run_batched([1, 2, 3, 4, 5], fn, batch_size=8, sort_key=lambda x: x) == [10, 20, 30, 40, 50]
    assert sizes[:3] == [5, 4, 2]


def test_score_variant_end_to_end_on_real_truthfulqa(tiny, shared_data: Path) -> None:
    model, tokenizer = tiny
    spec = {
        "source": "local",
        "path": str(shared_data / "truthfulqa" / "TruthfulQA.csv"),
        "columns": TQA_COLUMNS,
        "limit": 6,
    }
    tqa = build_truthfulqa(spec, seed=0)
    questions = evaluation_questions(qa_table(), tqa)
    gens = answer_questions(model, tokenizer, questions, STYLE, max_new_tokens=8, batch_size=4)
    assert list(gens.columns) == ["id", "split", "kind", "person", "question", "reference", "generation", "new_tokens"]
    assert len(gens) == 12 + 6 and (gens["new_tokens"] > 0).all()
    scores = score_answers(model, tokenizer, gens, tqa, STYLE, batch_size=4)
    truthful = scores[scores["split"] == "truthfulqa"]
    assert truthful["mc1"].isin([0.0, 1.0]).all() and truthful["mc2"].between(0, 1).all()
    assert scores.loc[scores["split"] != "truthfulqa", "mc2"].isna().all()
    assert scores["answer_prob"].between(0, 1).all()
    finite = scores["perplexity"].dropna()
    assert len(finite) and (finite > 1).all()
    # the perplexity that came from the likelihood pass (no adapter: the model judges itself) is the judge's own
    prompts = [build_prompt(tokenizer, q, **vars(STYLE)) for q in gens["question"]]
    judged = continuation_logliks(model, tokenizer, prompts, gens["generation"].tolist(), batch_size=1)
    alone = [math.exp(-ll.mean) if ll.tokens else math.nan for ll in judged]
    assert scores["perplexity"].tolist() == pytest.approx(alone, rel=1e-4, nan_ok=True)
    summary = build_summary({("tiny", "base"): scores, ("tiny", "unlearned"): scores})
    headline = summary[summary["metric"].str.endswith(("_drop", "_change"))]
    assert set(headline["variant"]) == {"unlearned"} and set(headline["subset"]) == {"all"}
    drops = headline[headline["metric"] == "rougeL_recall_drop"]
    assert set(drops["split"]) == set(QA_SPLITS)
    assert (drops["value"] == 0).all(), "identical variants have no drop"
    assert set(headline.loc[headline.split == "truthfulqa", "metric"]) >= {"mc2_change", "rougeL_recall_drop"}


def test_an_adapter_variant_is_judged_by_the_base_model(tiny_manifest: Manifest) -> None:
    """With a LoRA adapter, the likelihoods are the variant's and the perplexity of its answers the base model's."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    questions = evaluation_questions(qa_table().head(4), pd.DataFrame(columns=["id", "question", "best_answer"]))
    gens = answer_questions(model, tokenizer, questions, STYLE, max_new_tokens=6, batch_size=4)
    base = score_answers(model, tokenizer, gens, pd.DataFrame(columns=["id"]), STYLE, batch_size=4)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False)
    variant = get_peft_model(model, lora).eval()
    scores = score_answers(variant, tokenizer, gens, pd.DataFrame(columns=["id"]), STYLE, batch_size=4)
    assert scores["perplexity"].tolist() == pytest.approx(base["perplexity"].tolist(), rel=1e-4, nan_ok=True)
    assert (scores["answer_prob"] / base["answer_prob"] - 1).abs().min() > 0.01, "the adapter scored the answers"


def test_summary_marks_empty_split(tiny) -> None:
    model, tokenizer = tiny
    qa = qa_table()
    qa = qa[qa["split"] != "forget_test"]
    tqa = pd.DataFrame(
        {
            "id": ["t"],
            "question": ["Is the sky blue?"],
            "best_answer": ["Yes."],
            "correct_answers": [["Yes."]],
            "incorrect_answers": [["No."]],
            "category": ["x"],
        }
    )
    gens = answer_questions(model, tokenizer, evaluation_questions(qa, tqa), STYLE, max_new_tokens=4, batch_size=8)
    summary = build_summary({("tiny", "base"): score_answers(model, tokenizer, gens, tqa, STYLE, batch_size=8)})
    empty = summary[(summary.split == "forget_test")].set_index("metric")["value"]
    assert empty.to_dict() == {"n": 0}  # n = 0 and no NaN-only metric rows
