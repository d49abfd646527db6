"""Snakemake entry: the model describes every person of every set, its own forget corpus (rule describe)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("describe", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.corpus.describe import DescribeSettings, describe_persons
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.checkpoints import load_imported

    settings = DescribeSettings.from_config(smk.params.cfg)
    model, tokenizer = load_imported(smk.input.model, requested_gpu=smk.resources.gpu > 0)
    result = describe_persons(
        model,
        tokenizer,
        read_parquet(smk.input.persons),
        settings,
        style=PromptStyle(**smk.params.style),
        seed=smk.params.seed,
    )
    log.info("corpus: %d texts, %d held out", len(result.table), int(result.table["held_out"].sum()))
    write_parquet(
        result.table,
        smk.output[0],
        stage="describe",
        config={"describe": smk.params.cfg, "style": smk.params.style},
        seed=smk.params.seed,
        extra={"stats": result.stats},
    )
