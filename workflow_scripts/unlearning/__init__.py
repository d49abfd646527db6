"""Targeted unlearning of small instruct language models with DPO + LoRA.

The package holds all the logic of the workflow and knows nothing of Snakemake: the thin entry scripts in
``workflow_scripts/`` unpack ``snakemake.input/output/params`` and call into these modules, so every stage can be
tested, benchmarked and reused without a workflow engine.
"""

__version__ = "0.1.0"
