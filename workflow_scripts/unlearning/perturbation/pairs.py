"""DPO preference pairs: prefer a wrong answer (or a refusal) over the true answer of a forget question.

Two recipes exist: the study's (chosen = a plausible wrong answer from the perturber) and TOFU's IdkDPO
(chosen = an "I don't know"-style refusal). Users can take either or mix them, and choose how many pairs each
question contributes; the sampling is seeded so the same config gives the same pairs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..core.errors import InputError

PAIR_COLUMNS = ["prompt", "chosen", "rejected", "kind", "source_id"]
DEFAULT_REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I don't have any information about that.",
    "I can't answer that question.",
    "I have no knowledge of that.",
    "That is something I don't know.",
)


def build_pairs(
    forget_train: pd.DataFrame,
    perturbations: pd.DataFrame,
    *,
    per_question: int | None,
    refusals: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Pairs for every forget_train question; ``per_question=None`` keeps every wrong answer."""
    rng = random.Random(seed)
    mode = refusals.get("mode", "off")
    phrasings = list(refusals.get("phrasings") or DEFAULT_REFUSALS)
    rows = []
    by_question = {qid: group for qid, group in perturbations.groupby("source_id", sort=False)}
    for row in forget_train.sort_values("id").itertuples():
        if mode != "only":
            group = by_question.get(row.id)
            if group is not None:
                options = list(zip(group["perturbed"], group["kind"], strict=True))
                if per_question is not None and len(options) > per_question:
                    options = rng.sample(options, per_question)
                rows += [(row.question, wrong, row.answer, kind, row.id) for wrong, kind in options]
        if mode in ("mix", "only"):
            for refusal in rng.sample(phrasings, min(int(refusals.get("per_question", 1)), len(phrasings))):
                rows.append((row.question, refusal, row.answer, "refusal", row.id))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if pairs.empty:
        raise InputError(
            "build_pairs: no DPO pairs: there are no perturbations for the forget_train questions and refusals are "
            "off (perturb.refusals.mode); enable refusals or fix the perturbation stage"
        )
    return pairs
