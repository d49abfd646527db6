"""Answer every evaluation question with a model variant, then score the answers.

The same questions (the train and held-out parts of the forget, hard-retain and general sets, and TruthfulQA) are
answered by the base model and by every unlearned variant, with the same prompts and greedy decoding, so that any
difference is the adapter's doing.
Scores combine text overlap with the truth (ROUGE, BLEU), the model's own probability of the true answer
(teacher-forced), TruthfulQA multiple choice by log-likelihood, and fluency (perplexity under the base model,
degenerate repetition).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..inference.generation import generate
from ..inference.likelihood import continuation_logliks
from ..inference.prompting import PromptStyle, build_prompt, stops_at_newline
from ..models.adapters import merged_for_inference
from . import field_scores, metric_registry, metrics

log = logging.getLogger(__name__)
GENERATION_COLUMNS = ["id", "split", "kind", "person", "question", "reference", "generation", "new_tokens"]
EVAL_SPLITS = (
    "forget_train",
    "forget_test",
    "retain_train",
    "retain_test",
    "general_train",
    "general_test",
    "truthfulqa",
)
SUBSETS = ("all", "known")
#: ``kind`` is ``all`` (every probe kind together) or one probe kind (``qa``, ``cloze``, ...; see qa_data.KINDS)
SUMMARY_COLUMNS = ["model", "variant", "split", "subset", "kind", "metric", "value"]
ALL_KINDS = "all"


def evaluation_questions(qa: pd.DataFrame, truthfulqa: pd.DataFrame) -> pd.DataFrame:
    """``id, split, kind, person, question, reference`` for every QA pair or probe and TruthfulQA item (best answer
    as reference; kind ``qa``)."""
    persons = qa.assign(kind=qa["kind"] if "kind" in qa.columns else "qa")
    persons = persons[["id", "split", "kind", "person", "question", "answer"]].rename(columns={"answer": "reference"})
    tqa = pd.DataFrame(
        {
            "id": truthfulqa["id"],
            "split": "truthfulqa",
            "kind": "qa",
            "person": "",
            "question": truthfulqa["question"],
            "reference": truthfulqa["best_answer"],
        }
    )
    return pd.concat([persons, tqa], ignore_index=True)


def prompts_for(tokenizer: PreTrainedTokenizerBase, questions: Sequence[str], style: PromptStyle) -> list[str]:
    return [build_prompt(tokenizer, q, **vars(style)) for q in questions]


def answer_questions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    style: PromptStyle,
    *,
    max_new_tokens: int,
    batch_size: int,
) -> pd.DataFrame:
    """One greedy answer per question, in the generation table's columns."""
    outs = generate(
        model,
        tokenizer,
        prompts_for(tokenizer, questions["question"], style),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_at_newline=stops_at_newline(style),
        desc="generate",
    )
    table = questions.copy()
    if "kind" not in table.columns:
        table["kind"] = "qa"
    table["generation"] = [o.text for o in outs]
    table["new_tokens"] = np.array([o.new_tokens for o in outs], dtype="int64")
    return table[GENERATION_COLUMNS].reset_index(drop=True)


def likelihood_requests(
    questions: pd.DataFrame, prompts: Sequence[str], truthfulqa: pd.DataFrame
) -> tuple[list[tuple[str, str]], dict[str, tuple[int, int, int, int]]]:
    """Every (prompt, continuation) a variant is scored on, for one batched pass: each question's true answer in
    row order, then every TruthfulQA option; and per TruthfulQA id (start, #correct, #incorrect, #options)."""
    requests: list[tuple[str, str]] = [(p, ref) for p, ref in zip(prompts, questions["reference"], strict=True)]
    mc_slices: dict[str, tuple[int, int, int, int]] = {}
    tqa = truthfulqa.set_index("id")
    prompt_of = dict(zip(questions["id"], prompts, strict=True))
    for qid in questions.loc[questions["split"] == "truthfulqa", "id"]:
        item = tqa.loc[qid]
        start = len(requests)
        # the multiple_choice hub config scores MC1 against its own incorrect choices (mc1_targets), as lm-eval does
        mc1_incorrect = list(item["mc1_incorrect"]) if "mc1_incorrect" in item.index and _listlike(item) else []
        options = [item["best_answer"], *item["correct_answers"], *item["incorrect_answers"], *mc1_incorrect]
        requests += [(prompt_of[qid], o) for o in options]
        mc_slices[qid] = (start, len(item["correct_answers"]), len(item["incorrect_answers"]), len(options))
    return requests, mc_slices


