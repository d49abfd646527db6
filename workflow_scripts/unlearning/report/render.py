"""One context for both documents: every figure formatted once, then rendered by ``templates/report.html.j2``
(HTML, autoescaped, plots embedded as ``data:image/png;base64`` URIs: one self-contained file without scripts or
links) and ``templates/report.md.j2`` (Markdown, every value escaped by the environment's ``finalize``, plots
linked by relative path). Verdicts are words (``good``, ``BAD``, ``same``), so they need no emoji font and never
rely on colour alone."""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..core.errors import InputError
from ..core.parquet_io import read_metadata, read_parquet
from ..scoring.evaluation import CORPUS_SPLITS, QA_SPLITS
from . import attacks as report_attacks
from . import corpus as report_corpus
from . import plots
from .load import load_attacks, load_scores, load_summary, load_training_logs
from .names import ATTACKS_PLOT, SWEEPS_PLOT, TRADEOFF_PLOT, safe_name, split_plot, training_plot
from .provenance import Provenance, collect_provenance
from .tables import (
    BASE,
    METRIC_LABELS,
    N_EXAMPLES,
    PERPLEXITY_REL_TOLERANCE,
    RANK_BY_INTERVAL,
    RANKING_COLUMNS,
    TOLERANCE,
    Cell,
    Figures,
    change_cell,
    finite,
    kind_rows,
    metric_rows,
    ordered,
    ranking,
    select_examples,
    training_summary,
)

TEMPLATES = Path(__file__).with_name("templates")
MAX_EXAMPLE_CHARS = 600
EMPTY_NOTE = "no questions in this split"
NO_RANKING = "no method to rank: the inputs hold the base model only"
NO_QA_RANKING = (
    "no QA facts to rank by: the forget persons were given by name only, so the forgetting is measured on the "
    "model's own held-out descriptions (each model's section, \"Figures on the model's own descriptions\")"
)
MARKS = {"good": "good", "bad": "BAD", "neutral": "same", "noise": "within noise", "unsure": "no interval",
         "na": "", "warn": "WARNING"}  # fmt: skip
JUDGEMENT_MARKS = {"removed": "good", "rewording": "bad", "format change": "bad", "no effect": "neutral",
                   "unsure": "unsure"}  # fmt: skip
OVERVIEW_TEXT = (
    "Every (model, method) with the figures a reader acts on, each with its 95% interval in brackets (a paired "
    "bootstrap over persons: docs/metrics.md). The forget column is the drop of ROUGE-L recall (base − method: "
    "positive is forgetting); every other column is the change method − base. The judgement says whether the forget "
    "facts were removed (ROUGE-L recall and the true answer's probability both fall beyond the tolerance and the "
    "noise, fluency holds), only reworded (recall falls, the truth's probability does not), lost to a format change "
    "(fluency collapsed) or not touched. The score is forgetting − collateral damage: forgetting is the recall drop "
    "on held-out forget questions the base model answered correctly (known facts); collateral damage adds up the "
    "falls of ROUGE-L recall on the held-out known facts of neighbours and general persons and of TruthfulQA MC2. "
    "Ranked by {ranked_by}."
)
NEGATIVE_SCORES = (
    "No method here forgets more than it damages: every score's 95% interval lies below 0 (the first rank is the "
    "least bad, not a good one)."
)
LEGEND = (
    "In the tables by split, each method's cell holds its value, then the change against the base model (method − "
    "base); here and there, the change's 95% interval and a "
    f"verdict word: good or BAD only when the interval excludes 0 and the change is beyond the tolerance ({TOLERANCE} "
    f"absolute; {PERPLEXITY_REL_TOLERANCE:.0%} of base for perplexity and fluency); within noise when the interval "
    "includes 0; same within the tolerance; no interval where too few persons make one, and for corpus BLEU, "
    "which pools n-gram counts over the split and has no per-person form. "
    "For measures of knowing the facts (ROUGE-L recall, extraction strength, truth ratio true-better...) a fall is "
    "good on forget splits and bad elsewhere; for measures of forgetting (truth ratio closer to 1, membership AUC) "
    "the reverse; on neighbours, general persons and TruthfulQA, figures that answer length moves (ROUGE F1, BLEU, "
    "answer probability, model utility) are judged by their distance from base, so a rise is BAD too; perplexity "
    "and degenerate rate are bad when they rise, TruthfulQA accuracy and fluency when they fall (docs/metrics.md "
    "gives each metric's direction). Colour repeats the verdict word and is never the only sign."
)


