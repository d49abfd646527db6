"""The report's figures: values looked up in the summary, changes against the base model with a verdict, the
ranking of every (model, method), training summaries and example answers. Nothing here formats or draws.

Verdict of a change (method - base): each metric's direction and tolerance are declared once in
:mod:`unlearning.scoring.metric_registry`. For a ``knowledge`` metric (ROUGE, answer probability, extraction
strength...) a fall beyond the tolerance is good on forget splits and bad elsewhere; a ``forgetting`` metric (truth
ratio closer to 1, membership AUC) the reverse; perplexity and degenerate rate are bad when they rise, TruthfulQA
accuracy, fluency and model utility when they fall, on every split. Changes within the tolerance are ``neutral``; a
missing value gives ``na``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..data.known_facts import known_facts
from ..scoring import bootstrap, judgement, metric_registry

BASE = "base"
#: the order of splits in tables and plots (older summaries have plain ``retain`` and ``general``)
SPLIT_ORDER = (
    "forget_train",
    "forget_test",
    "retain_train",
    "retain_test",
    "retain",
    "general_train",
    "general_test",
    "general",
    "truthfulqa",
    metric_registry.OVERALL,
)
SUBSETS = ("all", "known")
#: probe kinds in table order (qa_data.KINDS)
KIND_ORDER = ("qa", "cloze", "paraphrase", "multiple_choice", "reverse", "prefix_injection")
TOLERANCE = metric_registry.DEFAULT_TOLERANCE
PERPLEXITY_REL_TOLERANCE = metric_registry.get("perplexity").tolerance
N_EXAMPLES = 3
HEADLINE = "rougeL_recall"

#: (summary metric, label, True when a rise is bad on every split), in the registry's order
METRICS: tuple[tuple[str, str, bool], ...] = tuple(
    (m.name, m.label, m.rise_is_bad_everywhere) for m in metric_registry.METRICS
)
RISE_IS_BAD = {metric: bad for metric, _, bad in METRICS}
METRIC_LABELS = {metric: label for metric, label, _ in METRICS}

#: the split that plays each role, first one present wins (older summaries have plain ``retain`` / ``general``)
FORGET_ROLE = ("forget_test", "forget_train")
RETAIN_ROLE = ("retain_test", "retain")
GENERAL_ROLE = ("general_test", "general")
#: metrics shown for the ``known`` subset (the others are shown for ``all`` only, to keep the table readable)
KNOWN_METRICS = frozenset(m.name for m in metric_registry.METRICS if m.known)


def finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def is_forget(split: str) -> bool:
    return str(split).startswith("forget")


def judge_change(
    metric: str, split: str, base: float, value: float, interval: tuple[float, float] | None = None
) -> str:
    """``good``, ``bad``, ``neutral`` (within tolerance), ``noise`` (the interval includes 0), ``unsure`` (no
    interval) or ``na`` for the change ``value - base``, by the metric's registered direction and tolerance
    (:func:`unlearning.scoring.metric_registry.verdict`)."""
    return metric_registry.verdict(metric, split, base, value, interval)


def ordered(first: Sequence[str], found: Iterable[str]) -> list[str]:
    """``first`` (those present in ``found``) then the rest of ``found`` in order of appearance."""
    found = list(dict.fromkeys(map(str, found)))
    return [x for x in first if x in found] + [x for x in found if x not in first]


class Figures:
    """Fast lookups in the summary's long table, and in its change rows' intervals."""

    def __init__(self, summary: pd.DataFrame):
        # figures over every probe kind; the per-kind rows stay in ``by_kind`` (see :func:`kind_rows`)
        self.by_kind = summary if "kind" in summary.columns else summary.assign(kind="all")
        self.has_intervals = "ci_low" in summary.columns
        table = self.by_kind
        if not self.has_intervals:
            table = table.assign(ci_low=math.nan, ci_high=math.nan, ci_note="")
        keys = table[["model", "variant", "split", "subset", "kind", "metric"]].itertuples(index=False, name=None)
        self._rows = dict(zip(keys, zip(table["value"], table["ci_low"], table["ci_high"], table["ci_note"],
                                        strict=True), strict=True))  # fmt: skip
        self.summary = self.by_kind[self.by_kind["kind"] == "all"]

    def value(self, model: str, variant: str, split: str, metric: str, subset: str = "all", kind: str = "all") -> float:
        value = self._rows.get((model, variant, split, subset, kind, metric), (math.nan,))[0]
        return float(value) if finite(value) else math.nan

    def row(
        self, model: str, variant: str, split: str, metric: str, subset: str = "all", kind: str = "all"
    ) -> tuple[float, float, float, str] | None:
        """``(value, ci_low, ci_high, ci_note)`` of one summary row as it is stored; None where there is none."""
        found = self._rows.get((model, variant, split, subset, kind, metric))
        if found is None:
            return None
        value, low, high, note = found
        return tuple(float(x) if finite(x) else math.nan for x in (value, low, high)) + (str(note or ""),)

    def interval(
        self, model: str, variant: str, split: str, metric: str, subset: str = "all", kind: str = "all"
    ) -> tuple[tuple[float, float], str] | None:
        """The 95% interval of the change ``variant - base`` of ``metric`` (a drop row's interval turned round)
        and the note on a change without one (NaN bounds); None for a summary from before intervals."""
        if not self.has_intervals:
            return None
        m = metric_registry.BY_NAME.get(metric)
        name = m.change_name if m else f"{metric}_change"
        row = self.row(model, variant, split, name, subset, kind)
        if row is None:
            return (math.nan, math.nan), "no change row in the summary"
        _, low, high, note = row
        return ((-high, -low) if m is not None and m.change == "drop" else (low, high)), note

    def splits(self, model: str | None = None) -> list[str]:
        rows = self.summary if model is None else self.summary[self.summary["model"] == model]
        return ordered(SPLIT_ORDER, rows["split"])

    def subsets(self, model: str, split: str) -> list[str]:
        rows = self.summary[(self.summary["model"] == model) & (self.summary["split"] == split)]
        return ordered(SUBSETS, rows["subset"])

    def has(self, model: str, split: str, subset: str = "all") -> bool:
        return any(finite(self.value(model, BASE, split, m, subset)) for m in ("n", HEADLINE))

    def first_split(self, model: str, role: Sequence[str]) -> str | None:
        return next((s for s in role if self.has(model, s)), None)


# --------------------------------------------------------------------------------------------- per-model table


@dataclass
class Cell:
    """A figure and its change against the base model (``change`` and ``verdict`` are empty for the base), with the
    change's 95% interval (``low``, ``high``; NaN without one, and ``note`` then says why where it is known)."""

    value: float
    change: float = math.nan
    verdict: str = "na"
    low: float = math.nan
    high: float = math.nan
    note: str = ""

    def turned(self) -> Cell:
        """The same cell for the opposite change (``base - value``): a drop instead of a rise."""
        return Cell(self.value, -self.change, self.verdict, -self.high, -self.low, self.note)


def judged_cell(
    fig: Figures, model: str, variant: str, split: str, metric: str, subset: str = "all", kind: str = "all"
) -> Cell:
    """The variant's figure, its change against base, the change's interval and the verdict that reads both."""
    base = fig.value(model, BASE, split, metric, subset, kind)
    value = fig.value(model, variant, split, metric, subset, kind)
    change = value - base if finite(value) and finite(base) else math.nan
    found = fig.interval(model, variant, split, metric, subset, kind) if finite(change) else None
    interval, note = found if found is not None else (None, "")
    verdict = judge_change(metric, split, base, value, interval)
    low, high = interval if interval is not None else (math.nan, math.nan)
    return Cell(value, change, verdict, low, high, note)


def metric_rows(fig: Figures, model: str, variants: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (split, subset, metric with a value; subsets other than ``all`` only for
    :data:`KNOWN_METRICS`): ``split, subset, metric, n`` and ``cells``, a :class:`Cell` per variant."""
    rows = []
    for split in fig.splits(model):
        for subset in fig.subsets(model, split):
            n = fig.value(model, BASE, split, "n", subset)
            for metric, _, _ in METRICS:
                if subset != "all" and metric not in KNOWN_METRICS:
                    continue
                cells = {BASE: Cell(fig.value(model, BASE, split, metric, subset))}
                for variant in variants:
                    if variant != BASE:
                        cells[variant] = judged_cell(fig, model, variant, split, metric, subset)
                if any(finite(c.value) for c in cells.values()):
                    rows.append({"split": split, "subset": subset, "metric": metric, "n": n, "cells": cells})
    return rows


#: metrics of the per-probe-kind table: the headline and the likelihood choice among wrong answers
KIND_METRICS = (HEADLINE, "choice_accuracy")


def kind_rows(fig: Figures, model: str, variants: Sequence[str]) -> list[dict[str, Any]]:
    """Per (split, probe kind) of the splits that carry probes (subset ``all``): ``split, kind, metric, n`` and
    ``cells`` (a :class:`Cell` per variant, verdicts as in :func:`metric_rows`); empty without probe kinds."""
    table = fig.by_kind
    table = table[(table["model"] == model) & (table["subset"] == "all") & (table["kind"] != "all")]
    rows: list[dict[str, Any]] = []
    probed = set(table.loc[table["kind"] != "qa", "split"])
    if not probed:
        return rows
    for split in ordered(SPLIT_ORDER, table["split"]):
        if split not in probed:
            continue
        for kind in ordered(KIND_ORDER, table.loc[table["split"] == split, "kind"]):
            for metric in KIND_METRICS:
                cells = {BASE: Cell(fig.value(model, BASE, split, metric, kind=kind))}
                for variant in variants:
                    if variant != BASE:
                        cells[variant] = judged_cell(fig, model, variant, split, metric, kind=kind)
                if any(finite(c.value) for c in cells.values()):
                    rows.append({"split": split, "kind": kind, "metric": metric,
                                 "n": fig.value(model, BASE, split, "n", kind=kind), "cells": cells})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------- ranking

#: the ranking's figure columns: (key, label, metric, role); every one is a change against base with its interval
RANKING_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("forget", "forget: ROUGE-L recall drop", "rougeL_recall", "forget"),
    ("forget_prob", "forget: truth probability change", "answer_prob", "forget"),
    ("retain", "neighbours: ROUGE-L recall change", "rougeL_recall", "retain"),
    ("retain_prob", "neighbours: truth probability change", "answer_prob", "retain"),
    ("general", "general: ROUGE-L recall change", "rougeL_recall", "general"),
    ("general_prob", "general: truth probability change", "answer_prob", "general"),
    ("mc2", "TruthfulQA MC2 change", "mc2", "truthfulqa"),
    ("perplexity", "perplexity change (relative), general", "perplexity", "fluency"),
    ("entropy", "n-gram entropy change, general", "fluency_entropy", "fluency"),
)
RANK_BY_INTERVAL = "the lower end of the score's 95% interval (the trade-off the data support)"
RANK_BY_VALUE = "the score (this summary has no intervals)"


def change_cell(fig: Figures, model: str, method: str, split: str | None, metric: str, subset: str = "all") -> Cell:
    """:func:`judged_cell`, or an empty cell where the role has no split."""
    return Cell(math.nan) if split is None else judged_cell(fig, model, method, split, metric, subset)


def _relative(c: Cell) -> Cell:
    """A change and its interval as shares of the base figure."""
    base = c.value - c.change
    if not (finite(base) and base):
        return Cell(c.value, math.nan, c.verdict, note=c.note)
    return Cell(c.value, c.change / base, c.verdict, c.low / base, c.high / base, c.note)


def collateral(cells: Mapping[str, Cell]) -> float:
    """The sum of the falls (never the rises) of ROUGE-L recall on neighbours and general persons and of MC2."""
    return sum(max(0.0, -c) for c in (cells[k].change for k in ("retain", "general", "mc2")) if finite(c))


def _score(fig: Figures, model: str, method: str, cells: Mapping[str, Cell]) -> Cell:
    """The trade-off score and its interval from the summary (:data:`unlearning.scoring.bootstrap.TRADEOFF_SCORE`);
    for a summary from before it, ``forgetting - collateral`` from the cells, without an interval."""
    row = fig.row(model, method, metric_registry.OVERALL, bootstrap.TRADEOFF_SCORE)
    if row is not None:
        value, low, high, note = row
        return Cell(value, value, "na", low, high, note)
    value = cells["forget"].change - collateral(cells) if finite(cells["forget"].change) else math.nan
    return Cell(value, value)


def ranking(fig: Figures, models: Sequence[str], variants: Sequence[str]) -> pd.DataFrame:
    """One row per (model, method), best first, with the removal/rewording judgement.

    The score is ``forgetting - collateral``: forgetting is the base - method drop of ROUGE-L recall on the held-out
    forget facts the base model knew (``forget_test``, subset ``known``; all held-out forget facts where the summary
    has no ``known`` subset, which ``forget_subset`` says); collateral is the sum of the falls (never the rises) of
    ROUGE-L recall on the held-out known facts of the neighbours and general persons (as ``retain_subset`` and
    ``general_subset`` say) and of TruthfulQA MC2. Rows are ordered by :data:`RANK_BY_INTERVAL` where the summary has
    intervals (a row without one comes last), else by the score. Each figure column of :data:`RANKING_COLUMNS` and
    ``score`` hold a :class:`Cell`; ``judgement`` a :class:`unlearning.scoring.judgement.Judgement`.
    """
    rows = []
    for model in models:
        # per role: its held-out split and the subset read there (the known facts where the split has them)
        splits = {role: fig.first_split(model, names) for role, names in
                  (("forget", FORGET_ROLE), ("retain", RETAIN_ROLE), ("general", GENERAL_ROLE))}  # fmt: skip
        roles = {r: (s, "known" if s and fig.has(model, s, "known") else "all") for r, s in splits.items()}
        roles["truthfulqa"] = ("truthfulqa" if fig.has(model, "truthfulqa") else None, "all")
        roles["fluency"] = (splits["general"] or splits["retain"], "all")
        counts = {f"n_{r}": fig.value(model, BASE, s, "n", sub) if s else math.nan for r, (s, sub) in roles.items()}
        fluency_splits = [s for s in (splits["forget"], splits["retain"], splits["general"]) if s]
        for method in variants:
            if method == BASE:
                continue
            cells = {}
            for key, _, metric, role in RANKING_COLUMNS:
                split, subset = roles[role]
                cells[key] = change_cell(fig, model, method, split, metric, subset)
            cells["forget"] = cells["forget"].turned()
            cells["perplexity"] = _relative(cells["perplexity"])
            verdict = judgement.judge(
                (cells["forget"].change, cells["forget"].low, cells["forget"].high),
                (cells["forget_prob"].change, cells["forget_prob"].low, cells["forget_prob"].high),
                lambda which, split, metric, m=model, v=method: fig.value(m, BASE if which == "base" else v, split,
                                                                         metric),
                fluency_splits,
            )  # fmt: skip
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "forget_split": splits["forget"] or "",
                    **{f"{role}_subset": roles[role][1] for role in ("forget", "retain", "general")},
                    **counts,
                    **cells,
                    "judgement": verdict,
                    "collateral": collateral(cells),
                    "score": _score(fig, model, method, cells),
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    by_interval = fig.has_intervals
    key = df["score"].map(lambda c: c.low if by_interval else c.value)
    df["_key"] = key.where(key.map(finite), -math.inf)
    df["_value"] = df["score"].map(lambda c: c.value if finite(c.value) else -math.inf)
    df = df.sort_values(["_key", "_value"], ascending=False, kind="mergesort").drop(columns=["_key", "_value"])
    df = df.reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    df.attrs["ranked_by"] = RANK_BY_INTERVAL if by_interval else RANK_BY_VALUE
    return df


# --------------------------------------------------------------------------------------------- training logs

LOSS_COLUMNS = ("loss", "forget_loss", "retain_loss")


def training_summary(log: pd.DataFrame) -> dict[str, float]:
    """Last step and epoch, final losses (last non-null value) and total seconds of a training log."""

    def last(col: str) -> float:
        vals = log[col].dropna() if col in log.columns else ()
        return float(vals.iloc[-1]) if len(vals) else math.nan

    seconds = log["seconds"].max() if "seconds" in log.columns else math.nan
    return {
        "steps": last("step"),
        "epochs": last("epoch"),
        **{f"final {col.replace('_', ' ')}": last(col) for col in LOSS_COLUMNS},
        "seconds": float(seconds) if finite(seconds) else math.nan,
    }


# --------------------------------------------------------------------------------------------- examples


#: example groups: (key, title, role's candidate splits, whether the variant still knows the fact)
EXAMPLE_GROUPS = (
    ("lost", "held-out forget questions whose answer lost the fact", FORGET_ROLE, False),
    ("kept", "held-out forget questions it still answers", FORGET_ROLE, True),
    ("damaged", "neighbour questions it damaged", RETAIN_ROLE, False),
)


def select_examples(
    answers: Mapping[str, pd.DataFrame], variant: str, cfg: Mapping[str, Any] | None = None, n: int = N_EXAMPLES
) -> list[dict[str, Any]]:
    """What one variant did to the facts the base model knew (the known-fact rule of ``cfg``, the config's
    ``score`` block): per group of :data:`EXAMPLE_GROUPS`, up to ``n`` questions of the role's first split present,
    the largest falls of ROUGE-L recall first (then by id): ``{group, title, split, count, rows}``, ``count`` the
    group's size and each row ``id, person, question, reference, base, answer, base_recall, recall``."""
    base, other = answers.get(BASE), answers.get(variant)
    if base is None or other is None:
        return []
    paired = base.merge(other[["id", "split", "generation", "rougeL_recall"]], on=["id", "split"],
                        suffixes=("_base", ""))  # fmt: skip
    # the workflow's own known-fact rule, applied to the base answers and to the variant's
    paired = paired.loc[known_facts(paired.assign(rougeL_recall=paired["rougeL_recall_base"]), cfg)["known"].to_numpy()]
    present = set(paired["split"].astype(str))
    groups = []
    for key, title, role, kept in EXAMPLE_GROUPS:
        split = next((s for s in role if s in present), None)
        part = paired[paired["split"] == split] if split else paired.iloc[:0]
        part = part.loc[known_facts(part, cfg)["known"].to_numpy() == kept]
        part = part.assign(_fall=part["rougeL_recall_base"] - part["rougeL_recall"], _id=part["id"].astype(str))
        part = part.sort_values(["_fall", "_id"], ascending=[False, True], kind="mergesort")
        rows = [
            {
                "id": r["id"],
                "person": r.get("person", ""),
                "question": r["question"],
                "reference": r["reference"],
                "base": r["generation_base"],
                "answer": r["generation"],
                "base_recall": float(r["rougeL_recall_base"]),
                "recall": float(r["rougeL_recall"]),
            }
            for _, r in part.head(n).iterrows()
        ]
        groups.append({"group": key, "title": title, "split": split or role[0], "count": len(part), "rows": rows})
    return groups
