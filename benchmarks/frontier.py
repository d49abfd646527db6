"""The frontier of a sweep: forgetting of held-out known facts against the damage to the neighbours, per entry.

Reads a finished run's ``results/`` (``configs/frontier.yaml``, or any config) and prints Markdown tables:

1. **Frontier**, one row per unlearn entry: the drop of ROUGE-L recall on the facts the base model knew, as a share
   of the base model's figure, with its 95% bootstrap interval, on forget_test (held out), forget_train (trained on),
   retain_test (the neighbours, held out) and general_test; the change of the true answer's probability on
   forget_test; the change of TruthfulQA MC2; the largest relative change of fluency (n-gram entropy) over the three
   held-out splits; the removal/rewording judgement (:mod:`unlearning.scoring.judgement`); the unlearn job's seconds
   and peak memory (Snakemake's benchmark file); and whether the entry meets the target:

   * forget_test drop >= 50% and judged *removed* (the truth's probability falls too);
   * the upper end of the retain_test and general_test drops' intervals <= 10%;
   * |MC2 change| <= 0.02;
   * |fluency change| <= 5% on every held-out split.

2. **Per person** for the entries given with ``--persons``: ROUGE-L recall on each forget person's known facts,
   ``trained / held-out`` (forget_train / forget_test), and on each neighbour's held-out known facts
   (retain_test), base against the entry. Means hide persons: a method can forget one person completely and
   leave another as he was.

Usage (a section of run.py that reads a finished run)::

    python benchmarks/run.py --only frontier --work-dir <the run's folder> --persons npo,npo_fila_lr0.0005
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from unlearning.report.tables import Figures
from unlearning.scoring.evaluation import split_attacks
from unlearning.scoring.judgement import FLUENCY_SPLITS, judge

BASE = "base"
TARGET_FORGET = 0.5  # forget_test ROUGE-L recall falls by at least half
TARGET_DAMAGE = 0.10  # upper end of the neighbours' and general persons' drop intervals
TARGET_MC2 = 0.02
TARGET_FLUENCY = 0.05


def _relative(fig: Figures, model: str, variant: str, split: str, metric: str) -> tuple[float, float, float]:
    """A change row (value, low, high) of the known facts, as shares of the base model's figure."""
    base_metric = metric.removesuffix("_drop").removesuffix("_change")
    base = fig.value(model, BASE, split, base_metric, "known")
    row = fig.row(model, variant, split, metric, "known")
    if row is None or not base:
        return (math.nan,) * 3
    return tuple(x / base for x in row[:3])


def _absolute(fig: Figures, model: str, variant: str, split: str, metric: str, subset: str) -> tuple:
    row = fig.row(model, variant, split, metric, subset)
    return (math.nan,) * 3 if row is None else row[:3]


def _cell(figure: tuple[float, float, float], percent: bool = True) -> str:
    value, low, high = figure
    if not math.isfinite(value):
        return "n/a"
    fmt = (lambda x: f"{100 * x:+.0f}%") if percent else (lambda x: f"{x:+.3f}")
    interval = f" [{fmt(low)}, {fmt(high)}]" if math.isfinite(low) and math.isfinite(high) else ""
    return fmt(value) + interval


def _fluency(fig: Figures, model: str, variant: str) -> float:
    """The largest relative change (either sign) of n-gram entropy over the held-out splits."""
    changes = []
    for split in FLUENCY_SPLITS:
        base = fig.value(model, BASE, split, "fluency_entropy")
        value = fig.value(model, variant, split, "fluency_entropy")
        if base and math.isfinite(base) and math.isfinite(value):
            changes.append((value - base) / base)
    return max(changes, key=abs) if changes else math.nan


def _benchmark(results: Path, model: str, variant: str) -> tuple[float, float]:
    """The unlearn job's seconds and peak resident memory (MB) from Snakemake's benchmark file."""
    path = results / "benchmarks" / "unlearn" / model / f"{variant}.tsv"
    if not path.is_file():
        return math.nan, math.nan
    row = pd.read_csv(path, sep="\t").iloc[-1]
    return float(row["s"]), float(row["max_rss"])


