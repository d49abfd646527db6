"""The report a person reads: which (model, method) forgets known facts at what cost, as HTML and Markdown.

Split by concern: :mod:`.names` (plot file names; no heavy imports, so the Snakemake rule can use it at DAG parse),
:mod:`.load` (reading the artifacts), :mod:`.tables` (figures, verdicts, ranking, examples), :mod:`.plots`
(matplotlib), :mod:`.provenance` (config, seeds, versions, run times) and :mod:`.render` (one context, rendered by
the Jinja2 templates in ``templates/`` into both documents). Importing this package loads neither matplotlib nor
Jinja2; :func:`render_report` imports them when called.

Rule ``report`` reads ``results/score/summary.parquet``, ``results/score/operating_points.parquet``, the per-row
scores, the training logs and the jobs' benchmark files, and writes ``results/report/`` (``report.html``,
``report.md``, the plots).
"""

from __future__ import annotations

from typing import Any

from .names import plot_files, plot_names, safe_name

__all__ = ["plot_files", "plot_names", "render_report", "safe_name"]


def render_report(**kwargs: Any) -> None:
    """Write the report; see :func:`unlearning.report.render.render_report`."""
    from .render import render_report as _render

    _render(**kwargs)
