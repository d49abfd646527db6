"""Snakemake entry: the HTML and Markdown report (rule report)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("report", smk.log):
    from unlearning.core.parquet_io import read_metadata, read_parquet
    from unlearning.report import render_report

    qa = read_parquet(smk.input.qa)
    render_report(
        summary=Path(smk.input.summary),
        scores={m: {v: Path(p) for v, p in variants.items()} for m, variants in smk.params.scores.items()},
        training_logs={m: {t: Path(p) for t, p in methods.items()} for m, methods in smk.params.logs.items()},
        variants=list(smk.params.variants),
        config=smk.params.config,
        benchmarks={
            Path(p).relative_to("results/benchmarks").with_suffix("").as_posix(): Path(p) for p in smk.input.benchmarks
        },
        out_html=Path(smk.output.html),
        out_md=Path(smk.output.md),
        plot_dir=Path(smk.output.html).parent,
        data_sizes=qa["split"].value_counts().to_dict(),
        data_notes=read_metadata(smk.input.qa).get("split_warnings") or [],
        operating_points=Path(smk.input.operating_points),
        seed_groups=dict(smk.params.seed_groups),
    )
