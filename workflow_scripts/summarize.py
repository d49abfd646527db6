"""Snakemake entry: the long summary table of all scores (rule summarize)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("summarize", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.scoring.evaluation import build_summary, with_corpus_scores

    runs = [tuple(run) for run in smk.params.runs]
    tables = {run: read_parquet(path) for run, path in zip(runs, smk.input.scores, strict=True)}
    corpus_runs = [tuple(run) for run in smk.params.corpus_runs]
    corpus = {run: read_parquet(path) for run, path in zip(corpus_runs, smk.input.corpus, strict=True)}
    tables = with_corpus_scores(tables, corpus)
    known = {model: read_parquet(path) for model, path in zip(smk.params.models, smk.input.known, strict=True)}
    notes: list[str] = []
    attack_runs = [tuple(run) for run in smk.params.attack_runs]
    attacked = {run: read_parquet(path) for run, path in zip(attack_runs, smk.input.attacks, strict=True)}
    summary = build_summary(
        tables, known, notes, seed=smk.params.seed, seed_groups=dict(smk.params.seed_groups), attacked=attacked
    )
    for note in notes:
        log.warning("summary: %s", note)
    log.info("summary: %d rows", len(summary))
    write_parquet(
        summary,
        smk.output[0],
        stage="summarize",
        config={
            "runs": smk.params.runs,
            "corpus_runs": smk.params.corpus_runs,
            "seed_groups": smk.params.seed_groups,
            "attack_runs": smk.params.attack_runs,
        },
        seed=smk.params.seed,
        extra={"notes": notes},
    )
