"""Snakemake entry: every person of every set, with whether the set has QA pairs (rule list_persons)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("list_persons", smk.log) as log:
    from unlearning.core.parquet_io import write_parquet
    from unlearning.data.qa_table import persons_table

    persons = persons_table(smk.params.persons)
    log.info("persons per set: %s", persons.groupby("set")["person"].count().to_dict())
    write_parquet(persons, smk.output[0], stage="list_persons", config=smk.params.persons, seed=smk.params.seed)