def frontier(results: Path) -> pd.DataFrame:
    """One row per (model, variant) of ``results/score/summary.parquet`` (see the module doc)."""
    summary = split_attacks(pd.read_parquet(results / "score" / "summary.parquet"))[0]
    fig = Figures(summary)
    rows = []
    variants = [v for v in summary["variant"].unique() if v not in (BASE, "headline")]
    for model in summary["model"].unique():
        for variant in variants:
            forget = _relative(fig, model, variant, "forget_test", "rougeL_recall_drop")
            prob = _absolute(fig, model, variant, "forget_test", "answer_prob_change", "known")
            retain = _relative(fig, model, variant, "retain_test", "rougeL_recall_drop")
            general = _relative(fig, model, variant, "general_test", "rougeL_recall_drop")
            mc2 = _absolute(fig, model, variant, "truthfulqa", "mc2_change", "all")
            fluency = _fluency(fig, model, variant)
            verdict = judge(
                _absolute(fig, model, variant, "forget_test", "rougeL_recall_drop", "known"),
                prob,
                lambda which, split, metric, m=model, v=variant: fig.value(m, BASE if which == "base" else v,
                                                                           split, metric),
                list(FLUENCY_SPLITS),
            )  # fmt: skip
            meets = (
                forget[0] >= TARGET_FORGET
                and verdict.label == "removed"
                and retain[2] <= TARGET_DAMAGE
                and general[2] <= TARGET_DAMAGE
                and abs(mc2[0]) <= TARGET_MC2
                and abs(fluency) <= TARGET_FLUENCY
            )
            seconds, rss = _benchmark(results, model, variant)
            rows.append({
                "model": model, "entry": variant,
                "forget_test": _cell(forget), "forget_train":
                _cell(_relative(fig, model, variant, "forget_train", "rougeL_recall_drop")),
                "retain_test": _cell(retain), "general_test": _cell(general),
                "truth prob (forget_test)": _cell(prob, percent=False), "MC2": _cell(mc2, percent=False),
                "fluency": f"{100 * fluency:+.0f}%" if math.isfinite(fluency) else "n/a",
                "judgement": verdict.label, "target": "yes" if meets else "no",
                "train s": f"{seconds:.0f}", "peak MB": f"{rss:.0f}",
                "_forget": forget[0] if math.isfinite(forget[0]) else -math.inf,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    return table.sort_values(["model", "_forget"], ascending=[True, False]).drop(columns="_forget")


def per_person(results: Path, model: str, variants: Sequence[str]) -> pd.DataFrame:
    """Per person: mean ROUGE-L recall on the known facts, ``trained / held-out`` for a forget person (forget_train /
    forget_test) and ``held-out`` (retain_test) for a neighbour, for the base model and each variant; with counts."""
    known = pd.read_parquet(results / "known" / f"{model}.parquet")[["id", "known"]]
    splits = {"forget_train": "forget", "forget_test": "forget", "retain_test": "neighbour"}
    means, counts = {}, None
    for variant in (BASE, *variants):
        scores = pd.read_parquet(results / "score" / model / f"{variant}.parquet").merge(known, on="id")
        scores = scores[scores["known"] & scores["split"].isin(list(splits))]
        grouped = scores.groupby(["person", "split"])["rougeL_recall"]
        means[variant], counts = grouped.mean(), grouped.size()
    rows = []
    for person in sorted({p for p, _ in counts.index}):
        has = {split for p, split in counts.index if p == person}
        role = "forget" if has & {"forget_train", "forget_test"} else "neighbour"
        order = ("forget_train", "forget_test") if role == "forget" else ("retain_test",)

        def cell(values: pd.Series, order: tuple[str, ...] = order, person: str = person) -> str:
            return " / ".join(f"{values[(person, s)]:.2f}" if (person, s) in values.index else "–" for s in order)

        rows.append({"role": role, "person": person, "facts": cell(counts.astype(float)).replace(".00", ""),
                     **{variant: cell(values) for variant, values in means.items()}})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["role", "person"]).reset_index(drop=True)


def _markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in row) + " |")
    return "\n".join(lines)


def frontier_report(results: Path, persons: Sequence[str] = ()) -> str:
    """The frontier table, then the per-person table of each model for ``persons`` (entries), as Markdown.

    Raises FileNotFoundError when ``results`` holds no ``score/summary.parquet`` (the run has not finished)."""
    summary = results / "score" / "summary.parquet"
    if not summary.is_file():
        raise FileNotFoundError(f"{summary} does not exist: run the workflow there first (snakemake --cores all ...)")
    parts = [_markdown(frontier(results))]
    for model in pd.read_parquet(summary, columns=["model"])["model"].unique():
        if persons:
            parts.append(f"Per person, {model}: ROUGE-L recall on the known facts\n\n" + _markdown(
                per_person(results, model, persons)))  # fmt: skip
    return "\n\n".join(parts)
