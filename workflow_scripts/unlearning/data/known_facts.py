"""Which evaluation questions the base model knows: the facts that unlearning can actually remove.

A model cannot forget what it never knew: a forget question the base model already gets wrong stays wrong after
unlearning and dilutes the measured drop; a retain question it never knew cannot show damage. So every split is
reported twice, on all its questions and on the *known* ones, with counts.

The default rule (``rougeL_recall``): a question is known when the ROUGE-L recall of its reference answer in the
base model's greedy answer is at least ``threshold``. With WPU-style short references (a name, a year, a place) the
recall is the share of the reference's words the answer contains in order, so it is a fact check. The default
threshold 0.6 means: a one- or two-word reference must appear whole ("United States" is not matched by "United
Kingdom"), a three-word one may miss one word ("Globe Theatre" for "The Globe Theatre"), a four- or five-word one
may miss one or two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..core.errors import InputError

KNOWN_COLUMNS = ["id", "split", "known", "base_rougeL_recall"]
DEFAULT_THRESHOLD = 0.6
RULES = ("rougeL_recall",)


def is_known(recall: float, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """The default rule for one question: the reference's ROUGE-L recall in the base answer reaches ``threshold``."""
    return bool(recall == recall and recall >= threshold)  # NaN (no reference words) is never known


def known_facts(base_scores: pd.DataFrame, cfg: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``id, split, known, base_rougeL_recall`` for every scored question of the base model.

    ``cfg`` is the config's ``score`` block (keys ``known_rule``, ``known_threshold``); absent keys take the
    defaults. TruthfulQA rows are included (their reference is the best answer) so every split has a count.
    """
    cfg = cfg or {}
    rule = cfg.get("known_rule", "rougeL_recall")
    if rule not in RULES:
        raise InputError(f"score.known_rule {rule!r} is not a known rule; expected one of {list(RULES)}")
    threshold = float(cfg.get("known_threshold", DEFAULT_THRESHOLD))
    missing = [c for c in ("id", "split", "rougeL_recall") if c not in base_scores.columns]
    if missing:
        raise InputError(f"base scores lack column(s) {missing}; expected a results/score/{{model}}/base.parquet table")
    recall = base_scores["rougeL_recall"].astype("float64")
    return pd.DataFrame(
        {
            "id": base_scores["id"].astype(str),
            "split": base_scores["split"].astype(str),
            "known": [is_known(r, threshold) for r in recall],
            "base_rougeL_recall": recall,
        },
        columns=KNOWN_COLUMNS,
    ).reset_index(drop=True)


def known_counts(known: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per split ``{"all": n, "known": k}``, for logs and metadata."""
    return {
        str(split): {"all": int(len(part)), "known": int(part["known"].sum())}
        for split, part in known.groupby("split", sort=True)
    }
