"""Snakemake entry: one variant's figures on the held-out templates of the corpus (rule corpus_score)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("corpus_score", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.corpus.evaluation import score_corpus
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.adapters import merged_for_inference
    from unlearning.models.checkpoints import load_imported

    model, tokenizer = load_imported(smk.input.model, smk.input.get("adapter"), requested_gpu=smk.resources.gpu > 0)
    with merged_for_inference(model):
        table = score_corpus(
            model,
            tokenizer,
            read_parquet(smk.input.corpus),
            PromptStyle(**smk.params.style),
            max_new_tokens=smk.params.cfg["max_new_tokens"],
            batch_size=smk.params.score_batch_size,
            generate_batch_size=smk.params.cfg["batch_size"],
        )
    log.info("scored %d held-out corpus texts", len(table))
    write_parquet(
        table,
        smk.output[0],
        stage="corpus_score",
        config={"describe": smk.params.cfg, "style": smk.params.style, "variant": smk.wildcards.variant},
        seed=smk.params.seed,
    )
