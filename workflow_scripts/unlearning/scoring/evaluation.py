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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.errors import InputError
from ..core.parquet_io import TEXT_DTYPE, typed_frame
from ..inference.prompting import PromptStyle, build_prompt, stops_at_newline
from . import bootstrap, field_scores, metric_registry, metrics
from .metric_registry import ALL_KINDS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)
GENERATION_COLUMNS = ["id", "split", "kind", "person", "question", "reference", "generation", "new_tokens"]
QA_SPLITS = (
    "forget_train",
    "forget_test",
    "retain_train",
    "retain_test",
    "general_train",
    "general_test",
    "truthfulqa",
)
#: the held-out templates of the model's own descriptions (unlearning.corpus.evaluation)
CORPUS_SPLITS = ("forget_corpus", "retain_corpus", "general_corpus")
#: the summary's splits, by group: a group is summarised for a run whose table has a row of it (a run without a
#: corpus has no corpus splits, a names-only run no QA splits), and within it every split, empty ones with n = 0
SPLIT_GROUPS = (QA_SPLITS, CORPUS_SPLITS)
SUBSETS = ("all", "known")
#: the held-out splits an attack asks (their known facts only; unlearning.attacks)
ATTACK_SPLITS = ("forget_test", "retain_test", "general_test")
#: ``kind`` is ``all`` (every probe kind together) or one probe kind (``qa``, ``cloze``, ...; see qa_data.KINDS);
#: ``ci_low``/``ci_high`` bound a change row's 95% bootstrap interval (NaN elsewhere, and where ``ci_note`` says why
#: a change has none); ``attack`` is empty, or the attack (an ``attacks:`` name) the row's variant went through
SUMMARY_DTYPES = {
    "model": TEXT_DTYPE, "variant": TEXT_DTYPE, "split": TEXT_DTYPE, "subset": TEXT_DTYPE, "kind": TEXT_DTYPE,
    "metric": TEXT_DTYPE, "value": "float64", "ci_low": "float64", "ci_high": "float64", "ci_note": TEXT_DTYPE,
    "attack": TEXT_DTYPE,
}  # fmt: skip
SUMMARY_COLUMNS = list(SUMMARY_DTYPES)


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
    from ..inference.generation import generate  # torch only where a model runs: the summary job stays light

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
    from ..inference.likelihood import continuation_logliks  # as in answer_questions: torch only here
    from ..models.adapters import merged_for_inference

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
        "ci_low": math.nan,
        "ci_high": math.nan,
        "ci_note": "",
        "attack": "",
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
            for split in (s for group in SPLIT_GROUPS if scores["split"].isin(group).any() for s in group):
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


def _point_lookup(summary: pd.DataFrame, model: str) -> dict[tuple, float]:
    rows = summary[summary["model"] == model]
    keyed = rows[["variant", "subset", "kind", "split", "metric", "value"]].itertuples(index=False)
    return {tuple(k[:-1]): k[-1] for k in keyed}


def variant_changes(
    summary: pd.DataFrame,
    scores: Mapping[tuple[str, str], pd.DataFrame],
    known_ids: Mapping[str, set[str] | None],
    *,
    seed: int,
) -> dict[tuple[str, str], dict[bootstrap.ChangeKey, bootstrap.Change]]:
    """Per (model, non-base variant): every change against base with its bootstrap distribution
    (:func:`unlearning.scoring.bootstrap.paired_changes`), its value the difference of the two summary figures."""
    out = {}
    lookups: dict[str, dict[tuple, float]] = {}
    for (model, variant), table in sorted(scores.items()):
        if variant == "base" or (model, "base") not in scores:
            continue
        if model not in lookups:  # one lookup per model, shared by its variants
            lookups[model] = _point_lookup(summary, model)
        values = lookups[model]

        def point(
            part: bootstrap.PartKey, metric: str, which: str, variant: str = variant, values: dict = values
        ) -> float:
            return values.get(("base" if which == "base" else variant, *part, metric), math.nan)

        out[(model, variant)] = bootstrap.paired_changes(
            scores[(model, "base")],
            table,
            known_ids.get(model),
            _kinds,
            point,
            seed=seed,
            where=f"{model}/{variant}",
        )
    return out


