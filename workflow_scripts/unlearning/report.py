"""The final report: headline tables, plots, examples and provenance, as one HTML file and one Markdown file.

Both documents are built from the same :class:`ReportData`, so their tables agree cell for cell. The HTML is
self-contained (inline CSS, plots embedded as ``data:image/png;base64`` URIs, no scripts) so it opens offline;
the Markdown links the PNG files in ``plot_dir`` by relative path. All dataset and config text is escaped.

Plot files (deterministic, see :func:`plot_names`), written into ``plot_dir`` for every model:

* ``rouge_by_split_{model}.png`` -- grouped bars of ROUGE-L recall per split, base vs unlearned;
* ``training_{model}.png`` -- DPO loss and reward margin by step (a placeholder that says so when the model has
  no training log, so the file set never depends on the data);
* ``tradeoff.png`` -- one point per model: retain vs forget_train ROUGE-L recall drop.

``{model}`` is the model name with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``.

Colour rule for a change (unlearned - base): on ``forget_train``/``forget_test`` a fall beyond
:data:`TOLERANCE` is good and a rise beyond it is bad; on the other splits a fall beyond the tolerance is bad.
For perplexity and degenerate rate a rise beyond the tolerance is bad on every split (perplexity uses a
relative tolerance, :data:`PERPLEXITY_REL_TOLERANCE`). Changes within the tolerance are neutral.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from .errors import InputError
from .parquet_io import read_metadata, read_parquet

SPLITS = ("forget_train", "forget_test", "retain", "general", "truthfulqa")
FORGET_SPLITS = frozenset({"forget_train", "forget_test"})
EXAMPLE_SPLITS = ("forget_train", "forget_test", "retain")
VARIANTS = ("base", "unlearned")
N_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 600
TOLERANCE = 0.02
PERPLEXITY_REL_TOLERANCE = 0.05
EMPTY_SPLIT_NOTE = "no questions in this split"

#: (summary metric, column label, True when a rise is bad on every split)
HEADLINE_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("rougeL_recall", "ROUGE-L recall", False),
    ("rougeL_f1", "ROUGE-L F1", False),
    ("rouge1_f1", "ROUGE-1 F1", False),
    ("bleu_corpus", "BLEU (corpus)", False),
    ("answer_prob", "Answer prob.", False),
    ("mc1", "MC1", False),
    ("mc2", "MC2", False),
    ("perplexity", "Perplexity", True),
    ("degenerate_rate", "Degenerate rate", True),
)
OVERVIEW_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (split, "rougeL_recall_drop", f"ROUGE-L recall drop, {split}") for split in SPLITS
) + (("truthfulqa", "mc2_change", "MC2 change, truthfulqa"),)

SUMMARY_COLUMNS = ("model", "variant", "split", "metric", "value")
SCORE_COLUMNS = ("id", "split", "question", "reference", "generation")
LOG_COLUMNS = ("step", "loss", "rewards_margins")
SOURCE_KEYS = ("path", "gguf", "repo", "hf_id", "name_or_path", "url")
MARKERS = {"good": "✅", "bad": "⚠️", "neutral": "≈", "na": ""}
BASE_COLOUR, UNLEARNED_COLOUR = "#4C72B0", "#DD8452"


# --------------------------------------------------------------------------------------------- file names


def safe_name(model: str) -> str:
    """``model`` reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(model)) or "_"


def plot_names(models: Sequence[str]) -> list[str]:
    """File names (inside ``plot_dir``) of every PNG that :func:`render_report` writes for ``models``."""
    names = [f"rouge_by_split_{safe_name(m)}.png" for m in models]
    names.append("tradeoff.png")
    names += [f"training_{safe_name(m)}.png" for m in models]
    return names


def plot_files(plot_dir: str | os.PathLike, models: Sequence[str]) -> list[Path]:
    """Paths of :func:`plot_names` under ``plot_dir`` (for a Snakemake rule's ``output:``)."""
    return [Path(plot_dir) / name for name in plot_names(models)]


# --------------------------------------------------------------------------------------------- loading


def load_summary(path: Path) -> pd.DataFrame:
    df = read_parquet(path, columns=SUMMARY_COLUMNS)
    df = df.loc[:, list(SUMMARY_COLUMNS)].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def load_scores(scores: Mapping[str, Mapping[str, Path]]) -> dict[str, dict[str, pd.DataFrame]]:
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for model, variants in scores.items():
        out[model] = {}
        for variant, path in variants.items():
            if variant not in VARIANTS:
                raise InputError(f"scores[{model!r}]: unknown variant {variant!r}; expected one of {VARIANTS}")
            out[model][variant] = read_parquet(path, columns=SCORE_COLUMNS)
    return out


