"""The report's figures on the model's own descriptions: the corpus's held-out templates (:mod:`unlearning.corpus`).

Where a run has a corpus, each model's section shows, per variant, the figures of the splits ``forget_corpus``,
``retain_corpus`` and ``general_corpus`` (subset ``all``) with the verdicts and intervals of the main table; the
main table leaves these splits out. For a forget set given by names only these are the run's only forgetting
figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..scoring.evaluation import CORPUS_SPLITS
from .tables import BASE, Cell, Figures, finite, judged_cell, metric_rows

#: the metrics shown: the base text's likelihood, its ROUGE-L recall in the model's own answer, and the membership
#: AUCs of the forget persons' texts against the neighbours' (forget_corpus only)
CORPUS_METRICS = ("answer_prob", "rougeL_recall", "mia_auc_loss", "mia_auc_mink_pp")

TEXT = (
    "The base model described every person from several request templates; some templates per person were held out "
    "of training. Each variant is scored on the base model's held-out texts: their length-normalised probability "
    "(Answer prob.), their ROUGE-L recall in the variant's own answer to the same request, and the membership AUCs "
    "of the forget persons' texts against the neighbours' (0.5 = indistinguishable; towards 1 = the forget persons' "
    "texts became less likely than the neighbours'). A fact removed makes the base model's text less likely; an "
    "answer only reworded lowers ROUGE-L recall but not the text's probability. Texts are the model's own, so they "
    "hold what it believes about a person, right or wrong."
)


def corpus_rows(fig: Figures, model: str, variants: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`unlearning.report.tables.metric_rows` of the corpus splits and :data:`CORPUS_METRICS` only."""
    return [
        r
        for r in metric_rows(fig, model, variants)
        if r["split"] in CORPUS_SPLITS and r["metric"] in CORPUS_METRICS and r["subset"] == "all"
    ]


def _text(cell: Cell) -> str:
    """A cell's change with its interval, as the table prints it."""
    interval = f" [{cell.low:+.3f}, {cell.high:+.3f}]" if finite(cell.low) and finite(cell.high) else ""
    return f"{cell.change:+.3f}{interval}"


def verdicts(fig: Figures, model: str, variants: Sequence[str]) -> list[str]:
    """One sentence per variant on whether it forgot the forget persons' held-out texts, and whether only theirs.

    It reads the table's own verdicts (:func:`unlearning.report.tables.judged_cell`: tolerance, then interval) of the
    base texts' probability (``answer_prob``) on each corpus split and of the membership AUC (LOSS) on
    ``forget_corpus``: forgotten where the forget texts' probability fell (verdict ``good``); specific to the forget
    persons only where the AUC rose too (``good``), else the neighbours' and general persons' changes are named."""
    out = []
    for variant in variants:
        if variant == BASE:
            continue
        cells = {split: judged_cell(fig, model, variant, split, "answer_prob") for split in CORPUS_SPLITS}
        forget, auc = cells["forget_corpus"], judged_cell(fig, model, variant, "forget_corpus", "mia_auc_loss")
        if not finite(forget.change):
            continue
        name = f"{model}/{variant}"
        if forget.verdict != "good":
            out.append(
                f"{name}: the forget persons' held-out texts did not become measurably less likely "
                f"({_text(forget)}, within the tolerance or the noise)"
            )
            continue
        others = "; ".join(
            f"the {label}' by {_text(cells[split])}"
            for split, label in (("retain_corpus", "neighbours"), ("general_corpus", "general persons"))
            if finite(cells[split].change)
        )
        if auc.verdict == "good":
            out.append(
                f"{name}: the forget persons' held-out texts became less likely ({_text(forget)}), more than the "
                f"neighbours' (membership AUC {_text(auc)}): forgetting specific to the forget persons ({others})"
            )
        else:
            out.append(
                f"{name}: the forget persons' held-out texts became less likely ({_text(forget)}), {others}; the "
                f"membership AUC did not rise ({_text(auc)}): not specific to the forget persons"
            )
    return out
