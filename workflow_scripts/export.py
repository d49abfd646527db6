"""Snakemake entry: one variant merged into plain weights and, for a GGUF-imported model, re-quantized to GGUF
(rule export)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("export", smk.log) as log:
    from unlearning.export.variant import export_variant
    from unlearning.models.checkpoints import Manifest

    stats = export_variant(
        Manifest.load(f"{smk.input.model}/model.json"),
        smk.input.get("adapter"),
        smk.output[0],
        gguf=smk.params.gguf,
        gguf_types=smk.params.gguf_types,
    )
    log.info("exported %s/%s to %s (%s)", smk.wildcards.model, smk.wildcards.variant, smk.output[0], ", ".join(stats))
