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

from ..scoring import metric_registry

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
#: example groups: (title, candidate splits)
EXAMPLE_GROUPS = (("forget", FORGET_ROLE), ("neighbour", RETAIN_ROLE), ("general", GENERAL_ROLE))


def finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def is_forget(split: str) -> bool:
    return str(split).startswith("forget")


def judge_change(metric: str, split: str, base: float, value: float) -> str:
    """``good``, ``bad``, ``neutral`` (within tolerance) or ``na`` for the change ``value - base``, by the metric's
    registered direction and tolerance (:func:`unlearning.scoring.metric_registry.verdict`)."""
    return metric_registry.verdict(metric, split, base, value)


def ordered(first: Sequence[str], found: Iterable[str]) -> list[str]:
    """``first`` (those present in ``found``) then the rest of ``found`` in order of appearance."""
    found = list(dict.fromkeys(map(str, found)))
    return [x for x in first if x in found] + [x for x in found if x not in first]


class Figures:
    """Fast lookups in the summary's long table."""

    def __init__(self, summary: pd.DataFrame):
        # figures over every probe kind; the per-kind rows stay in ``by_kind`` (see :func:`kind_rows`)
        self.by_kind = summary if "kind" in summary.columns else summary.assign(kind="all")
        summary = self.by_kind[self.by_kind["kind"] == "all"]
        self.summary = summary
        keys = summary[["model", "variant", "split", "subset", "metric", "value"]].itertuples(index=False)
        self._values = {tuple(key[:-1]): key[-1] for key in keys}

    def value(self, model: str, variant: str, split: str, metric: str, subset: str = "all") -> float:
        value = self._values.get((model, variant, split, subset, metric), math.nan)
        return float(value) if finite(value) else math.nan

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
    """A figure and its change against the base model (``change`` and ``verdict`` are empty for the base)."""

    value: float
    change: float = math.nan
    verdict: str = "na"


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
                base = fig.value(model, BASE, split, metric, subset)
                cells = {BASE: Cell(base)}
                for variant in variants:
                    if variant == BASE:
                        continue
                    value = fig.value(model, variant, split, metric, subset)
                    change = value - base if finite(value) and finite(base) else math.nan
                    cells[variant] = Cell(value, change, judge_change(metric, split, base, value))
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
    keyed = table[["variant", "split", "kind", "metric", "value"]].itertuples(index=False)
    values = {tuple(k[:-1]): k[-1] for k in keyed}

    def value(variant: str, split: str, kind: str, metric: str) -> float:
        v = values.get((variant, split, kind, metric), math.nan)
        return float(v) if finite(v) else math.nan

    for split in ordered(SPLIT_ORDER, table["split"]):
        if split not in probed:
            continue
        for kind in ordered(KIND_ORDER, table.loc[table["split"] == split, "kind"]):
            for metric in KIND_METRICS:
                base = value(BASE, split, kind, metric)
                cells = {BASE: Cell(base)}
                for variant in variants:
                    if variant != BASE:
                        v = value(variant, split, kind, metric)
                        change = v - base if finite(v) and finite(base) else math.nan
                        cells[variant] = Cell(v, change, judge_change(metric, split, base, v))
                if any(finite(c.value) for c in cells.values()):
                    rows.append({"split": split, "kind": kind, "metric": metric,
                                 "n": value(BASE, split, kind, "n"), "cells": cells})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------- ranking

#: ranking columns: (key, label, metric that judges it, what the number is)
RANKING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("forget", "forgetting: ROUGE-L recall drop on held-out forget facts", "rougeL_recall"),
    ("retain", "ROUGE-L recall change, neighbours (retain_test)", "rougeL_recall"),
    ("general", "ROUGE-L recall change, general (general_test)", "rougeL_recall"),
    ("mc2", "TruthfulQA MC2 change", "mc2"),
    ("perplexity", "perplexity change (relative), general", "perplexity"),
    ("degenerate", "degenerate rate change, general", "degenerate_rate"),
)


def change_cell(fig: Figures, model: str, method: str, split: str | None, metric: str, subset: str = "all") -> Cell:
    if split is None:
        return Cell(math.nan)
    base = fig.value(model, BASE, split, metric, subset)
    value = fig.value(model, method, split, metric, subset)
    change = value - base if finite(base) and finite(value) else math.nan
    return Cell(value, change, judge_change(metric, split, base, value))


