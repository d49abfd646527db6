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
from .tables import BASE, Figures, finite, metric_rows

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


def _change(fig: Figures, model: str, variant: str, split: str, metric: str) -> tuple[float, float, float] | None:
    row = fig.row(model, variant, split, metric)
    return None if row is None or not finite(row[0]) else row[:3]


def _text(change: tuple[float, float, float]) -> str:
    value, low, high = change
    return f"{value:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if finite(low) and finite(high) else "")


def verdicts(fig: Figures, model: str, variants: Sequence[str]) -> list[str]:
    """One sentence per variant on whether its forgetting of the held-out texts is specific to the forget persons.

    The base text's probability must fall on ``forget_corpus`` (the upper end of the change's interval below 0), and
    the forget persons' texts must fall further than the neighbours' (the membership AUC's change, LOSS, above 0 at
    the lower end of its interval); a fall that the neighbours share is named as such."""
    out = []
    for variant in variants:
        if variant == BASE:
            continue
        forget = _change(fig, model, variant, "forget_corpus", "answer_prob_change")
        neighbours = _change(fig, model, variant, "retain_corpus", "answer_prob_change")
        auc = _change(fig, model, variant, "forget_corpus", "mia_auc_loss_change")
        if forget is None:
            continue
        name = f"{model}/{variant}"
        if not forget[2] < 0:
            out.append(f"{name}: the forget persons' held-out texts did not become less likely ({_text(forget)})")
        elif auc is not None and auc[1] > 0:
            out.append(
                f"{name}: the forget persons' held-out texts became less likely ({_text(forget)}), more than the "
                f"neighbours' (membership AUC {_text(auc)}): forgetting specific to the forget persons"
            )
        else:
            shared = f", the neighbours' by {_text(neighbours)}" if neighbours is not None else ""
            out.append(
                f"{name}: the forget persons' held-out texts became less likely ({_text(forget)}){shared}; the "
                f"membership AUC did not rise ({_text(auc) if auc else 'n/a'}): not specific to the forget persons"
            )
    return out
