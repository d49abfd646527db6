"""Snakemake entry: which evaluation questions the base model knows (rule known_facts)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("known_facts", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.data.known_facts import known_counts, known_facts

    known = known_facts(read_parquet(smk.input[0]), smk.params.cfg)
    counts = known_counts(known)
    log.info("known facts per split (known / all): %s", {s: f"{c['known']}/{c['all']}" for s, c in counts.items()})
    for split, c in counts.items():
        if c["all"] and not c["known"]:
            log.warning("known facts: the base model knows none of the %d %s questions", c["all"], split)
    write_parquet(
        known, smk.output[0], stage="known_facts", config=smk.params.cfg, seed=smk.params.seed, extra={"counts": counts}
    )
