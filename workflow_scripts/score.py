"""Snakemake entry: per-row scores of one model variant (rule score)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.entry).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.entry import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("score", smk.log) as log:
    from unlearning.evaluation import score_answers
    from unlearning.field_scores import wrong_answers
    from unlearning.models import Manifest, load_model, pick_device
    from unlearning.parquet_io import read_parquet, write_parquet
    from unlearning.prompting import PromptStyle

    model, tokenizer = load_model(
        Manifest.load(f"{smk.input.model}/model.json"),
        adapter=smk.input.get("adapter"),
        device=pick_device(requested_gpu=smk.resources.gpu > 0),
    )
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
