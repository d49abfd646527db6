"""Snakemake entry: the operating point of every sweep (rule select_operating_points)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("select_operating_points", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.scoring.operating_points import sweep_table

    select = smk.params.select
    table = sweep_table(
        read_parquet(smk.input[0]),
        smk.params.sweeps,
        max_damage=select["max_damage"],
        metric=select["metric"],
        subset=select["subset"],
    )
    for row in table[table["chosen"]].itertuples():
        log.info("%s %s: chose %s (forgetting %.3f, damage %.3f)", row.model, row.sweep, row.entry,
                 row.forgetting, row.damage)  # fmt: skip
    for (model, sweep), group in table.groupby(["model", "sweep"]):
        if not group["chosen"].any():
            log.warning("%s %s: no entry keeps its damage within %s", model, sweep, select["max_damage"])
    write_parquet(table, smk.output[0], stage="select_operating_points",
                  config={"select": select, "sweeps": smk.params.sweeps}, seed=smk.params.seed)  # fmt: skip
