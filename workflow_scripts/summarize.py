"""Snakemake entry: the long summary table of all scores (rule summarize)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.entry).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.entry import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("summarize", smk.log) as log:
    from unlearning.evaluation import build_summary
    from unlearning.parquet_io import read_parquet, write_parquet

    tables = {tuple(key): read_parquet(path) for key, path in zip(smk.params.runs, smk.input, strict=True)}
    summary = build_summary(tables)
    log.info("summary: %d rows", len(summary))
    write_parquet(summary, smk.output[0], stage="summarize", config={"runs": smk.params.runs}, seed=smk.params.seed)