def change_rows(model: str, variant: str, changes: Mapping[bootstrap.ChangeKey, bootstrap.Change]) -> list[dict]:
    """Summary rows of one variant's changes: ``{metric}_drop`` (base - variant) or ``{metric}_change`` (variant -
    base) per split, subset and kind, as the registry declares (:attr:`Metric.change_name`), model utility's change
    and the trade-off score under split ``overall``; each with its interval or the note saying why it has none."""
    rows = []
    for (split, subset, kind, metric), change in changes.items():
        row = _row(model, variant, split, subset, metric, change.value, kind)
        row["ci_low"], row["ci_high"] = change.interval()
        row["ci_note"] = change.note
        rows.append(row)
    return rows


def pooled_rows(
    summary: pd.DataFrame,
    changes: Mapping[tuple[str, str], Mapping[bootstrap.ChangeKey, bootstrap.Change]],
    seed_groups: Mapping[str, Sequence[str]],
) -> list[dict]:
    """Per model and entry trained with several seeds (``seed_groups``: entry -> its per-seed variants): the mean
    of every per-seed figure under the entry's own name, and its changes with intervals pooled over the seeds
    (:func:`unlearning.scoring.bootstrap.pool_seeds`)."""
    rows = []
    figures = summary.groupby(["model", "variant", "split", "subset", "kind", "metric"], sort=False)["value"].first()
    for model in dict.fromkeys(summary["model"]):
        for entry, members in seed_groups.items():
            missing = [m for m in members if (model, m) not in changes]
            if missing:
                raise InputError(
                    f"{model}/{entry}: the seeded run(s) {', '.join(missing)} have no scores to pool (expected "
                    f"results/score/{model}/<run>.parquet for every run of {', '.join(members)})"
                )
            per_seed = figures.loc[model].loc[list(members)]
            means = per_seed.groupby(level=["split", "subset", "kind", "metric"], sort=False).agg(["mean", "size"])
            for (split, subset, kind, metric), (mean, size) in means.iterrows():
                if size == len(members):
                    rows.append(_row(model, entry, split, subset, metric, mean, kind))
            rows += change_rows(model, entry, bootstrap.pool_seeds([changes[(model, m)] for m in members]))
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


