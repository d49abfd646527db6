"""Snakemake entry: merge a trained adapter into its base weights (rule merge_adapter)."""

from unlearning.entry import stage
from unlearning.models import Manifest, load_model
from unlearning.training import merge_adapter

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("merge_adapter", smk.log) as log:
    model, tokenizer = load_model(Manifest.load(f"{smk.input.model}/model.json"), adapter=smk.input.adapter)
    merge_adapter(model, tokenizer, smk.output[0])
    log.info("merged model written to %s", smk.output[0])
