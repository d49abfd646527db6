# Targeted unlearning of small instruct LMs: data -> perturbation -> LoRA unlearning (several methods) -> generation -> scores -> report.
# Run: snakemake --cores all   (see README.md; the DAG and artifacts are described in rules/*.smk)
import re
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from unlearning.config.schema import schema_problem  # noqa: E402

min_version("9.0")

# `--configfile` replaces the embedded default instead of being merged into it, so a config such as
# configs/paper.yaml never inherits the default's model list.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config.yaml"


# one line naming the key (snakemake's validate would print the whole schema); validate then fills in the defaults
_problem = schema_problem(config, yaml.safe_load((Path(workflow.basedir) / "schemas/config.schema.yaml").read_text()))
if _problem:
    raise WorkflowError(_problem)
validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    method="|".join(map(re.escape, UNLEARN)),
    variant="|".join(map(re.escape, VARIANTS)),
    attack="|".join(map(re.escape, ATTACKS)) or "(?!)",


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/perturb.smk"
include: "rules/corpus.smk"
include: "rules/unlearn.smk"
include: "rules/generate.smk"
include: "rules/score.smk"
include: "rules/attack.smk"
include: "rules/report.smk"
include: "rules/repair.smk"


# Cheap rules (and the ones that may download from the hub, which compute nodes often cannot reach) run on the
# submit host under a cluster profile; the heavy ones (perturb, unlearn, generate, score) are submitted.
localrules:
    all,
    prepare_data,
    list_persons,
    import_model,
    build_pairs,
    build_own_pairs,
    known_facts,
    summarize,
    select_operating_points,
    report,
    remove_truncated_artifacts,


rule all:
    default_target: True
    input:
        all_inputs,
