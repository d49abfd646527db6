"""The report's PNGs (matplotlib, no pyplot): per-split bars, training curves and the trade-off plot.

Every variant has a colour *and* a hatch or marker, so no plot relies on colour alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import cycle
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .tables import BASE, HEADLINE, LOSS_COLUMNS, Figures, finite

COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _placeholder(path: Path, text: str) -> Path:
    fig = _figure(8, 2.2)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    fig.savefig(path, format="png")
    return path


def plot_splits(fig_data: Figures, model: str, variants: Sequence[str], path: Path) -> Path:
    """Grouped bars of mean ROUGE-L recall per split (and per subset ``known`` where the summary has it), one bar
    per variant."""
    groups = [(s, sub) for s in fig_data.splits(model) for sub in fig_data.subsets(model, s)]
    groups = [g for g in groups if any(finite(fig_data.value(model, v, g[0], HEADLINE, g[1])) for v in variants)]
    if not groups:
        return _placeholder(path, f"{model}: no ROUGE-L recall in the summary")
    fig = _figure(max(8.0, 1.0 + 0.5 * len(groups) * len(variants) ** 0.5 * 1.6), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / len(variants)
    for i, (variant, colour, hatch) in enumerate(zip(variants, cycle(COLOURS), cycle(HATCHES))):
        values = [fig_data.value(model, variant, s, HEADLINE, sub) for s, sub in groups]
        xs = [g - 0.4 + width * (i + 0.5) for g in range(len(groups))]
        ax.bar(
            xs,
            [v if finite(v) else 0.0 for v in values],
            width,
            label=variant,
            color=colour,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
        )
    labels = [s if sub == "all" else f"{s}\n(known)" for s, sub in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("evaluation split (known: the facts the base model answered correctly)")
    ax.set_ylabel("mean ROUGE-L recall (0-1)")
    ax.set_title(f"ROUGE-L recall by split: {model}\n(forget splits should fall, the others should hold)")
    ax.legend(title="variant", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png")
    return path


def plot_training(logs: Mapping[str, pd.DataFrame], model: str, path: Path) -> Path:
    """One panel per loss column present (loss, forget_loss, retain_loss), one line per method, by step."""
    logs = {m: df for m, df in logs.items() if not df.empty}
    columns = [c for c in LOSS_COLUMNS if any(c in df.columns and df[c].notna().any() for df in logs.values())]
    if not columns:
        return _placeholder(path, f"{model}: no training log (no method trained in this run)")
    fig = _figure(4.2 * len(columns) + 1.5, 4.0)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, col in zip(axes, columns, strict=True):
        styles = zip(logs.items(), cycle(COLOURS[1:]), cycle(MARKERS[1:]), cycle(LINESTYLES))
        for (method, df), colour, marker, style in styles:
            if col in df.columns and df[col].notna().any():
                d = df.dropna(subset=[col])
                ax.plot(d["step"], d[col], style, marker=marker, ms=3, color=colour, label=method)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{col} (nats)")
        ax.set_title(col.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[-1].legend(title="method", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"Training curves: {model}")
    fig.savefig(path, format="png")
    return path


def plot_tradeoff(ranking: pd.DataFrame, models: Sequence[str], path: Path) -> Path:
    """One point per (model, method): x = collateral damage, y = forgetting with its 95% interval as an error bar
    (where the summary has one); the base model sits at the origin."""
    fig = _figure(8, 5.6)
    ax = fig.add_subplot()
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.scatter([0], [0], s=140, marker="*", color="black", zorder=4, label=f"{BASE} (every model)")
    rows = ranking if len(ranking) else pd.DataFrame(columns=["model", "method", "collateral", "forget"])
    methods = list(dict.fromkeys(rows["method"]))
    colour = dict(zip(models, cycle(COLOURS[1:])))
    marker = dict(zip(methods, cycle(MARKERS)))
    xs, ys, skipped = [0.0], [0.0], 0
    for _, r in rows.iterrows():
        x, y = r["collateral"], r["forget"].change
        if not (finite(x) and finite(y)):
            skipped += 1
            continue
        ax.scatter(
            [x], [y], s=70, marker=marker[r["method"]], color=colour.get(r["model"], "0.5"), edgecolor="black", zorder=3
        )
        low, high = r["forget"].low, r["forget"].high
        if finite(low) and finite(high):  # the forgetting's 95% interval
            ax.errorbar([x], [y], yerr=[[y - low], [high - y]], fmt="none", ecolor="0.3", capsize=4, lw=1, zorder=2)
            ys += [low, high]
        ax.annotate(f"{r['model']} / {r['method']}", (x, y), xytext=(6, 5), textcoords="offset points", fontsize=9)
        xs.append(x)
        ys.append(y)
    for m in models:
        ax.scatter([], [], s=70, marker="s", color=colour[m], edgecolor="black", label=f"model: {m}")
    for m in methods:
        ax.scatter([], [], s=70, marker=marker[m], color="white", edgecolor="black", label=f"method: {m}")
    xpad = max(0.05, 0.15 * (max(xs) - min(xs)))
    ypad = max(0.05, 0.15 * (max(ys) - min(ys)))
    ax.set_xlim(min(xs) - xpad, max(xs) + 3 * xpad)
    ax.set_ylim(min(ys) - ypad, max(ys) + ypad)
    ax.set_xlabel(
        "collateral damage: falls of ROUGE-L recall on known facts (neighbours, general) and MC2\nlower is better"
    )
    ax.set_ylabel(
        "forgetting: ROUGE-L recall drop on held-out forget facts\n"
        "the base model knew (bars: 95% interval); higher is better"
    )
    note = f" ({skipped} without both figures not shown)" if skipped else ""
    ax.set_title(f"Forgetting vs collateral damage, one point per (model, method){note}\nbest: top left")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")
    return path


def plot_sweeps(table: pd.DataFrame, max_damage: float, path: Path) -> Path:
    """Every sweep point (unlearning.scoring.operating_points): x = damage, y = forgetting, both on training-side
    splits; the Pareto front joined by a line, the bound dashed, the chosen entry labelled. One marker per (model,
    sweep)."""
    if not len(table):
        return _placeholder(path, "no sweep in this run (an unlearn: entry with a grid: makes one)")
    fig = _figure(8, 5.6)
    ax = fig.add_subplot()
    ax.axvline(max_damage, color="0.4", ls="--", lw=1, label=f"damage bound {max_damage:g}")
    for i, ((model, sweep), group) in enumerate(table.groupby(["model", "sweep"], sort=False)):
        colour, marker = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
        ax.scatter(group["damage"], group["forgetting"], s=55, marker=marker, color=colour, edgecolor="black",
                   zorder=3, label=f"{model} / {sweep}")  # fmt: skip
        front = group[group["pareto"]].sort_values("damage")
        ax.plot(front["damage"], front["forgetting"], color=colour, lw=1.2, zorder=2)
        for row in group[group["chosen"]].itertuples():
            ax.annotate(f"chosen: {row.entry}", (row.damage, row.forgetting), xytext=(6, -12),
                        textcoords="offset points", fontsize=9, weight="bold")  # fmt: skip
    ax.set_xlabel("damage: largest relative fall of ROUGE-L recall on retain_train / general_train\nlower is better")
    ax.set_ylabel("forgetting: relative fall of ROUGE-L recall\non forget_train; higher is better")
    ax.set_title("Sweeps: every point on training-side splits; line = Pareto front")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")
    return path


def plot_attacks(rows: Mapping[str, Sequence[Mapping]], path: Path) -> Path:
    """Per model and variant, the forgetting (drop of ROUGE-L recall on the held-out known forget facts) before any
    attack and after each attack, as bars with their 95% intervals (:func:`unlearning.report.attacks.attack_rows`
    gives ``rows`` per model)."""
    from .attacks import FORGET

    groups = [(model, r) for model, model_rows in rows.items() for r in model_rows]
    if not groups:
        return _placeholder(path, "no attack in this run (attacks: in the config runs them)")
    bars: dict[tuple[str, str], dict[str, object]] = {}
    for model, r in groups:
        key = (model, r["variant"])
        bars.setdefault(key, {"before": r["before"][FORGET]})[r["attack"]] = r["after"][FORGET]
    attacks = list(dict.fromkeys(r["attack"] for _, r in groups))
    series = ["before", *attacks]
    fig = _figure(max(8.0, 1.5 + 0.45 * len(bars) * len(series)), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, (name, colour, hatch) in enumerate(zip(series, cycle(COLOURS), cycle(HATCHES))):
        xs, heights, errors = [], [], [[], []]
        for g, drops in enumerate(bars.values()):
            drop = drops.get(name)
            if drop is None or not finite(drop.value):
                continue
            xs.append(g - 0.4 + width * (i + 0.5))
            heights.append(drop.value)
            has = finite(drop.low) and finite(drop.high)
            errors[0].append(drop.value - drop.low if has else 0.0)
            errors[1].append(drop.high - drop.value if has else 0.0)
        label = "no attack" if name == "before" else f"after {name}"
        ax.bar(xs, heights, width, yerr=errors, capsize=2, label=label, color=colour, hatch=hatch,
               edgecolor="black", linewidth=0.5)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(bars)), [f"{m}\n{v}" for m, v in bars], fontsize=9)
    ax.set_ylabel("forgetting: drop of ROUGE-L recall\non held-out known forget facts")
    ax.set_title("Does it stay forgotten? Forgetting before and after each attack (95% intervals)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, format="png")
    return path