# --------------------------------------------------------------------------------------------- formatting


def fmt_value(metric: str, x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.2f}" if metric == "perplexity" else f"{x:.3f}"


def fmt_value_x(x: Any) -> str:
    return fmt_value("x", x)


def fmt_change(metric: str, x: Any) -> str:
    """A signed change; one that rounds to zero is ``+0.000``, never ``-0.000``."""
    if not finite(x):
        return "—"
    text = fmt_value(metric, x)
    if not text.strip("-0."):
        text = text.lstrip("-")
    return text if text.startswith("-") else "+" + text


def fmt_seconds(x: Any) -> str:
    if not finite(x):
        return "—"
    s = int(round(float(x)))
    return f"{float(x):.1f} s ({s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d})"


def fmt_count(n: Any) -> str:
    return f"{float(n):g}" if finite(n) else "—"


def truncate(text: Any) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "(missing)"
    text = str(text)
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…"


def cell(text: Any, *, sub: str = "", verdict: str = "", kind: str = "", mark: str | None = None) -> dict[str, str]:
    """A table cell of the context: text, an optional second line (a change) and a verdict (class and word; ``mark``
    replaces the word where the text says it already)."""
    word = MARKS.get(verdict, "") if mark is None else mark
    return {"text": str(text), "sub": sub, "verdict": verdict, "mark": word, "kind": kind}


def fmt_interval(metric: str, c: Cell, *, relative: bool = False) -> str:
    """``[low, high]`` of a change's interval; empty without one."""
    if not (finite(c.low) and finite(c.high)):
        return ""
    if relative:
        return f"[{c.low:+.1%}, {c.high:+.1%}]"
    return f"[{fmt_change(metric, c.low)}, {fmt_change(metric, c.high)}]"


def figure_cell(metric: str, c: Cell, *, change_only: bool = False, relative: bool = False) -> dict[str, str]:
    change = f"{c.change:+.1%}" if relative and finite(c.change) else fmt_change(metric, c.change)
    if finite(c.change):
        change = " ".join(x for x in (change, fmt_interval(metric, c, relative=relative)) if x)
    if change_only:
        return cell(change, verdict=c.verdict if finite(c.change) else "", kind="num")
    return cell(fmt_value(metric, c.value), sub=change if finite(c.change) else "", verdict=c.verdict, kind="num")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], kind: str = "") -> dict[str, Any]:
    """Headers and rows of cells (plain values become plain cells)."""
    rows = [[c if isinstance(c, dict) else cell(c) for c in row] for row in rows]
    return {"headers": list(headers), "rows": rows, "kind": kind}


def pairs_table(headers: Sequence[str], mapping: Mapping[str, Any]) -> dict[str, Any] | None:
    return table(headers, [[k, v] for k, v in mapping.items()]) if mapping else None


# --------------------------------------------------------------------------------------------- context


def ranking_table(rank: pd.DataFrame) -> dict[str, Any]:
    """The report's lead table: per (model, method) the judgement, the score and every figure of
    :data:`RANKING_COLUMNS`, each change with its interval."""
    headers = ["rank", "model", "method", "judgement", "score [95% interval]",
               *[label for _, label, _, _ in RANKING_COLUMNS]]  # fmt: skip
    rows = []
    for _, r in rank.iterrows():
        verdict = r["judgement"]
        score = r["score"]
        score_text = " ".join(x for x in (fmt_change("x", score.value), fmt_interval("x", score)) if x)
        row = [
            r["rank"],
            r["model"],
            r["method"],
            cell(
                verdict.label, sub=verdict.reason, verdict=JUDGEMENT_MARKS.get(verdict.label, ""), kind="text", mark=""
            ),  # fmt: skip
            cell(score_text, sub=score.note, kind="num"),
        ]
        for key, _, metric, role in RANKING_COLUMNS:
            c = figure_cell(metric, r[key], change_only=True, relative=key == "perplexity")
            if key == role:  # the recall column of a person role: where it was read
                split = f"{r['forget_split']}, " if role == "forget" else ""
                c["sub"] = f"{split}{r[f'{role}_subset']}, n={fmt_count(r[f'n_{role}'])}"
            elif r[key].note and not finite(r[key].low):
                c["sub"] = r[key].note
            row.append(c)
        rows.append(row)
    return table(headers, rows, "ranking")


