"""TruthfulQA's three public forms as one table: the official CSV, and the hub's ``generation`` and
``multiple_choice`` configs (``truthfulqa/truthful_qa``).

The CSV and the ``generation`` config carry ``best_answer``, ``correct_answers`` and ``incorrect_answers`` (the
CSV as ``;``-separated text, the hub as lists); :func:`unlearning.data.qa_table.build_truthfulqa` maps their columns.
The ``multiple_choice`` config carries only ``question``, ``mc1_targets`` and ``mc2_targets`` (each ``{choices,
labels}``), which is what lm-evaluation-harness scores: MC1 over ``mc1_targets`` (one true choice, first) and MC2
over ``mc2_targets``. :func:`from_multiple_choice` turns it into the same columns: ``best_answer`` = MC1's true
choice, ``correct_answers`` / ``incorrect_answers`` = MC2's true / false choices, and ``mc1_incorrect`` = MC1's
false choices, so MC1 is scored against exactly lm-eval's options. Its column mapping is then the identity
(``question: question, best_answer: best_answer, correct_answers: correct_answers, incorrect_answers:
incorrect_answers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import InputError

MC_COLUMNS = ("mc1_targets", "mc2_targets")


def is_multiple_choice(df: pd.DataFrame) -> bool:
    """Whether a raw table has the hub ``multiple_choice`` config's columns."""
    return all(c in df.columns for c in MC_COLUMNS)


def _targets(value: Any, where: str, row: int, column: str) -> tuple[list[str], list[int]]:
    if isinstance(value, Mapping) and "choices" in value and "labels" in value:
        choices = [str(c) for c in np.asarray(value["choices"], dtype=object).tolist()]
        labels = [int(x) for x in np.asarray(value["labels"]).tolist()]
        if len(choices) == len(labels) and choices:
            return choices, labels
    raise InputError(f"{where}: data row {row + 1}: column {column!r} is not a {{choices, labels}} record: {value!r}")


def from_multiple_choice(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """The ``multiple_choice`` config as ``question, best_answer, correct_answers, incorrect_answers,
    mc1_incorrect`` (see the module docstring); every row needs exactly one true MC1 choice and at least one true and
    one false MC2 choice."""
    if "question" not in df.columns:
        raise InputError(f"{where}: the multiple_choice table has no 'question' column (it has {list(df.columns)})")
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        c1, l1 = _targets(rec["mc1_targets"], where, i, "mc1_targets")
        c2, l2 = _targets(rec["mc2_targets"], where, i, "mc2_targets")
        true1 = [c for c, label in zip(c1, l1, strict=True) if label == 1]
        if len(true1) != 1 or len(c1) < 2:
            raise InputError(f"{where}: data row {i + 1}: mc1_targets needs one true choice and a false one")
        correct = [c for c, label in zip(c2, l2, strict=True) if label == 1]
        incorrect = [c for c, label in zip(c2, l2, strict=True) if label != 1]
        if not correct or not incorrect:
            raise InputError(f"{where}: data row {i + 1}: mc2_targets needs a true and a false choice")
        rows.append(
            {
                "question": str(rec["question"]),
                "best_answer": true1[0],
                "correct_answers": correct,
                "incorrect_answers": incorrect,
                "mc1_incorrect": [c for c, label in zip(c1, l1, strict=True) if label != 1],
            }
        )
    return pd.DataFrame(
        rows, columns=["question", "best_answer", "correct_answers", "incorrect_answers", "mc1_incorrect"]
    )
