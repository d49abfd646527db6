"""The questions every attack is scored on, and the scoring itself: the held-out known facts only.

An attack asks the held-out questions (forget_test, retain_test, general_test) that the base model answers
correctly (``results/known/{model}.parquet``): facts never trained on, by the unlearning or by a relearning attack,
that there was something to forget. Generation and scores are the score stage's own (greedy answers, ROUGE-L
recall, the truth's probability, the truth ratio against the perturbation stage's wrong answers), so a figure
after an attack compares with the same figure before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..core.errors import InputError
from ..inference.prompting import PromptStyle
from ..scoring.evaluation import ATTACK_SPLITS, answer_questions, evaluation_questions, score_answers

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: the scoring pass needs a TruthfulQA table; attacks ask no TruthfulQA question
NO_TRUTHFULQA = pd.DataFrame({c: pd.Series(dtype=str) for c in ("id", "question", "best_answer")})


def held_out_known(qa: pd.DataFrame, known: pd.DataFrame, where: str) -> pd.DataFrame:
    """The evaluation questions (``id, split, kind, person, question, reference``) of :data:`ATTACK_SPLITS` that the
    base model knows. InputError naming ``where`` when it knows none (an attack would measure nothing)."""
    ids = set(known.loc[known["known"].astype(bool), "id"].astype(str))
    questions = evaluation_questions(qa, NO_TRUTHFULQA)
    picked = questions[questions["split"].isin(ATTACK_SPLITS) & questions["id"].astype(str).isin(ids)]
    if picked.empty:
        raise InputError(
            f"{where}: the base model knows none of the held-out questions ({', '.join(ATTACK_SPLITS)}); an attack "
            "has nothing to measure"
        )
    return picked.reset_index(drop=True)


def training_facts(qa: pd.DataFrame, split: str) -> pd.DataFrame:
    """The QA pairs (kind ``qa``; probes are evaluation-only) of one train split."""
    rows = qa[qa["split"] == split]
    return rows[rows["kind"] == "qa"] if "kind" in rows.columns else rows


def score_attacked(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    style: PromptStyle,
    *,
    generate: Mapping[str, Any],
    batch_size: int,
    wrong: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """The attacked model's greedy answers to ``questions`` and their per-row scores (the score stage's columns)."""
    from ..models.adapters import merged_for_inference

    with merged_for_inference(model):
        answers = answer_questions(
            model,
            tokenizer,
            questions,
            style,
            max_new_tokens=int(generate["max_new_tokens"]),
            batch_size=int(generate["batch_size"]),
        )
    return score_answers(model, tokenizer, answers, NO_TRUTHFULQA, style, batch_size=batch_size, wrong=wrong)
