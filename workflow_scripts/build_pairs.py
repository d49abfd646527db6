"""Snakemake entry: DPO preference pairs (rule build_pairs)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("build_pairs", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.perturbation.pairs import build_pairs
    from unlearning.perturbation.wrong_answers import forget_questions

    train, _ = forget_questions(read_parquet(smk.input.qa))
    pairs = build_pairs(
        train,
        read_parquet(smk.input.perturbations),
        per_question=smk.params.per_question,
        refusals=smk.params.refusals,
        seed=smk.params.seed,
    )
    log.info("DPO pairs: %d (%s)", len(pairs), pairs["kind"].value_counts().to_dict())
    config = {"per_question": smk.params.per_question, "refusals": smk.params.refusals}
    write_parquet(pairs, smk.output[0], stage="build_pairs", config=config, seed=smk.params.seed)