SWEEPS_TEXT = (
    "Every point of every sweep (an unlearn: entry with a grid:). The chosen entry has the most forgetting whose "
    "damage stays within {bound:g}, both measured on the training side (forget_train, retain_train, general_train), "
    "which no headline figure comes from; its held-out figures are then shown as they are. An entry trained with "
    "several seeds is judged on their mean. A point marked tied has a forgetting interval that overlaps the chosen "
    "one's: the data cannot tell the two apart. Training-side damage understates held-out damage where the retain "
    "term trains on those questions."
)
SWEEP_HELD_OUT = (("forget_test", "forget_test"), ("retain_test", "retain_test"), ("general_test", "general_test"))


def _share_interval(r: Any) -> str:  # noqa: ANN401 (a row of the operating-points table)
    low, high = getattr(r, "forgetting_low", math.nan), getattr(r, "forgetting_high", math.nan)
    return f"[{low:.1%}, {high:.1%}]" if finite(low) and finite(high) else ""


def sweeps_table(points: pd.DataFrame, fig: Figures) -> dict[str, Any]:
    """Every sweep point: its training-side forgetting and damage (what the rule read), whether it is within the
    bound, on the front and chosen, then its held-out ROUGE-L recall on known facts and MC2 (what is reported)."""
    headers = ["model", "sweep", "entry", "forgetting (train side)", "damage (train side)", "within bound",
               "on front", "chosen", *[f"{label}: ROUGE-L recall, known" for _, label in SWEEP_HELD_OUT],
               "TruthfulQA MC2"]  # fmt: skip
    rows = []
    for r in points.itertuples():
        held_out = [
            figure_cell("rougeL_recall", change_cell(fig, r.model, r.entry, split, "rougeL_recall", "known"))
            for split, _ in SWEEP_HELD_OUT
        ]
        rows.append([
            r.model, r.sweep, r.entry, cell(f"{r.forgetting:.1%}", sub=_share_interval(r), kind="num"),
            cell(f"{r.damage:.1%}", kind="num"), "yes" if r.within_bound else "no", "yes" if r.pareto else "no",
            cell("CHOSEN", verdict="good") if r.chosen else cell("tied", verdict="noise") if r.tied else "",
            *held_out, figure_cell("mc2", change_cell(fig, r.model, r.entry, "truthfulqa", "mc2")),
        ])  # fmt: skip
    return table(headers, rows)


