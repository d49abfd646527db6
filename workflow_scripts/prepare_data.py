"""Snakemake entry: load, validate and split the data (rule prepare_data)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("prepare_data", smk.log) as log:
    from unlearning.core.parquet_io import write_parquet
    from unlearning.data.qa_table import build_qa, build_truthfulqa

    data, seed = smk.params.data, smk.params.seed
    split_warnings: list[str] = []
    qa = build_qa(data["persons"], data["test_fraction"], seed, warnings=split_warnings)
    truthfulqa = build_truthfulqa(data["truthfulqa"], seed)
    log.info("QA pairs per split: %s", qa["split"].value_counts().to_dict())
    log.info("TruthfulQA items: %d", len(truthfulqa))
    write_parquet(
        qa,
        smk.output.qa,
        stage="prepare_data",
        config={"persons": data["persons"], "test_fraction": data["test_fraction"]},
        seed=seed,
        extra={"split_warnings": split_warnings},
    )
    write_parquet(truthfulqa, smk.output.truthfulqa, stage="prepare_data", config=data["truthfulqa"], seed=seed)