def load_training_logs(training_logs: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    out = {}
    for model, path in training_logs.items():
        df = read_parquet(path, columns=LOG_COLUMNS)
        for col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
        out[model] = df.sort_values("step", kind="mergesort").reset_index(drop=True)
    return out


def load_benchmarks(benchmarks: Mapping[str, Path]) -> pd.DataFrame:
    """One row per job label: mean wall seconds, peak max RSS (MB), number of repeats in the TSV."""
    rows = []
    for label, path in benchmarks.items():
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: benchmark file of {label!r} not found")
        try:
            df = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a Snakemake benchmark TSV ({exc})") from exc
        if "s" not in df.columns or df.empty:
            raise InputError(f"{path}: expected a Snakemake benchmark TSV with an 's' column and one row or more")
        seconds = pd.to_numeric(df["s"], errors="coerce")
        rss = pd.to_numeric(df["max_rss"], errors="coerce") if "max_rss" in df.columns else pd.Series([math.nan])
        rows.append(
            {
                "job": str(label),
                "seconds": float(seconds.mean()),
                "max_rss_mb": float(rss.max()) if rss.notna().any() else math.nan,
                "repeats": len(df),
            }
        )
    return pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb", "repeats"])


# --------------------------------------------------------------------------------------------- tables


def judge_change(metric: str, split: str, base: float, unlearned: float) -> str:
    """``good``, ``bad``, ``neutral`` (within tolerance) or ``na`` for the change ``unlearned - base``."""
    if not (_finite(base) and _finite(unlearned)):
        return "na"
    change = unlearned - base
    rise_is_bad = dict((m, r) for m, _, r in HEADLINE_METRICS).get(metric, False)
    tol = PERPLEXITY_REL_TOLERANCE * abs(base) if metric == "perplexity" else TOLERANCE
    if abs(change) <= tol:
        return "neutral"
    if rise_is_bad:
        return "bad" if change > 0 else "good"
    if split in FORGET_SPLITS:
        return "good" if change < 0 else "bad"
    return "bad" if change < 0 else "good"


def _value(summary: pd.DataFrame, model: str, variant: str, split: str, metric: str) -> float:
    sel = summary[
        (summary["model"] == model)
        & (summary["variant"] == variant)
        & (summary["split"] == split)
        & (summary["metric"] == metric)
    ]["value"]
    return float(sel.iloc[0]) if len(sel) else math.nan


def headline_table(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per split: ``split, n, empty`` and per metric ``{m}_base, {m}_unlearned, {m}_change, {m}_verdict``.

    ``empty`` is True when the split is absent for the model or has ``n = 0`` in both variants.
    """
    rows = []
    for split in SPLITS:
        n_vals = [_value(summary, model, v, split, "n") for v in VARIANTS]
        n = max((x for x in n_vals if _finite(x)), default=math.nan)
        row: dict[str, Any] = {"split": split, "n": n, "empty": not (_finite(n) and n > 0)}
        for metric, _, _ in HEADLINE_METRICS:
            base = _value(summary, model, "base", split, metric)
            unl = _value(summary, model, "unlearned", split, metric)
            row[f"{metric}_base"] = base
            row[f"{metric}_unlearned"] = unl
            row[f"{metric}_change"] = unl - base if _finite(base) and _finite(unl) else math.nan
            row[f"{metric}_verdict"] = judge_change(metric, split, base, unl)
        rows.append(row)
    return pd.DataFrame(rows)


def overview_table(summary: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per model the headline figures (variant ``headline``), recomputed from base/unlearned when absent."""
    rows = []
    for model in models:
        row: dict[str, Any] = {"model": model}
        for split, metric, label in OVERVIEW_COLUMNS:
            value = _value(summary, model, "headline", split, metric)
            if not _finite(value):
                base_metric = "rougeL_recall" if metric == "rougeL_recall_drop" else "mc2"
                base = _value(summary, model, "base", split, base_metric)
                unl = _value(summary, model, "unlearned", split, base_metric)
                value = base - unl if metric == "rougeL_recall_drop" else unl - base
            row[label] = value
        rows.append(row)
    return pd.DataFrame(rows)


def training_summary(log: pd.DataFrame) -> dict[str, float]:
    """Last step, final loss / margin / accuracy (last non-null value) and total seconds of a training log."""

    def last(col: str) -> float:
        if col not in log.columns:
            return math.nan
        vals = log[col].dropna()
        return float(vals.iloc[-1]) if len(vals) else math.nan

    seconds = log["seconds"].max() if "seconds" in log.columns else math.nan
    return {
        "steps": last("step"),
        "epochs": last("epoch"),
        "final loss": last("loss"),
        "final reward margin": last("rewards_margins"),
        "final reward accuracy": last("rewards_accuracies"),
        "seconds": float(seconds) if _finite(seconds) else math.nan,
    }


# --------------------------------------------------------------------------------------------- examples


def _sorted_by_id(df: pd.DataFrame) -> pd.DataFrame:
    try:
        return df.sort_values("id", kind="mergesort")
    except TypeError:
        return df.sort_values("id", kind="mergesort", key=lambda s: s.astype(str))


def select_examples(
    variants: Mapping[str, pd.DataFrame], splits: Iterable[str] = EXAMPLE_SPLITS, n: int = N_EXAMPLES
) -> dict[str, pd.DataFrame]:
    """Per split the first ``n`` questions by id: ``id, person, question, reference, base, unlearned``."""
    out = {}
    anchor = variants.get("base", variants.get("unlearned"))
    for split in splits:
        cols = ["id", "person", "question", "reference", "base", "unlearned"]
        if anchor is None:
            out[split] = pd.DataFrame(columns=cols)
            continue
        picked = _sorted_by_id(anchor[anchor["split"] == split]).head(n)
        rows = []
        for _, r in picked.iterrows():
            row = {
                "id": r["id"],
                "person": r.get("person", ""),
                "question": r["question"],
                "reference": r["reference"],
            }
            for variant in VARIANTS:
                df = variants.get(variant)
                match = None if df is None else df[(df["split"] == split) & (df["id"] == r["id"])]
                row[variant] = match["generation"].iloc[0] if match is not None and len(match) else None
            rows.append(row)
        out[split] = pd.DataFrame(rows, columns=cols)
    return out


# --------------------------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def plot_rouge_by_split(table: pd.DataFrame, model: str, path: Path) -> Path:
    """Grouped bars of ROUGE-L recall per split, base vs unlearned (empty splits labelled)."""
    fig = _new_figure(8, 4.5)
    ax = fig.add_subplot()
    xs = range(len(table))
    width = 0.38
    for offset, variant, colour in ((-width / 2, "base", BASE_COLOUR), (width / 2, "unlearned", UNLEARNED_COLOUR)):
        vals = [v if _finite(v) else 0.0 for v in table[f"rougeL_recall_{variant}"]]
        bars = ax.bar([x + offset for x in xs], vals, width, label=variant, color=colour)
        labels = [f"{v:.2f}" if _finite(v) else "" for v in table[f"rougeL_recall_{variant}"]]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=9)
    for x, empty in zip(xs, table["empty"], strict=True):
        if empty:
            ax.text(x, 0.03, "no questions", ha="center", va="bottom", rotation=90, fontsize=9, color="0.4")
    ax.set_xticks(list(xs), list(table["split"]))
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("evaluation split")
    ax.set_ylabel("mean ROUGE-L recall (0-1)")
    ax.set_title(f"ROUGE-L recall by split: {model}\n(forget splits should fall, others should hold)")
    ax.legend(title="model variant", loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png")
    return path


def plot_tradeoff(overview: pd.DataFrame, path: Path) -> Path:
    """One labelled point per model: x = retain ROUGE-L recall drop, y = forget_train drop."""
    fig = _new_figure(7, 5.5)
    ax = fig.add_subplot()
    xcol, ycol = "ROUGE-L recall drop, retain", "ROUGE-L recall drop, forget_train"
    pts = overview[[_finite(x) and _finite(y) for x, y in zip(overview[xcol], overview[ycol], strict=True)]]
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.scatter(pts[xcol], pts[ycol], s=60, color=UNLEARNED_COLOUR, edgecolor="black", zorder=3)
    for _, r in pts.iterrows():
        ax.annotate(str(r["model"]), (r[xcol], r[ycol]), xytext=(6, 6), textcoords="offset points", fontsize=10)
    xs = [0.0, *pts[xcol].tolist()]
    ys = [0.0, *pts[ycol].tolist()]
    xpad = max(0.05, 0.15 * (max(xs) - min(xs)))
    ypad = max(0.05, 0.15 * (max(ys) - min(ys)))
    ax.set_xlim(min(xs) - xpad, max(xs) + 3 * xpad)
    ax.set_ylim(min(ys) - ypad, max(ys) + ypad)
    ax.set_xlabel("retain ROUGE-L recall drop (base - unlearned, absolute)\ncollateral damage: lower is better")
    ax.set_ylabel("forget_train ROUGE-L recall drop (base - unlearned, absolute)\nforgetting: higher is better")
    skipped = len(overview) - len(pts)
    note = f" ({skipped} model(s) without both figures not shown)" if skipped else ""
    ax.set_title(f"Forget vs retain trade-off, one point per model{note}\nbest: top left")
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")
    return path


def plot_training(log: pd.DataFrame | None, model: str, path: Path) -> Path:
    """DPO loss and reward margin by step; a placeholder figure when there is no log."""
    if log is None or log.empty:
        fig = _new_figure(8, 2.5)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(
            0.5, 0.5, f"{model}: no training log (model not trained in this run)", ha="center", va="center", fontsize=12
        )
        fig.savefig(path, format="png")
        return path
    fig = _new_figure(11, 4.2)
    ax_loss, ax_rew = fig.subplots(1, 2)
    d = log.dropna(subset=["loss"])
    ax_loss.plot(d["step"], d["loss"], marker="o", ms=3, color=BASE_COLOUR)
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("DPO loss (nats)")
    ax_loss.set_title("Training loss")
    d = log.dropna(subset=["rewards_margins"])
    ax_rew.plot(
        d["step"], d["rewards_margins"], marker="o", ms=3, color=UNLEARNED_COLOUR, label="margin (chosen - rejected)"
    )
    for col, style in (("rewards_chosen", "--"), ("rewards_rejected", ":")):
        if col in log.columns and log[col].notna().any():
            d = log.dropna(subset=[col])
            ax_rew.plot(d["step"], d[col], style, color="0.4", label=col.replace("rewards_", "reward, "))
    ax_rew.axhline(0, color="0.6", lw=0.8)
    ax_rew.set_xlabel("optimizer step")
    ax_rew.set_ylabel("implicit DPO reward (beta x log-ratio, nats)")
    ax_rew.set_title("Reward margin")
    ax_rew.legend(fontsize=9)
    for ax in (ax_loss, ax_rew):
        ax.grid(alpha=0.3)
    fig.suptitle(f"DPO + LoRA training: {model}")
    fig.savefig(path, format="png")
    return path


# --------------------------------------------------------------------------------------------- provenance


def _plain(value: Any) -> Any:
    """A JSON-safe plain copy (dict subclasses such as Snakemake's config become dicts)."""
    return json.loads(json.dumps(value, default=str))


def config_text(config: Mapping[str, Any]) -> str:
    """The config as YAML (JSON when PyYAML is missing)."""
    plain = _plain(dict(config))
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with Snakemake
        return json.dumps(plain, indent=2)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def _find_seeds(value: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, sub in value.items():
            name = f"{prefix}{key}"
            if "seed" in str(key).lower() and not isinstance(sub, Mapping):
                found[name] = sub
            else:
                found.update(_find_seeds(sub, name + "."))
    return found


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_plain(value), sort_keys=True)


def model_sources(config: Mapping[str, Any]) -> pd.DataFrame:
    """``model, source, options, trust_remote_code`` for every model in ``config['models']``."""
    rows = []
    for name, entry in (config.get("models") or {}).items():
        if isinstance(entry, Mapping):
            key = next((k for k in SOURCE_KEYS if k in entry), None)
            source = f"{key}: {_short(entry[key])}" if key else "(not given)"
            options = ", ".join(f"{k}={_short(v)}" for k, v in entry.items() if k not in (key, "trust_remote_code"))
            trust = entry.get("trust_remote_code") is True
        else:
            source, options, trust = _short(entry), "", False
        rows.append({"model": str(name), "source": source, "options": options, "trust_remote_code": trust})
    return pd.DataFrame(rows, columns=["model", "source", "options", "trust_remote_code"])


@dataclass
class Provenance:
    models: pd.DataFrame
    perturber: dict[str, str]
    perturber_trusts_code: bool
    seeds: dict[str, Any]
    data: dict[str, str]
    data_sizes: dict[str, int]
    versions: dict[str, str]
    meta: dict[str, str]
    runtimes: pd.DataFrame
    config_text: str


def collect_provenance(
    config: Mapping[str, Any], summary: Path, benchmarks: Mapping[str, Path], data_sizes: Mapping[str, int] | None
) -> Provenance:
    meta = read_metadata(summary)
    versions = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    perturb = config.get("perturb") or {}
    perturb = perturb if isinstance(perturb, Mapping) else {"model": perturb}
    data = config.get("data") or {}
    data = data if isinstance(data, Mapping) else {"data": data}
    seeds = _find_seeds(config)
    if "seed" in meta and meta["seed"] is not None:
        seeds.setdefault("(summary.parquet seed)", meta["seed"])
    return Provenance(
        models=model_sources(config),
        perturber={str(k): _short(v) for k, v in perturb.items()},
        perturber_trusts_code=perturb.get("trust_remote_code") is True,
        seeds=seeds,
        data={str(k): _short(v) for k, v in data.items()},
        data_sizes={str(k): int(v) for k, v in (data_sizes or {}).items()},
        versions={str(k): str(v) for k, v in versions.items()},
        meta={k: _short(meta[k]) for k in ("stage", "config_hash") if k in meta},
        runtimes=load_benchmarks(benchmarks),
        config_text=config_text(config),
    )


# --------------------------------------------------------------------------------------------- assembly


@dataclass
class ModelSection:
    name: str
    table: pd.DataFrame
    examples: dict[str, pd.DataFrame]
    training: dict[str, float] | None
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    models: list[str]
    overview: pd.DataFrame
    sections: list[ModelSection]
    plots: dict[str, Path]
    provenance: Provenance


def _model_order(config: Mapping[str, Any], summary: pd.DataFrame, *more: Iterable[str]) -> list[str]:
    order = [str(m) for m in (config.get("models") or {})]
    extra = set(summary["model"].astype(str)).union(*[set(map(str, m)) for m in more]) - set(order)
    models = order + sorted(extra)
    seen: dict[str, str] = {}
    for m in models:
        if safe_name(m) in seen:
            raise InputError(f"models {seen[safe_name(m)]!r} and {m!r} map to the same plot file name")
        seen[safe_name(m)] = m
    return models


def build_report_data(
    *,
    summary: Path,
    scores: Mapping[str, Mapping[str, Path]],
    training_logs: Mapping[str, Path],
    config: Mapping[str, Any],
    benchmarks: Mapping[str, Path],
    plot_dir: Path,
    data_sizes: Mapping[str, int] | None = None,
) -> ReportData:
    """Load every input, compute the tables and write the plots."""
    summary_df = load_summary(summary)
    score_dfs = load_scores(scores)
    logs = load_training_logs(training_logs)
    models = _model_order(config, summary_df, score_dfs, logs)
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = plot_names(models)
    plots: dict[str, Path] = {}
    sections = []
    for model in models:
        table = headline_table(summary_df, model)
        notes = []
        if not (summary_df["model"] == model).any():
            notes.append("no rows for this model in summary.parquet")
        log = logs.get(model)
        if log is None:
            notes.append("no training log: the model was not trained in this run, so there are no curves")
        elif log.empty:
            notes.append("the training log is empty, so there are no curves")
        if model not in score_dfs:
            notes.append("no per-row scores, so there are no examples")
        name = f"rouge_by_split_{safe_name(model)}.png"
        plots[name] = plot_rouge_by_split(table, model, plot_dir / name)
        name = f"training_{safe_name(model)}.png"
        plots[name] = plot_training(log, model, plot_dir / name)
        sections.append(
            ModelSection(
                name=model,
                table=table,
                examples=select_examples(score_dfs.get(model, {})),
                training=training_summary(log) if log is not None and not log.empty else None,
                notes=notes,
            )
        )
    overview = overview_table(summary_df, models)
    plots["tradeoff.png"] = plot_tradeoff(overview, plot_dir / "tradeoff.png")
    plots = {n: plots[n] for n in names}
    return ReportData(
        models=models,
        overview=overview,
        sections=sections,
        plots=plots,
        provenance=collect_provenance(config, summary, benchmarks, data_sizes),
    )


# --------------------------------------------------------------------------------------------- formatting


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_value(metric: str, x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.2f}" if metric == "perplexity" else f"{x:.3f}"


def fmt_change(metric: str, x: Any) -> str:
    if not _finite(x):
        return "—"
    return ("+" if float(x) >= 0 else "") + fmt_value(metric, x)


def fmt_seconds(x: Any) -> str:
    if not _finite(x):
        return "—"
    s = int(round(float(x)))
    return f"{float(x):.1f} s ({s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d})"


def headline_cells(row: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Per headline metric ``(base -> unlearned, change with marker, verdict)``, shared by HTML and Markdown."""
    cells = []
    for metric, _, _ in HEADLINE_METRICS:
        base, unl = row[f"{metric}_base"], row[f"{metric}_unlearned"]
        verdict = row[f"{metric}_verdict"]
        if not (_finite(base) or _finite(unl)):
            cells.append(("—", "", "na"))
            continue
        change = fmt_change(metric, row[f"{metric}_change"])
        marker = MARKERS[verdict]
        cells.append(
            (
                f"{fmt_value(metric, base)} → {fmt_value(metric, unl)}",
                f"{change} {marker}".strip() if change != "—" else "",
                verdict,
            )
        )
    return cells


def training_cells(summary: Mapping[str, float]) -> list[str]:
    """Formatted values of :func:`training_summary`, shared by HTML and Markdown."""
    cells = []
    for key, value in summary.items():
        if key == "seconds":
            cells.append(fmt_seconds(value))
        elif key in ("steps", "epochs"):
            cells.append(f"{value:g}" if _finite(value) else "—")
        else:
            cells.append(fmt_change("x", value) if "margin" in key else fmt_value("x", value))
    return cells


def _n_text(n: Any) -> str:
    return str(int(n)) if _finite(n) else "0"


def _truncate(text: Any) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "(missing)"
    text = str(text)
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…"


LEGEND = (
    "Each cell: base → unlearned, then the change (unlearned − base). "
    f"✅ good, ⚠️ bad, ≈ within tolerance ({TOLERANCE} absolute; {PERPLEXITY_REL_TOLERANCE:.0%} of base for "
    "perplexity). On forget_train/forget_test a fall is good; elsewhere a fall is bad. "
    "For perplexity and degenerate rate a rise is bad on every split."
)


# --------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1300px;
padding:0 1rem;color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}
.scroll{overflow-x:auto}
.good{background:#dff3e0;color:#135f1e}.bad{background:#fbe0de;color:#8a1c12}.neutral{color:#555}
td.empty{color:#777;font-style:italic;text-align:center}
.chg{font-weight:600;display:block}
.warn{background:#fbe0de;color:#8a1c12;font-weight:700;padding:.1rem .35rem;border-radius:3px}
.note{color:#555;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #eee}
td.text{max-width:22rem;white-space:pre-wrap;word-break:break-word}
pre{background:#f7f7f7;padding:.8rem;overflow-x:auto;font-size:.85rem}
details summary{cursor:pointer;font-weight:600}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False) -> str:
    """A simple table; cells are escaped unless ``raw`` (then they are already HTML)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def html_overview(data: ReportData) -> str:
    labels = [label for _, _, label in OVERVIEW_COLUMNS]
    rows = [[r["model"], *[fmt_change("x", r[label]) for label in labels]] for _, r in data.overview.iterrows()]
    return (
        '<h2 id="overview">Overview</h2><p>Headline figures per model: ROUGE-L recall drop is base − unlearned '
        "(large on forget splits, near 0 elsewhere is ideal); MC2 change is unlearned − base.</p>"
        + _html_table(["model", *labels], rows)
    )


def html_headline(section: ModelSection) -> str:
    heads = "".join(f"<th>{_e(label)}</th>" for _, label, _ in HEADLINE_METRICS)
    body = []
    for _, row in section.table.iterrows():
        cells = f'<td>{_e(row["split"])}</td><td class="num">{_n_text(row["n"])}</td>'
        if row["empty"]:
            cells += f'<td class="empty" colspan="{len(HEADLINE_METRICS)}">{EMPTY_SPLIT_NOTE}</td>'
        else:
            for pair, change, verdict in headline_cells(row):
                chg = f'<span class="chg">{_e(change)}</span>' if change else ""
                cells += f'<td class="num {verdict}">{_e(pair)}{chg}</td>'
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table class="headline" data-model="{_e(section.name)}"><thead><tr><th>split</th>'
        f"<th>n</th>{heads}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def html_training(section: ModelSection) -> str:
    if section.training is None:
        return ""
    return _html_table(list(section.training), [training_cells(section.training)])


def html_examples(section: ModelSection) -> str:
    parts = []
    for split, df in section.examples.items():
        parts.append(f"<h4>{_e(split)}</h4>")
        if df.empty:
            parts.append(f'<p class="note">{EMPTY_SPLIT_NOTE}</p>')
            continue
        rows = [
            [
                f'<td class="text">{_e(_truncate(r[c]))}</td>'
                for c in ("id", "person", "question", "reference", "base", "unlearned")
            ]
            for _, r in df.iterrows()
        ]
        head = "".join(
            f"<th>{h}</th>" for h in ("id", "person", "question", "true answer", "base answer", "unlearned answer")
        )
        body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
        parts.append(
            f'<div class="scroll"><table class="examples"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    return "".join(parts)


def html_provenance(p: Provenance) -> str:
    out = ['<h2 id="provenance">Provenance</h2>', "<h3>Models</h3>"]
    rows = []
    for _, r in p.models.iterrows():
        flag = (
            '<span class="warn">⚠️ trust_remote_code: true (runs code from the model repository)</span>'
            if r["trust_remote_code"]
            else "false"
        )
        rows.append([_e(r["model"]), _e(r["source"]), _e(r["options"]), flag])
    out.append(
        _html_table(["model", "source", "options", "trust_remote_code"], rows, raw=True)
        if rows
        else '<p class="note">no models in the config</p>'
    )
    out.append("<h3>Perturber</h3>")
    if p.perturber_trusts_code:
        out.append('<p><span class="warn">⚠️ perturber: trust_remote_code: true</span></p>')
    out.append(
        _html_table(["key", "value"], p.perturber.items())
        if p.perturber
        else '<p class="note">no perturber in the config</p>'
    )
    out.append("<h3>Seeds</h3>")
    out.append(_html_table(["key", "seed"], p.seeds.items()) if p.seeds else '<p class="note">no seed set</p>')
    out.append("<h3>Data</h3>")
    out.append(_html_table(["key", "value"], p.data.items()) if p.data else '<p class="note">no data config</p>')
    if p.data_sizes:
        out.append(_html_table(["split", "rows"], [[k, str(v)] for k, v in p.data_sizes.items()]))
    out.append("<h3>Library versions</h3>")
    out.append(
        _html_table(["library", "version"], p.versions.items())
        if p.versions
        else '<p class="note">versions not recorded in summary.parquet</p>'
    )
    if p.meta:
        out.append(_html_table(["summary.parquet", "value"], p.meta.items()))
    out.append("<h3>Run times</h3>")
    out.append(
        _html_table(["job", "wall time", "max RSS (MB)", "repeats"], runtime_rows(p.runtimes))
        if len(p.runtimes)
        else '<p class="note">no benchmark files given</p>'
    )
    out.append(f"<details><summary>Configuration as run</summary><pre>{_e(p.config_text)}</pre></details>")
    return "".join(out)


def runtime_rows(df: pd.DataFrame) -> list[list[str]]:
    return [
        [
            r["job"],
            fmt_seconds(r["seconds"]),
            f"{r['max_rss_mb']:.1f}" if _finite(r["max_rss_mb"]) else "—",
            str(r["repeats"]),
        ]
        for _, r in df.iterrows()
    ]


def trusted_code_warning(p: Provenance) -> str:
    """One line naming every model (and the perturber) run with ``trust_remote_code: true``; empty if none."""
    names = list(p.models.loc[p.models["trust_remote_code"], "model"])
    if p.perturber_trusts_code:
        names.append("perturber")
    if not names:
        return ""
    return f"trust_remote_code: true for {', '.join(names)}: code from the model repository was executed."


def render_html(data: ReportData) -> str:
    nav = "".join(f'<li><a href="#model-{_e(safe_name(m))}">{_e(m)}</a></li>' for m in data.models)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Unlearning report</title><style>{CSS}</style></head><body>",
        "<h1>Targeted unlearning report (DPO + LoRA)</h1>",
        f'<ul><li><a href="#overview">Overview</a></li>{nav}<li><a href="#tradeoff">Trade-off</a></li>'
        '<li><a href="#provenance">Provenance</a></li></ul>',
    ]
    if warning := trusted_code_warning(data.provenance):
        parts.append(f'<p><span class="warn">⚠️ {_e(warning)}</span></p>')
    parts.append(html_overview(data))
    for s in data.sections:
        parts.append(f'<h2 id="model-{_e(safe_name(s.name))}">Model: {_e(s.name)}</h2>')
        parts.extend(f'<p class="note">Note: {_e(n)}.</p>' for n in s.notes)
        parts.append(f"<h3>Headline table</h3><p>{_e(LEGEND)}</p>{html_headline(s)}")
        name = f"rouge_by_split_{safe_name(s.name)}.png"
        parts.append(_img(data.plots[name], f"ROUGE-L recall by split, {s.name}"))
        parts.append("<h3>Training curves</h3>")
        if s.training is None:
            parts.append(f'<p class="note">No training curves for {_e(s.name)}: no training log.</p>')
        else:
            parts.append(html_training(s))
            parts.append(_img(data.plots[f"training_{safe_name(s.name)}.png"], f"training curves, {s.name}"))
        parts.append(f"<h3>Examples</h3><p>First {N_EXAMPLES} questions by id per split.</p>{html_examples(s)}")
    parts.append('<h2 id="tradeoff">Forget vs retain trade-off</h2>')
    parts.append(_img(data.plots["tradeoff.png"], "forget vs retain trade-off"))
    parts.append(html_provenance(data.provenance))
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_text(x: Any) -> str:
    """Untrusted text made inert in a Markdown table cell (HTML escaped, Markdown specials backslashed)."""
    text = html.escape(str(x), quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"\r?\n", "<br>", text)


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_pairs(headers: Sequence[str], mapping: Mapping[str, Any], empty: str | None = None) -> str:
    """A two-column Markdown table of a mapping, or the ``empty`` note when there is nothing to show."""
    if not mapping:
        return empty or ""
    return _md_table(headers, [[md_text(k), md_text(v)] for k, v in mapping.items()])


def md_headline(section: ModelSection) -> str:
    rows = []
    for _, row in section.table.iterrows():
        cells = [row["split"], _n_text(row["n"])]
        if row["empty"]:
            cells += [EMPTY_SPLIT_NOTE] + [""] * (len(HEADLINE_METRICS) - 1)
        else:
            cells += [f"{pair} ({change})" if change else pair for pair, change, _ in headline_cells(row)]
        rows.append(cells)
    return _md_table(["split", "n", *[label for _, label, _ in HEADLINE_METRICS]], rows)


def md_examples(section: ModelSection) -> str:
    parts = []
    for split, df in section.examples.items():
        parts.append(f"#### {split}\n")
        if df.empty:
            parts.append(f"_{EMPTY_SPLIT_NOTE}_\n")
            continue
        rows = [
            [md_text(_truncate(r[c])) for c in ("id", "person", "question", "reference", "base", "unlearned")]
            for _, r in df.iterrows()
        ]
        parts.append(_md_table(["id", "person", "question", "true answer", "base answer", "unlearned answer"], rows))
    return "\n".join(parts)


def md_provenance(p: Provenance) -> str:
    out = ["## Provenance\n", "### Models\n"]
    rows = [
        [
            md_text(r["model"]),
            md_text(r["source"]),
            md_text(r["options"]),
            "⚠️ **trust_remote_code: true** (runs code from the model repository)"
            if r["trust_remote_code"]
            else "false",
        ]
        for _, r in p.models.iterrows()
    ]
    out.append(
        _md_table(["model", "source", "options", "trust_remote_code"], rows) if rows else "_no models in the config_\n"
    )
    out.append("### Perturber\n")
    if p.perturber_trusts_code:
        out.append("⚠️ **perturber: trust_remote_code: true**\n")
    out.append(_md_pairs(["key", "value"], p.perturber, "_no perturber in the config_\n"))
    out.append("### Seeds\n")
    out.append(_md_pairs(["key", "seed"], p.seeds, "_no seed set_\n"))
    out.append("### Data\n")
    out.append(_md_pairs(["key", "value"], p.data, "_no data config_\n"))
    out.append(_md_pairs(["split", "rows"], p.data_sizes))
    out.append("### Library versions\n")
    out.append(_md_pairs(["library", "version"], p.versions, "_versions not recorded in summary.parquet_\n"))
    out.append(_md_pairs(["summary.parquet", "value"], p.meta))
    out.append("### Run times\n")
    out.append(
        _md_table(
            ["job", "wall time", "max RSS (MB)", "repeats"], [[md_text(c) for c in r] for r in runtime_rows(p.runtimes)]
        )
        if len(p.runtimes)
        else "_no benchmark files given_\n"
    )
    fence = "~~~~" if "```" in p.config_text else "```"
    out.append(
        f"<details><summary>Configuration as run</summary>\n\n{fence}yaml\n{p.config_text}{fence}\n\n</details>\n"
    )
    return "\n".join(out)


def render_markdown(data: ReportData, out_md: Path) -> str:
    def link(name: str, alt: str) -> str:
        rel = Path(os.path.relpath(data.plots[name], Path(out_md).parent)).as_posix()
        return f"![{md_text(alt)}]({rel})\n"

    labels = [label for _, _, label in OVERVIEW_COLUMNS]
    parts = ["# Targeted unlearning report (DPO + LoRA)\n"]
    if warning := trusted_code_warning(data.provenance):
        parts.append(f"⚠️ **{md_text(warning)}**\n")
    parts += [
        "## Overview\n",
        "Headline figures per model: ROUGE-L recall drop is base − unlearned (large on forget splits, near 0 "
        "elsewhere is ideal); MC2 change is unlearned − base.\n",
        _md_table(
            ["model", *labels],
            [[md_text(r["model"]), *[fmt_change("x", r[c]) for c in labels]] for _, r in data.overview.iterrows()],
        ),
    ]
    for s in data.sections:
        parts.append(f"## Model: {md_text(s.name)}\n")
        parts.extend(f"_Note: {md_text(n)}._\n" for n in s.notes)
        parts.append(f"### Headline table\n\n{LEGEND}\n\n{md_headline(s)}")
        parts.append(link(f"rouge_by_split_{safe_name(s.name)}.png", f"ROUGE-L recall by split, {s.name}"))
        parts.append("### Training curves\n")
        if s.training is None:
            parts.append(f"_No training curves for {md_text(s.name)}: no training log._\n")
        else:
            parts.append(_md_table(list(s.training), [training_cells(s.training)]))
            parts.append(link(f"training_{safe_name(s.name)}.png", f"training curves, {s.name}"))
        parts.append(f"### Examples\n\nFirst {N_EXAMPLES} questions by id per split.\n\n{md_examples(s)}")
    parts.append("## Forget vs retain trade-off\n")
    parts.append(link("tradeoff.png", "forget vs retain trade-off"))
    parts.append(md_provenance(data.provenance))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- entry point


def _write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_report(
    *,
    summary: Path,
    scores: Mapping[str, Mapping[str, Path]],
    training_logs: Mapping[str, Path],
    config: Mapping[str, Any],
    benchmarks: Mapping[str, Path],
    out_html: Path,
    out_md: Path,
    plot_dir: Path,
    data_sizes: Mapping[str, int] | None = None,
) -> None:
    """Write the HTML report, the Markdown report and the PNGs of :func:`plot_names` into ``plot_dir``.

    ``scores``: model -> variant (``base``/``unlearned``) -> per-row score Parquet; ``training_logs``: model ->
    log Parquet (a model without one gets a note and a placeholder PNG); ``benchmarks``: job label -> Snakemake
    benchmark TSV; ``data_sizes``: split -> rows. Plots are made for every model in ``config['models']`` plus any
    other model found in the inputs.
    """
    data = build_report_data(
        summary=Path(summary),
        scores=scores,
        training_logs=training_logs,
        config=config,
        benchmarks=benchmarks,
        plot_dir=Path(plot_dir),
        data_sizes=data_sizes,
    )
    _write_text(Path(out_html), render_html(data))
    _write_text(Path(out_md), render_markdown(data, Path(out_md)))
