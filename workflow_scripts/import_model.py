"""Snakemake entry: write a model's manifest, importing a packaged GGUF once (rule import_model)."""

from unlearning.entry import stage
from unlearning.models import import_model

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("import_model", smk.log) as log:
    manifest = import_model(smk.wildcards.model, smk.params.spec, smk.output[0])
    log.info("model %s: %s (%s)", manifest.name, manifest.path, manifest.source)