def _listlike(item: pd.Series) -> bool:
    value = item["mc1_incorrect"]
    return value is not None and not isinstance(value, str | float) and len(value) > 0


def score_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    generations: pd.DataFrame,
    truthfulqa: pd.DataFrame,
    style: PromptStyle,
    *,
    batch_size: int,
    wrong: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Per-row scores of one variant's generations.

    Likelihoods are computed under ``model`` as given (the variant; an adapter merged into float32 weights for
    speed, :func:`unlearning.models.adapters.merged_for_inference`); perplexity of the generations under the base
    model, i.e. with the adapter disabled when ``model`` carries one (a pass before the merge), so fluency is judged
    by one fixed judge.
    ``wrong`` (question id -> wrong answers, :func:`unlearning.scoring.field_scores.wrong_answers`) adds the truth-ratio
    and choice columns; every other column of :data:`unlearning.scoring.field_scores.FIELD_COLUMNS` comes from the same
    pass.
    """
    df = generations.reset_index(drop=True).copy()
    df = pd.concat([df, metrics.rouge(df["generation"].tolist(), df["reference"].tolist())], axis=1)
    df["bleu"] = metrics.sentence_bleu(df["generation"].tolist(), df["reference"].tolist())
    df["degenerate"] = [metrics.is_degenerate(g) for g in df["generation"]]
    prompts = prompts_for(tokenizer, df["question"], style)

    requests, mc_slices = likelihood_requests(df, prompts, truthfulqa)
    wrong_slices = field_scores.add_wrong_requests(requests, df["id"], prompts, wrong or {})
    judged: list | None = None
    if hasattr(model, "disable_adapter"):  # the base model judges fluency, before the adapter is merged
        with model.disable_adapter():
            judged = continuation_logliks(
                model, tokenizer, prompts, df["generation"].tolist(), batch_size=batch_size, desc="perplexity"
            )
    else:  # without an adapter the model is its own judge: its generations join the same pass (sharing prompts)
        judged_start = len(requests)
        requests += list(zip(prompts, df["generation"].tolist(), strict=True))
    details = field_scores.wants_details(df["split"]) + [False] * (len(requests) - len(df))
    with merged_for_inference(model):
        lls = continuation_logliks(
            model,
            tokenizer,
            [r[0] for r in requests],
            [r[1] for r in requests],
            batch_size=batch_size,
            desc="likelihood",
            details=details,
        )
    df["answer_prob"] = [math.exp(ll.mean) if ll.tokens else math.nan for ll in lls[: len(df)]]
    mc1, mc2 = [], []
    for qid in df["id"]:
        if qid not in mc_slices:
            mc1.append(math.nan)
            mc2.append(math.nan)
            continue
        start, n_correct, n_incorrect, n = mc_slices[qid]
        totals = [ll.total for ll in lls[start : start + n]]
        best, correct = totals[0], totals[1 : 1 + n_correct]
        incorrect = totals[1 + n_correct : 1 + n_correct + n_incorrect]
        mc1_incorrect = totals[1 + n_correct + n_incorrect :] or incorrect
        mc1.append(metrics.mc1(best, mc1_incorrect))
        mc2.append(metrics.mc2(correct, incorrect))
    df["mc1"], df["mc2"] = mc1, mc2
    df = field_scores.add_field_columns(df, lls[: len(df)], lls, wrong_slices)

    if judged is None:
        judged = lls[judged_start:]
    df["perplexity"] = [math.exp(-ll.mean) if ll.tokens else math.nan for ll in judged]
    return df


def _row(model: str, variant: str, split: str, subset: str, metric: str, value: float, kind: str = ALL_KINDS) -> dict:
    return {
        "model": model,
        "variant": variant,
        "split": split,
        "subset": subset,
        "kind": kind,
        "metric": metric,
        "value": float(value),
    }


def _metrics(part: pd.DataFrame, table: pd.DataFrame, split: str) -> dict[str, float]:
    """Every registered metric that applies to ``split`` and has a value on ``part`` (NaN ones are left out)."""
    values = {}
    for metric in metric_registry.for_split(split):
        value = metric.summarize(part, table, split)
        if not math.isnan(value):
            values[metric.name] = value
    return values


def _kinds(table: pd.DataFrame) -> pd.Series:
    return table["kind"].astype(str) if "kind" in table.columns else pd.Series("qa", index=table.index)


def summarize_variant(
    scores: pd.DataFrame, model: str, variant: str, known_ids: set[str] | None = None, notes: list[str] | None = None
) -> list[dict]:
    """Aggregate rows (``model, variant, split, subset, kind, metric, value``) of one variant.

    Every split is summarised on subset ``all`` and, when ``known_ids`` (the ids the base model knows) is given, on
    subset ``known``; each over all probe kinds (kind ``all``) and per probe kind present in the split. Metric ``n``
    is the row count; a subset without rows gets ``n = 0`` and no other metric (rather than NaNs), and a note saying
    why is appended to ``notes``. Metrics and their aggregation come from :mod:`unlearning.scoring.metric_registry`.
    """
    rows = []
    kinds_of = _kinds(scores)
    subsets = {"all": scores}
    if known_ids is not None:
        subsets["known"] = scores[scores["id"].astype(str).isin(known_ids)]
    for subset, table in subsets.items():
        kind_tables = {ALL_KINDS: table}
        for kind in dict.fromkeys(kinds_of.loc[table.index]):
            kind_tables[kind] = table[kinds_of.loc[table.index] == kind]
        for kind, kind_table in kind_tables.items():
            for split in EVAL_SPLITS:
                part = kind_table[kind_table["split"] == split]
                if kind != ALL_KINDS and not len(part):
                    continue
                rows.append(_row(model, variant, split, subset, "n", len(part), kind))
                if len(part):
                    rows += [
                        _row(model, variant, split, subset, k, v, kind)
                        for k, v in _metrics(part, kind_table, split).items()
                    ]
                elif notes is not None and variant == "base":
                    none = subset == "all" or not (scores["split"] == split).any()
                    why = "no questions in this split" if none else "the base model knows none"
                    notes.append(f"{model} {split} ({subset}): n=0, {why}")
    return rows


def overall_rows(summary: pd.DataFrame) -> list[dict]:
    """Per (model, variant): the registry's model-level metrics (model utility) from the variant's own figures on
    all questions and all kinds, under split ``overall``."""
    rows = []
    base = summary[(summary["subset"] == "all") & (summary["kind"] == ALL_KINDS)]
    keyed = base[["model", "variant", "split", "metric", "value"]].itertuples(index=False)
    values = {tuple(k[:-1]): k[-1] for k in keyed}
    for model, variant in dict.fromkeys(zip(base["model"], base["variant"], strict=True)):
        for metric in metric_registry.overall_metrics():
            value = metric.overall(lambda split, name, m=model, v=variant: values.get((m, v, split, name), math.nan))
            if not math.isnan(value):
                rows.append(_row(model, variant, metric_registry.OVERALL, "all", metric.name, value))
    return rows


def change_rows(summary: pd.DataFrame) -> list[dict]:
    """Per (model, non-base variant, split, subset, kind), for each registered metric with a ``headline``:
    ``{metric}_drop`` = base - variant (``drop``) or ``{metric}_change`` = variant - base (``change``), stored under
    the variant itself (``rougeL_recall_drop``, ``mc2_change``, ``perplexity_change``...)."""
    rows = []
    headline = {m.name: m.headline for m in metric_registry.METRICS if m.headline}
    wide = summary[summary["metric"].isin(headline)].pivot_table(
        index=["model", "split", "subset", "kind", "metric"], columns="variant", values="value", dropna=False
    )
    if "base" not in wide.columns:
        return rows
    for variant in [v for v in wide.columns if v != "base"]:
        for (model, split, subset, kind, metric), r in wide.iterrows():
            base, other = r["base"], r[variant]
            if math.isnan(base) or math.isnan(other):
                continue
            if headline[metric] == "drop":
                rows.append(_row(model, variant, split, subset, f"{metric}_drop", base - other, kind))
            else:
                rows.append(_row(model, variant, split, subset, f"{metric}_change", other - base, kind))
    return rows


# A base model whose answers on a split are mostly empty or degenerate has nothing there to forget: its recall is
# near zero before any unlearning, and a "drop" (or a rise, when training teaches it the answer format) measures
# the format, not forgetting. Such splits are flagged in the summary (metric `degenerate_base`) and logged.
DEGENERATE_BASE_THRESHOLD = 0.5


def degenerate_base_rows(summary: pd.DataFrame) -> list[dict]:
    """Per model and split, ``headline`` rows ``degenerate_base`` = 1.0 when the base model's ``degenerate_rate``
    (on all questions) exceeds :data:`DEGENERATE_BASE_THRESHOLD` (else 0.0); a warning names the models and splits
    flagged."""
    base = summary[
        (summary["variant"] == "base")
        & (summary["metric"] == "degenerate_rate")
        & (summary["subset"] == "all")
        & (summary["kind"] == ALL_KINDS)
    ]
    rows, flagged = [], {}
    for model, split, rate in zip(base["model"], base["split"], base["value"], strict=True):
        if math.isnan(rate):
            continue
        bad = rate > DEGENERATE_BASE_THRESHOLD
        rows.append(_row(model, "headline", split, "all", "degenerate_base", float(bad)))
        if bad:
            flagged.setdefault(model, []).append(f"{split} {rate:.2f}")
    for model, splits in flagged.items():
        log.warning(
            "model %s: the base model's answers are mostly empty or degenerate (degenerate rate above %.2f on %s); "
            "no forgetting can be measured there. For a base model set `chat_template: false` (few-shot prompt) or "
            "check its prompt",
            model,
            DEGENERATE_BASE_THRESHOLD,
            ", ".join(splits),
        )
    return rows


def build_summary(
    scores: Mapping[tuple[str, str], pd.DataFrame],
    known: Mapping[str, pd.DataFrame] | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The long summary table of every scored (model, variant) run, with the change rows and the ``degenerate_base``
    flags of :func:`degenerate_base_rows` (variant ``headline``) appended.

    ``scores`` maps any list of (model, variant) runs to their score tables; ``known`` maps a model to its
    ``results/known/{model}.parquet`` table (subset ``known`` is then reported for every variant of that model).
    """
    rows = []
    for (model, variant), table in sorted(scores.items()):
        known_ids = None
        if known is not None and model in known:
            k = known[model]
            known_ids = set(k.loc[k["known"].astype(bool), "id"].astype(str))
        rows += summarize_variant(table, model, variant, known_ids, notes)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary = pd.concat([summary, pd.DataFrame(overall_rows(summary), columns=SUMMARY_COLUMNS)], ignore_index=True)
    extra = change_rows(summary) + degenerate_base_rows(summary)
    summary = pd.concat([summary, pd.DataFrame(extra, columns=SUMMARY_COLUMNS)], ignore_index=True)
    return summary.astype({"value": "float64"})
