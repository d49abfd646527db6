"""Snakemake entry: answers of one model variant to every evaluation question (rule generate)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("generate", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.adapters import merged_for_inference
    from unlearning.models.checkpoints import load_imported
    from unlearning.scoring.evaluation import answer_questions, evaluation_questions

    cfg = smk.params.cfg
    model, tokenizer = load_imported(smk.input.model, smk.input.get("adapter"), requested_gpu=smk.resources.gpu > 0)
    questions = evaluation_questions(read_parquet(smk.input.qa), read_parquet(smk.input.truthfulqa))
    with merged_for_inference(model):
        table = answer_questions(
            model,
            tokenizer,
            questions,
            PromptStyle(**smk.params.style),
            max_new_tokens=cfg["max_new_tokens"],
            batch_size=cfg["batch_size"],
        )
    log.info("%d answers, %d new tokens", len(table), int(table["new_tokens"].sum()))
    write_parquet(
        table,
        smk.output[0],
        stage="generate",
        config={"generate": cfg, "style": smk.params.style, "variant": smk.wildcards.variant},
        seed=smk.params.seed,
    )
