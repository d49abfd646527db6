"""Per-row scores of issue 15's metrics, from the scoring stage's one batched teacher-forced pass.

:func:`unlearning.scoring.evaluation.score_answers` asks :func:`add_wrong_requests` to append each person question's
wrong answers (from the perturbation stage) to its likelihood requests, runs the single pass of
:func:`unlearning.inference.likelihood.continuation_logliks` with per-token details for the true answers of person
questions, and hands the results to :func:`add_field_columns`, which writes one column per quantity:

- ``extraction_strength``, ``exact_memorization``: from the teacher-forced greedy flags of the true answer;
- ``loss`` (mean token NLL of the true answer) and ``mink_pp`` (Min-K%++), the membership scores that the summary
  turns into the forget-vs-neighbour AUCs;
- ``truth_ratio`` (R per question) and its two per-question forms ``truth_ratio_closer_to_1`` and
  ``truth_ratio_true_better`` (the summary averages them);
- ``choice_accuracy``: 1 when the true answer is at least as likely (per token) as every wrong answer (the
  multiple-choice probe: the truth among perturbed answers, chosen by likelihood);
- ``fluency_entropy``: RWKU's weighted bi/tri-gram entropy of the generation.

Rows without wrong answers (TruthfulQA, general persons unless perturbed, any question the perturbation stage left
out) get NaN in the truth-ratio and choice columns, and are left out of those figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from . import metrics

if TYPE_CHECKING:  # the summary reads this module's columns without importing torch
    from ..inference.likelihood import LogLik

FIELD_COLUMNS = (
    "extraction_strength",
    "exact_memorization",
    "loss",
    "mink_pp",
    "truth_ratio",
    "truth_ratio_closer_to_1",
    "truth_ratio_true_better",
    "choice_accuracy",
    "fluency_entropy",
)
#: rows of these split roles get per-token details (truthfulqa rows do not need them)
DETAIL_ROLES = ("forget", "retain", "general")


def wrong_answers(perturbations: pd.DataFrame | None) -> dict[str, list[str]]:
    """``source_id -> distinct wrong answers`` from the perturbation table (refusal rows, if the table has a
    ``kind`` column with ``refusal``, are not wrong answers and are skipped)."""
    if perturbations is None or perturbations.empty:
        return {}
    table = perturbations
    if "kind" in table.columns:
        table = table[table["kind"].astype(str) != "refusal"]
    out: dict[str, list[str]] = {}
    for sid, text in zip(table["source_id"].astype(str), table["perturbed"].astype(str), strict=True):
        text = text.strip()
        if text and text not in out.setdefault(sid, []):
            out[sid].append(text)
    return out


def wants_details(splits: Sequence[str]) -> list[bool]:
    return [str(s).startswith(DETAIL_ROLES) for s in splits]


def add_wrong_requests(
    requests: list[tuple[str, str]],
    ids: Sequence[str],
    prompts: Sequence[str],
    wrong: Mapping[str, Sequence[str]],
) -> dict[str, tuple[int, int]]:
    """Append ``(prompt, wrong answer)`` for every row with wrong answers; returns ``id -> (start, count)``."""
    slices: dict[str, tuple[int, int]] = {}
    for qid, prompt in zip(map(str, ids), prompts, strict=True):
        answers = wrong.get(qid) or []
        if answers and qid not in slices:
            slices[qid] = (len(requests), len(answers))
            requests.extend((prompt, a) for a in answers)
    return slices


def add_field_columns(
    df: pd.DataFrame,
    truths: Sequence[LogLik],
    lls: Sequence[LogLik],
    wrong_slices: Mapping[str, tuple[int, int]],
) -> pd.DataFrame:
    """``df`` (one row per question, ``truths[i]`` its true answer's log-likelihood) with :data:`FIELD_COLUMNS`."""
    out = {c: [] for c in FIELD_COLUMNS}
    for qid, truth, generation in zip(df["id"].astype(str), truths, df["generation"].astype(str), strict=True):
        detailed = bool(truth.greedy) or truth.tokens == 0
        out["extraction_strength"].append(metrics.extraction_strength(truth.greedy) if detailed else math.nan)
        out["exact_memorization"].append(metrics.exact_memorization(truth.greedy) if detailed else math.nan)
        out["loss"].append(metrics.loss_score(truth.token_logprobs) if detailed else math.nan)
        out["mink_pp"].append(
            metrics.min_k_plus_plus(truth.token_logprobs, truth.vocab_mean, truth.vocab_var) if detailed else math.nan
        )
        ratio = choice = math.nan
        if qid in wrong_slices and truth.tokens:
            start, n = wrong_slices[qid]
            wrong_means = [ll.mean for ll in lls[start : start + n] if ll.tokens]
            ratio = metrics.truth_ratio(truth.mean, wrong_means)
            if wrong_means:
                choice = 1.0 if all(truth.mean >= w for w in wrong_means) else 0.0
        out["truth_ratio"].append(ratio)
        out["truth_ratio_closer_to_1"].append(metrics.truth_ratio_closer_to_1(ratio))
        out["truth_ratio_true_better"].append(metrics.truth_ratio_true_better(ratio))
        out["choice_accuracy"].append(choice)
        out["fluency_entropy"].append(metrics.ngram_entropy(generation))
    df = df.copy()
    for column, values in out.items():
        df[column] = pd.Series(values, index=df.index, dtype="float64")
    return df