def ranking(fig: Figures, models: Sequence[str], variants: Sequence[str]) -> pd.DataFrame:
    """One row per (model, method), best first, ranked by ``score = forgetting - collateral``.

    forgetting is the base - method drop of ROUGE-L recall on the held-out forget facts the base model knew
    (``forget_test``, subset ``known``; all held-out forget facts where the summary has no ``known`` subset, which
    ``forget_subset`` says); collateral is the sum of the falls (never the rises) of ROUGE-L recall on the held-out
    facts of the neighbours and general persons that the base model knew (subset ``known`` where the split has one,
    as ``retain_subset`` and ``general_subset`` say: a fall on facts the base never knew, or a rise from a changed
    answer format, says nothing about damage) and of TruthfulQA MC2. Fluency (perplexity, degenerate answers) is
    shown, not scored. Each figure column holds a :class:`Cell`.
    """
    rows = []
    for model in models:
        # per role: its held-out split and the subset read there (the known facts where the split has them)
        splits = {role: fig.first_split(model, names) for role, names in
                  (("forget", FORGET_ROLE), ("retain", RETAIN_ROLE), ("general", GENERAL_ROLE))}  # fmt: skip
        roles = {r: (s, "known" if s and fig.has(model, s, "known") else "all") for r, s in splits.items()}
        counts = {f"n_{r}": fig.value(model, BASE, s, "n", sub) if s else math.nan for r, (s, sub) in roles.items()}
        fluency_split = splits["general"] or splits["retain"]
        for method in variants:
            if method == BASE:
                continue
            cells = {role: change_cell(fig, model, method, s, HEADLINE, sub) for role, (s, sub) in roles.items()}
            forget = cells["forget"] = Cell(cells["forget"].value, -cells["forget"].change, cells["forget"].verdict)
            cells |= {
                "mc2": change_cell(fig, model, method, "truthfulqa" if fig.has(model, "truthfulqa") else None, "mc2"),
                "perplexity": change_cell(fig, model, method, fluency_split, "perplexity"),
                "degenerate": change_cell(fig, model, method, fluency_split, "degenerate_rate"),
            }
            ppl = cells["perplexity"]
            base_ppl = ppl.value - ppl.change
            cells["perplexity"] = Cell(
                ppl.value, ppl.change / base_ppl if finite(base_ppl) and base_ppl else math.nan, ppl.verdict
            )
            costs = [cells[k].change for k in ("retain", "general", "mc2")]
            collateral = sum(max(0.0, -c) for c in costs if finite(c))
            score = forget.change - collateral if finite(forget.change) else math.nan
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "forget_split": splits["forget"] or "",
                    **{f"{role}_subset": sub for role, (_, sub) in roles.items()},
                    **counts,
                    **cells,
                    "collateral": collateral,
                    "score": score,
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["_key"] = df["score"].where(df["score"].map(finite), -math.inf)
    df = df.sort_values("_key", ascending=False, kind="mergesort").drop(columns="_key").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
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


def _sorted_by_id(df: pd.DataFrame) -> pd.DataFrame:
    try:
        return df.sort_values("id", kind="mergesort")
    except TypeError:
        return df.sort_values("id", kind="mergesort", key=lambda s: s.astype(str))


def select_examples(
    variants: Mapping[str, pd.DataFrame], order: Sequence[str], n: int = N_EXAMPLES
) -> list[dict[str, Any]]:
    """Per example group (forget, neighbour, general) the first ``n`` questions by id of the first split of the
    group that the answers have: ``{group, split, rows}`` with rows ``id, person, question, reference`` and one
    answer per variant of ``order`` (None where a variant lacks the question)."""
    anchor = next((variants[v] for v in order if v in variants), None)
    groups = []
    for group, role in EXAMPLE_GROUPS:
        present = set() if anchor is None else set(anchor["split"].astype(str))
        split = next((s for s in role if s in present), None)
        rows = []
        if split is not None:
            for _, r in _sorted_by_id(anchor[anchor["split"] == split]).head(n).iterrows():
                row = {
                    "id": r["id"],
                    "person": r.get("person", ""),
                    "question": r["question"],
                    "reference": r["reference"],
                    "answers": {},
                }
                for variant in order:
                    df = variants.get(variant)
                    match = None if df is None else df[(df["split"] == split) & (df["id"] == r["id"])]
                    row["answers"][variant] = match["generation"].iloc[0] if match is not None and len(match) else None
                rows.append(row)
        groups.append({"group": group, "split": split or role[0], "rows": rows})
    return groups
