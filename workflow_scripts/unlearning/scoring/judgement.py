"""Removal or rewording: whether a variant removed the forget facts or only changed how it answers.

A fall of ROUGE-L recall on forget questions says that the answers no longer contain the true span. That happens when
the model no longer knows the fact, and equally when it answers in another form (one word, a refusal, a wrong but
fluent guess while the truth stays the likeliest continuation). The judgement reads three figures the summary
already has, on the held-out forget facts the base model knew, each change with its bootstrap interval:

* *removed*: ROUGE-L recall falls **and** the teacher-forced probability of the true answer falls (both beyond the
  tolerance, both intervals excluding 0), and fluency holds;
* *rewording*: recall falls while the truth's probability holds (within the tolerance or the noise) or rises: the
  answers changed, the model's likelihood of the true answer did not fall with them;
* *format change*: fluency collapsed on a held-out split (mean perplexity of the answers under the base model at
  least :data:`PERPLEXITY_BOUND` times the base model's own, or n-gram entropy at most :data:`ENTROPY_BOUND` of
  it), whatever recall did: the answers are no longer sentences a user can read;
* *no effect*: recall does not fall beyond the noise;
* *unsure*: a change the rule needs has no interval (too few persons).

RWKU (Jin et al. 2024) and open-unlearning pair generation metrics with probability-based ones for the same reason;
the bounds are this project's (docs/metrics.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .metric_registry import DEFAULT_TOLERANCE

#: fluency has collapsed when the answers' perplexity under the base model is this many times the base model's own
PERPLEXITY_BOUND = 4.0
#: ... or when their n-gram entropy is at most this share of the base model's own
ENTROPY_BOUND = 0.5
#: the held-out splits whose fluency is checked
FLUENCY_SPLITS = ("forget_test", "retain_test", "general_test")

#: (value, ci_low, ci_high) of a change; NaN bounds where it has no interval
ChangeFigure = tuple[float, float, float]


@dataclass(frozen=True)
class Judgement:
    label: str  # removed, rewording, format change, no effect, unsure
    reason: str


def _significant(change: ChangeFigure, sign: float) -> bool | None:
    """Whether ``sign * change`` is above the tolerance with its whole interval above 0; None without an interval."""
    value, low, high = change
    if not math.isfinite(value):
        return None
    if sign * value <= DEFAULT_TOLERANCE:
        return False
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return (low > 0) if sign > 0 else (high < 0)


def judge(
    recall_drop: ChangeFigure,
    prob_change: ChangeFigure,
    figure: Callable[[str, str, str], float],
    fluency_splits: Sequence[str] = FLUENCY_SPLITS,
) -> Judgement:
    """The judgement of one variant.

    ``recall_drop`` is the ROUGE-L recall drop (base - variant) on the held-out known forget facts and
    ``prob_change`` the change (variant - base) of the true answer's probability there, each ``(value, ci_low,
    ci_high)``; ``figure(variant_or_base, split, metric)`` gives a summary figure on all questions (``"base"`` for
    the base model, ``"variant"`` for this one), for the fluency bound.
    """
    collapsed = []
    for split in fluency_splits:
        ppl_base, ppl = figure("base", split, "perplexity"), figure("variant", split, "perplexity")
        if math.isfinite(ppl_base) and math.isfinite(ppl) and ppl_base > 0 and ppl >= PERPLEXITY_BOUND * ppl_base:
            collapsed.append(f"perplexity {ppl_base:.3g} -> {ppl:.3g} on {split}")
        ent_base, ent = figure("base", split, "fluency_entropy"), figure("variant", split, "fluency_entropy")
        if math.isfinite(ent_base) and math.isfinite(ent) and ent_base > 0 and ent <= ENTROPY_BOUND * ent_base:
            collapsed.append(f"n-gram entropy {ent_base:.3g} -> {ent:.3g} on {split}")
    if collapsed:
        return Judgement("format change", "fluency collapsed: " + "; ".join(collapsed))
    forgot = _significant(recall_drop, 1.0)
    if forgot is None:
        return Judgement("unsure", "the recall drop has no interval")
    if not forgot:
        return Judgement("no effect", f"recall drop {recall_drop[0]:+.3f} is within the tolerance or the noise")
    prob_fell = _significant(prob_change, -1.0)
    if prob_fell is None:
        return Judgement("unsure", "recall fell, but the truth's probability change has no interval")
    drop, prob = f"recall drop {recall_drop[0]:+.3f}", f"truth probability change {prob_change[0]:+.3f}"
    if prob_fell:
        return Judgement("removed", f"{drop} and {prob}, both beyond tolerance and noise")
    value, low, high = prob_change
    if abs(value) <= DEFAULT_TOLERANCE:
        why = f"within the tolerance ({DEFAULT_TOLERANCE})"
    elif low <= 0 <= high:
        why = f"within noise [{low:+.3f}, {high:+.3f}]"
    else:
        why = "a rise"
    return Judgement("rewording", f"{drop}, but the {prob} is {why}")
