"""Snakemake entry: remove truncated Parquet artifacts, the summary and the report (checkpoint
remove_truncated_artifacts), so that the re-planned DAG remakes them."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("remove_truncated_artifacts", smk.log) as logger:
    for path in smk.params.files:
        logger.warning("truncated artifact %s: removed, its stage will rerun", path)
        Path(path).unlink(missing_ok=True)
    for product in smk.params.products:
        Path(product).unlink(missing_ok=True)
    marker = Path(smk.output[0])
    for old in marker.parent.glob("*.done"):  # the markers of earlier finds
        old.unlink()
    marker.touch()