def split_attacks(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary's rows as (the variants as trained, the attacked runs' rows): readers of the first must never
    see the second, whose figures share their keys. A summary from before attacks has no ``attack`` column."""
    if "attack" not in summary.columns:
        return summary, summary.iloc[0:0]
    attacked = summary["attack"].fillna("").astype(str) != ""
    return summary[~attacked], summary[attacked]


ATTACKED = "attacked"  # the attacked run's name inside attack_rows (base may be attacked too)


def attack_rows(
    scores: Mapping[tuple[str, str], pd.DataFrame],
    attacked: Mapping[tuple[str, str, str], pd.DataFrame],
    known_ids: Mapping[str, set[str] | None],
    *,
    seed: int,
) -> list[dict]:
    """Summary rows of every attacked run (``(model, variant, attack)`` -> its score table on the held-out known
    facts, :data:`ATTACK_SPLITS`): its figures (subset ``known``) and its changes, with the same paired person
    bootstrap, under the variant's name and column ``attack``.

    An unlearned variant's changes are against the base model *under the same attack* where that run exists (a
    relearning fine-tune or a prompt full of facts changes how any model answers; only the gap to the equally
    attacked base is forgetting that held); otherwise, and for the attacked base itself, against the base model.

    Raises InputError when an attacked table does not hold exactly the base model's known held-out facts.
    """
    rows = []
    for (model, variant, attack), table in sorted(attacked.items()):
        where = f"{model}/{variant} after attack {attack}"
        if (model, "base") not in scores or known_ids.get(model) is None:
            raise InputError(f"{where}: no base scores or known facts of {model} to compare it with")
        base = scores[(model, "base")]
        held_out = base["split"].isin(ATTACK_SPLITS) & base["id"].astype(str).isin(known_ids[model])
        expected, got = set(base.loc[held_out, "id"].astype(str)), set(table["id"].astype(str))
        if expected != got:
            extra, lacking = sorted(got - expected), sorted(expected - got)
            raise InputError(
                f"{where}: the attack's scores must hold the base model's {len(expected)} known held-out facts; "
                f"{len(lacking)} missing (first: {lacking[:1]}), {len(extra)} others (first: {extra[:1]})"
            )
        reference = attacked.get((model, "base", attack)) if variant != "base" else None
        if reference is not None and set(reference["id"].astype(str)) != expected:
            raise InputError(f"{where}: the base model's run of the same attack holds other facts than this one")
        runs = {(model, "base"): base[held_out] if reference is None else reference, (model, ATTACKED): table}
        local = [r for run, t in runs.items() for r in summarize_variant(t, model, run[1], expected)]
        changes = variant_changes(typed_frame(local, SUMMARY_DTYPES), runs, {model: expected}, seed=seed)
        asked = [r for r in local if r["subset"] == "known" and r["split"] in ATTACK_SPLITS]
        found = [r for r in asked if r["variant"] == ATTACKED]
        found += [
            r
            for r in change_rows(model, ATTACKED, changes[(model, ATTACKED)])
            if (r["subset"] == "known" and r["split"] in ATTACK_SPLITS) or r["metric"] == bootstrap.TRADEOFF_SCORE
        ]
        rows += [{**r, "variant": variant, "attack": attack} for r in found]
    return rows


def with_corpus_scores(
    scores: Mapping[tuple[str, str], pd.DataFrame], corpus: Mapping[tuple[str, str], pd.DataFrame]
) -> dict[tuple[str, str], pd.DataFrame]:
    """Each run's score table with its corpus score table's rows appended (splits ``*_corpus``); a run with only
    one of them keeps that one. The summary then treats the held-out corpus texts as one more set of questions."""
    out = dict(scores)
    for run, table in corpus.items():
        out[run] = pd.concat([out[run], table], ignore_index=True) if run in out else table
    return out


def build_summary(
    scores: Mapping[tuple[str, str], pd.DataFrame],
    known: Mapping[str, pd.DataFrame] | None = None,
    notes: list[str] | None = None,
    *,
    seed: int = 0,
    seed_groups: Mapping[str, Sequence[str]] | None = None,
    attacked: Mapping[tuple[str, str, str], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The long summary table of every scored (model, variant) run (:data:`SUMMARY_DTYPES`): figures per split,
    subset and kind, model utility, each variant's changes against base with 95% intervals (a paired cluster
    bootstrap over persons seeded with ``seed``, :mod:`unlearning.scoring.bootstrap`), the entries trained with
    several seeds pooled (``seed_groups``: entry -> its per-seed variants), and the ``degenerate_base`` flags of
    :func:`degenerate_base_rows` (variant ``headline``).

    ``scores`` maps any list of (model, variant) runs to their score tables; ``known`` maps a model to its
    ``results/known/{model}.parquet`` table (subset ``known`` is then reported for every variant of that model).
    ``attacked`` maps (model, variant, attack) to an attack's score table (rows of :func:`attack_rows`, column
    ``attack``; every other row has an empty ``attack``).
    Raises InputError when a variant lacks questions its base model answered, or a seed group a run.
    """
    rows = []
    known_ids: dict[str, set[str] | None] = {}
    for (model, variant), table in sorted(scores.items()):
        if known is not None and model in known:
            k = known[model]
            known_ids[model] = set(k.loc[k["known"].astype(bool), "id"].astype(str))
        rows += summarize_variant(table, model, variant, known_ids.get(model), notes)
    summary = typed_frame(rows, SUMMARY_DTYPES)
    summary = pd.concat([summary, typed_frame(overall_rows(summary), SUMMARY_DTYPES)], ignore_index=True)
    changes = variant_changes(summary, scores, known_ids, seed=seed)
    extra = [row for (model, variant), c in changes.items() for row in change_rows(model, variant, c)]
    extra += pooled_rows(summary, changes, seed_groups or {})
    extra += degenerate_base_rows(summary)
    extra += attack_rows(scores, attacked or {}, known_ids, seed=seed)
    return pd.concat([summary, typed_frame(extra, SUMMARY_DTYPES)], ignore_index=True)
