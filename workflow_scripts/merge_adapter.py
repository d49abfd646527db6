"""Snakemake entry: merge a trained adapter into its base weights (rule merge_adapter)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("merge_adapter", smk.log) as log:
    from unlearning.models.checkpoints import Manifest, load_model
    from unlearning.training.engine import merge_adapter

    model, tokenizer = load_model(Manifest.load(f"{smk.input.model}/model.json"), adapter=smk.input.adapter)
    merge_adapter(model, tokenizer, smk.output[0])
    log.info("merged model written to %s", smk.output[0])
