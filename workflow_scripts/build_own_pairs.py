"""Snakemake entry: DPO pairs in one model's own answer format (rule build_own_pairs, pairing: own_answer)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("build_own_pairs", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.perturbation.pairs import build_own_pairs
    from unlearning.perturbation.wrong_answers import forget_questions

    train, _ = forget_questions(read_parquet(smk.input.qa))
    pairs, counts = build_own_pairs(
        train,
        read_parquet(smk.input.perturbations),
        read_parquet(smk.input.generations, ["id", "generation"]),
        per_question=smk.params.per_question,
        refusals=smk.params.refusals,
        seed=smk.params.seed,
        model=smk.wildcards.model,
    )
    log.info(
        "%s: own-answer DPO pairs: %d (%s) from %d of %d forget_train questions; left out: %d without a base "
        "generation, %d whose base answer lacks the true answer (%d of them hold part of it), %d without a wrong "
        "answer; %d wrong answers dropped because they hold the true one",
        smk.wildcards.model,
        counts.pairs,
        pairs["kind"].value_counts().to_dict(),
        counts.with_pairs,
        counts.questions,
        counts.no_generation,
        counts.no_true_span,
        counts.partly_there,
        counts.no_wrong_answer,
        counts.wrong_holds_truth,
    )
    config = {"per_question": smk.params.per_question, "refusals": smk.params.refusals}
    write_parquet(
        pairs,
        smk.output[0],
        stage="build_own_pairs",
        config=config,
        seed=smk.params.seed,
        extra={"model": smk.wildcards.model, "counts": counts.as_dict()},
    )
