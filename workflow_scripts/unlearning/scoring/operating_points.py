"""Choose an operating point per sweep: the most forgetting within a damage bound, decided on training-side data.

A sweep (an ``unlearn:`` entry with a ``grid:``) trains one adapter per combination of settings. Picking the best
one by its held-out figures and then reporting those same figures would overstate it, so the rule reads only the
training side of every person set, whose questions no headline figure is computed from:

* forgetting = relative drop of ROUGE-L recall on ``forget_train`` (base -> entry, on the facts the base model
  knew): ``(base - entry) / base``;
* damage = the larger relative drop on ``retain_train`` and ``general_train`` (same metric and subset).

The chosen entry of a sweep is the one with the largest forgetting whose damage is at most ``max_damage``; its
held-out figures (``*_test`` splits) are then reported as they are. For an entry trained with several seeds
(``seeds:``) the rule reads the mean over its seeds (the summary's pooled rows). Each point's forgetting has a 95%
interval (the bootstrap interval of the recall drop, :mod:`unlearning.scoring.bootstrap`, over the base figure); a
point within the bound whose interval overlaps the chosen one's is marked ``tied``: the data cannot tell it apart
from the chosen one. The training-side damage understates the
held-out damage where the retain term trains on those questions, so the bound acts on an optimistic estimate: the
report shows both. Every entry also gets whether it is on the Pareto front (no other entry of its sweep forgets
more with no more damage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from ..core.parquet_io import TEXT_DTYPE, typed_frame
from .evaluation import split_attacks

SELECTION_SPLITS = ("forget_train", "retain_train", "general_train")
DAMAGE_SPLITS = ("retain_train", "general_train")
#: The table's contract: these columns with these dtypes, also when there is no sweep and the table has no rows
#: (Arrow: large_string, double, bool), so it unions with a sweep's table in Polars or DuckDB.
SWEEP_DTYPES = {
    "model": TEXT_DTYPE,
    "sweep": TEXT_DTYPE,
    "entry": TEXT_DTYPE,
    "forgetting": "float64",
    "forgetting_low": "float64",
    "forgetting_high": "float64",
    "damage": "float64",
    "within_bound": "bool",
    "pareto": "bool",
    "chosen": "bool",
    "tied": "bool",
}
SWEEP_COLUMNS = list(SWEEP_DTYPES)


def relative_drop(base: float, value: float) -> float:
    """``(base - value) / base``: the share of the base figure lost; NaN where the base figure is 0 or missing."""
    if not (isinstance(base, int | float) and math.isfinite(base)) or base <= 0 or not math.isfinite(value):
        return math.nan
    return (base - value) / base


def _figure(
    summary: pd.DataFrame, model: str, variant: str, split: str, metric: str, subset: str, column: str = "value"
) -> float:
    rows = summary[
        (summary["model"] == model)
        & (summary["variant"] == variant)
        & (summary["split"] == split)
        & (summary["metric"] == metric)
        & (summary["subset"] == subset)
    ]
    if "kind" in rows.columns:
        rows = rows[rows["kind"] == "all"]
    return float(rows[column].iloc[0]) if len(rows) and column in rows.columns else math.nan


def sweep_table(
    summary: pd.DataFrame,
    sweeps: Mapping[str, str],
    *,
    max_damage: float,
    metric: str = "rougeL_recall",
    subset: str = "known",
) -> pd.DataFrame:
    """One row per (model, entry) of every sweep: forgetting, damage, within the bound, on the front, chosen.

    ``summary`` is the long table (``model, variant, split, subset, metric, value``); only its
    :data:`SELECTION_SPLITS` rows are read. ``sweeps`` maps each entry to its sweep (``settings.sweep_of``); entries
    that are their own sweep (no grid) are left out. A sweep with no entry within the bound has no chosen entry.
    Without any sweep the table has no rows but keeps the dtypes of :data:`SWEEP_DTYPES`.
    """
    summary = split_attacks(summary)[0]
    side = summary[summary["split"].isin(SELECTION_SPLITS)]
    if "subset" not in side.columns:
        side = side.assign(subset="all")
    rows = []
    for model in side["model"].drop_duplicates():
        for entry, sweep in sweeps.items():
            if entry == sweep:
                continue

            def drop(split: str, entry: str = entry, model: str = model) -> float:
                base = _figure(side, model, "base", split, metric, subset)
                return relative_drop(base, _figure(side, model, entry, split, metric, subset))

            damages = [d for d in map(drop, DAMAGE_SPLITS) if math.isfinite(d)]
            base = _figure(side, model, "base", "forget_train", metric, subset)
            bounds = [_figure(side, model, entry, "forget_train", f"{metric}_drop", subset, c) / base
                      if math.isfinite(base) and base > 0 else math.nan for c in ("ci_low", "ci_high")]  # fmt: skip
            rows.append(
                {
                    "model": model,
                    "sweep": sweep,
                    "entry": entry,
                    "forgetting": drop("forget_train"),
                    "forgetting_low": bounds[0],
                    "forgetting_high": bounds[1],
                    "damage": max(damages) if damages else math.nan,
                }
            )
    table = typed_frame(rows, {c: SWEEP_DTYPES[c] for c in SWEEP_COLUMNS[:7]})
    table["within_bound"] = table["damage"] <= max_damage
    table["pareto"] = pd.Series([_on_front(table, row) for row in table.itertuples()], index=table.index, dtype=bool)
    table["chosen"] = False
    table["tied"] = False
    for _, group in table[table["within_bound"] & table["forgetting"].notna()].groupby(["model", "sweep"]):
        best = group.loc[group["forgetting"].idxmax()]
        table.loc[best.name, "chosen"] = True
        # the chosen point's interval overlaps another's: the data cannot tell the two apart
        overlap = (group["forgetting_high"] >= best["forgetting_low"]) & (group.index != best.name)
        table.loc[group.index[overlap], "tied"] = True
    return table[SWEEP_COLUMNS].astype(SWEEP_DTYPES)


def _on_front(table: pd.DataFrame, row: object) -> bool:
    """No other entry of the same (model, sweep) forgets at least as much with at most as much damage, and is
    strictly better on one of the two."""
    if not (math.isfinite(row.forgetting) and math.isfinite(row.damage)):
        return False
    peers = table[(table["model"] == row.model) & (table["sweep"] == row.sweep) & (table["entry"] != row.entry)]
    better = (peers["forgetting"] >= row.forgetting) & (peers["damage"] <= row.damage)
    strictly = (peers["forgetting"] > row.forgetting) | (peers["damage"] < row.damage)
    return not bool((better & strictly).any())
