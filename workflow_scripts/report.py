"""Snakemake entry: the HTML and Markdown report (rule report)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.entry).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.entry import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("report", smk.log):
    from unlearning.parquet_io import read_parquet
    from unlearning.report import render_report

    models, variants = smk.params.models, smk.params.variants
    scores = iter(smk.input.scores)
    qa = read_parquet(smk.input.qa)
    render_report(
        summary=Path(smk.input.summary),
        scores={m: {v: Path(next(scores)) for v in variants} for m in models},
        training_logs=dict(zip(models, map(Path, smk.input.logs), strict=True)),
        config=smk.params.config,
        benchmarks={
            Path(p).relative_to("results/benchmarks").with_suffix("").as_posix(): Path(p) for p in smk.input.benchmarks
        },
        out_html=Path(smk.output.html),
        out_md=Path(smk.output.md),
        plot_dir=Path(smk.output.html).parent,
        data_sizes=qa["split"].value_counts().to_dict(),
    )
