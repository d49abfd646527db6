"""Snakemake entry: write a model's manifest, importing a packaged GGUF once (rule import_model)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("import_model", smk.log) as log:
    from unlearning.models.checkpoints import import_model

    manifest = import_model(smk.wildcards.model, smk.params.spec, smk.output[0])
    log.info("model %s: %s (%s)", manifest.name, manifest.path, manifest.source)