def _metric_table(rows: Sequence[Mapping[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    cells = [
        [r["split"], r["subset"], fmt_count(r["n"]), METRIC_LABELS[r["metric"]]]
        + [figure_cell(r["metric"], r["cells"][v]) for v in variants]
        for r in rows
    ]
    return table(["split", "subset", "n", "metric", *variants], cells, "metrics")


def metrics_table(fig: Figures, model: str, variants: Sequence[str]) -> dict[str, Any] | None:
    """The model's figures on the QA splits (the corpus splits have a table of their own); None without any (every
    forget person given by name only)."""
    rows = [r for r in metric_rows(fig, model, variants) if r["split"] not in CORPUS_SPLITS]
    return _metric_table(rows, variants) if rows else None


def corpus_table(fig: Figures, model: str, variants: Sequence[str]) -> dict[str, Any] | None:
    """The model's figures on the corpus's held-out templates; None for a run without a corpus."""
    rows = report_corpus.corpus_rows(fig, model, variants)
    return _metric_table(rows, variants) if rows else None


def kinds_table(fig: Figures, model: str, variants: Sequence[str]) -> dict[str, Any] | None:
    rows = [
        [r["split"], r["kind"], fmt_count(r["n"]), METRIC_LABELS[r["metric"]]]
        + [figure_cell(r["metric"], r["cells"][v]) for v in variants]
        for r in kind_rows(fig, model, variants)
    ]
    return table(["split", "probe kind", "n", "metric", *variants], rows, "metrics") if rows else None


def training_table(logs: Mapping[str, pd.DataFrame]) -> dict[str, Any] | None:
    rows = []
    for method, log in logs.items():
        s = training_summary(log)
        fmt = {"seconds": fmt_seconds, "steps": fmt_count, "epochs": fmt_count}
        rows.append([method, *[cell(fmt.get(k, fmt_value_x)(v), kind="num") for k, v in s.items()]])
    if not rows:
        return None
    return table(["method", *training_summary(next(iter(logs.values())))], rows)


def examples_tables(
    answers: Mapping[str, pd.DataFrame], runs: Mapping[str, str], cfg: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Per method and example group (:data:`~.tables.EXAMPLE_GROUPS`): the questions with the base model's and the
    method's answers and their ROUGE-L recall; ``runs`` maps each method to the run whose answers are shown (its
    first seed's, for an entry trained with several seeds)."""
    out = []
    for method, run in runs.items():
        for g in select_examples(answers, run, cfg):
            headers = ["id", "person", "question", "true answer", "base answer", f"{method} answer"]
            rows = [
                [cell(truncate(x), kind="text") for x in (r["id"], r["person"], r["question"], r["reference"])]
                + [
                    cell(truncate(r["base"]), sub=f"recall {r['base_recall']:.2f}", kind="text"),
                    cell(truncate(r["answer"]), sub=f"recall {r['recall']:.2f}", kind="text"),
                ]
                for r in g["rows"]
            ]
            shown = f"{len(rows)} of {g['count']}" if g["count"] > len(rows) else f"{g['count']}"
            out.append(
                {
                    "title": f"{method}{'' if run == method else f' ({run})'}: {g['title']} ({g['split']}, {shown})",
                    "table": table(headers, rows, "examples") if rows else None,
                }
            )
    return out


def provenance_sections(p: Provenance) -> list[dict[str, Any]]:
    models = [
        [
            r["model"],
            r["source"],
            r["options"],
            cell("trust_remote_code: true (runs code from the model repository)", verdict="warn")
            if r["trust_remote_code"]
            else "false",
        ]
        for _, r in p.models.iterrows()
    ]
    runtimes = [
        [
            r["job"],
            fmt_seconds(r["seconds"]),
            f"{r['max_rss_mb']:.1f}" if finite(r["max_rss_mb"]) else "—",
            str(r["repeats"]),
        ]
        for _, r in p.runtimes.iterrows()
    ]

    def section(title: str, tables: list[Any], note: str, warn: str = "") -> dict[str, Any]:
        tables = [t for t in tables if t]
        return {"title": title, "tables": tables, "note": "" if tables else note, "warn": warn}

    return [
        section(
            "Models",
            [table(["model", "source", "options", "trust_remote_code"], models) if models else None],
            "no models in the config",
        ),
        section(
            "Perturber",
            [pairs_table(["key", "value"], p.perturber)],
            "no perturber in the config",
            "perturber: trust_remote_code: true" if p.perturber_trusts_code else "",
        ),
        section("Seeds", [pairs_table(["key", "seed"], p.seeds)], "no seed set"),
        section(
            "Data",
            [pairs_table(["key", "value"], p.data), pairs_table(["split", "rows"], p.data_sizes)],
            "no data config",
        ),
        section(
            "Library versions",
            [pairs_table(["library", "version"], p.versions), pairs_table(["summary.parquet", "value"], p.meta)],
            "versions not recorded in summary.parquet",
        ),
        section(
            "Run times",
            [table(["job", "wall time", "max RSS (MB)", "repeats"], runtimes) if runtimes else None],
            "no benchmark files given",
        ),
    ]


def _image(path: Path, alt: str, out_md: Path) -> dict[str, str]:
    return {
        "alt": alt,
        "src": "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii"),
        "href": Path(os.path.relpath(path, Path(out_md).parent)).as_posix(),
    }


def _model_order(config: Mapping[str, Any], *found: Iterable[str]) -> list[str]:
    configured = [str(m) for m in (config.get("models") or {})]
    models = ordered(configured, [*configured, *(m for f in found for m in f)])
    seen: dict[str, str] = {}
    for m in models:
        if safe_name(m) in seen:
            raise InputError(f"models {seen[safe_name(m)]!r} and {m!r} map to the same plot file name")
        seen[safe_name(m)] = m
    return models


def build_context(
    *,
    summary: Path,
    scores: Mapping[str, Mapping[str, Path]],
    training_logs: Mapping[str, Mapping[str, Path]],
    config: Mapping[str, Any],
    benchmarks: Mapping[str, Path],
    out_md: Path,
    plot_dir: Path,
    data_sizes: Mapping[str, int] | None = None,
    variants: Sequence[str] | None = None,
    data_notes: Sequence[str] = (),
    operating_points: Path | None = None,
    seed_groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Load every input, write the plots into ``plot_dir`` and return the context both templates render.

    ``data_notes`` (the split's warnings from ``qa.parquet``'s metadata) and the summary's own notes on empty subsets
    (its ``notes`` metadata, per model) are shown as notes in each model's section. ``seed_groups`` (entry -> its
    per-seed runs) puts each such entry in the tables once, under its own name (the summary pools its runs), and
    its runs in a per-seed table of their own; examples show its first seed's answers."""
    summary_df = load_summary(summary)
    summary_notes = [str(n) for n in (read_metadata(summary).get("notes") or [])]
    answers = load_scores(scores)
    logs = load_training_logs(training_logs)
    fig = Figures(summary_df)
    models = _model_order(config, summary_df["model"], answers, logs)
    found = [
        *(variants or ()),
        *summary_df["variant"],
        *(v for a in answers.values() for v in a),
        *(m for log in logs.values() for m in log),
    ]
    seed_groups = {str(k): [str(r) for r in v] for k, v in (seed_groups or {}).items()}
    seed_runs = {run: entry for entry, runs in seed_groups.items() for run in runs}
    variants = [v for v in ordered([BASE], found) if v not in seed_runs]
    methods = [v for v in variants if v != BASE]
    example_runs = {m: seed_groups[m][0] if m in seed_groups else m for m in methods}
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    # a model scored on the corpus alone (its forget persons given by name only) has no QA figure to rank by
    qa_models = [m for m in models if any(fig.has(m, s) for s in QA_SPLITS)]
    rank = ranking(fig, qa_models, variants)
    sections = []
    for model in models:
        notes = [str(n) for n in data_notes] + [n for n in summary_notes if n.startswith(f"{model} ")]
        if not (summary_df["model"] == model).any():
            notes.append("no rows for this model in summary.parquet")
        untrained = [run for m in methods for run in seed_groups.get(m, [m]) if run not in logs.get(model, {})]
        if untrained:
            notes.append(f"no training log for {', '.join(untrained)}, so no curves for it")
        if model not in answers:
            notes.append("no per-row scores, so there are no examples")
        splits_png = plots.plot_splits(fig, model, variants, plot_dir / split_plot(model))
        training_png = plots.plot_training(logs.get(model, {}), model, plot_dir / training_plot(model))
        sections.append(
            {
                "name": model,
                "anchor": f"model-{safe_name(model)}",
                "notes": notes,
                "metrics": metrics_table(fig, model, variants),
                "seeds": ranking_table(ranking(fig, [model], [BASE, *seed_runs])) if seed_runs else None,
                "kinds": kinds_table(fig, model, variants),
                "corpus": corpus_table(fig, model, variants),
                "corpus_verdicts": report_corpus.verdicts(fig, model, variants),
                "splits_img": _image(splits_png, f"ROUGE-L recall by split, {model}", out_md),
                "training": training_table(logs.get(model, {})),
                "training_img": _image(training_png, f"training curves, {model}", out_md),
                "examples": examples_tables(answers.get(model, {}), example_runs, config.get("score")),
            }
        )
    tradeoff = plots.plot_tradeoff(rank, models, plot_dir / TRADEOFF_PLOT)
    points = read_parquet(operating_points) if operating_points is not None else pd.DataFrame()
    max_damage = float(config.get("select", {}).get("max_damage", math.nan))
    sweeps_png = plots.plot_sweeps(points, max_damage, plot_dir / SWEEPS_PLOT)
    attacked = load_attacks(summary)
    attack_runs = {m: report_attacks.attack_rows(summary_df, attacked, m) for m in models if len(attacked)}
    attack_runs = {m: rows for m, rows in attack_runs.items() if rows}
    attacks_png = plots.plot_attacks(attack_runs, plot_dir / ATTACKS_PLOT)
    prov = collect_provenance(config, summary, benchmarks, data_sizes)
    return {
        "title": "Targeted unlearning report",
        "subtitle": f"models: {', '.join(models) or 'none'}; methods: {', '.join(methods) or 'none'}",
        "warning": prov.trusted_code_warning(),
        "legend": LEGEND,
        "corpus_text": report_corpus.TEXT,
        "overview_text": OVERVIEW_TEXT.format(ranked_by=rank.attrs.get("ranked_by", RANK_BY_INTERVAL)),
        "overview_warning": NEGATIVE_SCORES
        if len(rank) and all(finite(c.high) and c.high < 0 for c in rank["score"])
        else "",
        "n_examples": N_EXAMPLES,
        "empty_note": EMPTY_NOTE,
        "ranking": ranking_table(rank) if len(rank) else None,
        "no_ranking": NO_QA_RANKING if methods and not qa_models else NO_RANKING,
        "qa_figures": bool(qa_models),
        "tradeoff_img": _image(tradeoff, "forgetting vs collateral damage", out_md),
        "models": sections,
        "sweeps": {
            "table": sweeps_table(points, fig),
            "img": _image(sweeps_png, "sweeps: forgetting vs damage per point", out_md),
            "text": SWEEPS_TEXT.format(bound=max_damage),
        }
        if len(points)
        else None,
        "attacks": {
            "text": report_attacks.section_text(
                [(spec or {}).get("attack", name) for name, spec in (config.get("attacks") or {}).items()]
            ),
            "tables": [
                {"model": m, "table": table(report_attacks.HEADERS, report_attacks.attacks_table_rows(rows), "num")}
                for m, rows in attack_runs.items()
            ],
            "verdicts": [v for m, rows in attack_runs.items() for v in report_attacks.verdicts(rows, m)],
            "img": _image(attacks_png, "forgetting before and after each attack", out_md),
            "none": "" if attack_runs else report_attacks.NO_ATTACKS,
        },
        "provenance": provenance_sections(prov),
        "config_text": prov.config_text,
        "fence": "~~~~" if "```" in prov.config_text else "```",
    }


# --------------------------------------------------------------------------------------------- rendering

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_text(x: Any) -> str:
    """Untrusted text made inert in Markdown (HTML escaped, Markdown specials backslashed, newlines as <br>)."""
    if isinstance(x, Markup):
        return str(x)
    text = html.escape(str(x), quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"\r?\n", "<br>", text)


def environment(kind: str) -> Environment:
    """The Jinja2 environment of ``kind`` (``html``: autoescape; ``md``: every value through :func:`md_text`)."""
    options: dict[str, Any] = {"autoescape": True} if kind == "html" else {"finalize": md_text}
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, **options
    )
    if kind == "md":
        env.filters["raw"] = Markup  # for the few values that are Markdown syntax already (a fence, a file name)
    return env


def render(kind: str, context: Mapping[str, Any]) -> str:
    return environment(kind).get_template(f"report.{kind}.j2").render(**context)


def _write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_report(*, out_html: Path, out_md: Path, **inputs: Any) -> None:
    """Write the HTML report, the Markdown report and the PNGs of :func:`~.names.plot_names`.

    ``inputs`` are :func:`build_context`'s: ``summary`` (Parquet), ``scores`` (model -> variant -> per-row score
    Parquet), ``training_logs`` (model -> method -> log Parquet), ``config``, ``benchmarks`` (job label ->
    Snakemake benchmark TSV), ``plot_dir``, optionally ``data_sizes`` (split -> rows) and ``variants`` (their
    order; otherwise base first, then the methods in the order the inputs name them).
    """
    context = build_context(out_md=Path(out_md), **inputs)
    _write_text(Path(out_html), render("html", context))
    _write_text(Path(out_md), render("md", context))
