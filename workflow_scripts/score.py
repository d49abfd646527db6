"""Snakemake entry: per-row scores of one model variant (rule score)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("score", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.checkpoints import load_imported
    from unlearning.scoring.evaluation import score_answers
    from unlearning.scoring.field_scores import wrong_answers

    model, tokenizer = load_imported(smk.input.model, smk.input.get("adapter"), requested_gpu=smk.resources.gpu > 0)
    scores = score_answers(
        model,
        tokenizer,
        read_parquet(smk.input.generations),
        read_parquet(smk.input.truthfulqa),
        PromptStyle(**smk.params.style),
        batch_size=smk.params.cfg["batch_size"],
        wrong=wrong_answers(read_parquet(smk.input.perturbations)),
    )
    log.info("scored %d rows", len(scores))
    write_parquet(
        scores,
        smk.output[0],
        stage="score",
        config={"score": smk.params.cfg, "style": smk.params.style},
        seed=smk.params.seed,
    )
