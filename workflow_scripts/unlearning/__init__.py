"""Targeted unlearning of small instruct language models with DPO + LoRA.

The package holds all the logic of the workflow and knows nothing of Snakemake: the thin entry scripts in
``workflow_scripts/`` unpack ``snakemake.input/output/params`` and call into these modules, so every stage can be
tested, benchmarked and reused without a workflow engine.

One subpackage per stage of the DAG (``docs/architecture.md`` maps rules to modules): :mod:`.data`,
:mod:`.models` (import), :mod:`.perturbation`, :mod:`.training` (unlearn), :mod:`.inference` (what generation and
scoring share), :mod:`.scoring` (generate, score, summarize), :mod:`.report`; beside them :mod:`.config` (what the
Snakefile reads when it parses) and :mod:`.core` (what every stage uses).
"""

__version__ = "0.1.0"
