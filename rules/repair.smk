TRUNCATED = truncated_artifacts()  # read-only at parse time; nothing is removed by a dry run, --lint or a listing


checkpoint remove_truncated_artifacts:
    """Only when a truncated Parquet artifact exists: remove it, with the summary and the report, in a real run.
    Snakemake then re-plans what `all` needs (a checkpoint), so the artifact's stage and everything after it rerun
    in the same run. A dry run lists this job and deletes nothing. The marker's name is unique to what was found."""
    output:
        temp(truncated_marker(TRUNCATED)),
    params:
        files=TRUNCATED,
        products=FINAL_PRODUCTS,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/remove_truncated_artifacts.log",
    script:
        "../workflow_scripts/remove_truncated_artifacts.py"


def repair_inputs(wildcards):
    """What `all` needs beyond the report: the checkpoint's marker when a truncated artifact was found."""
    return [checkpoints.remove_truncated_artifacts.get().output[0]] if TRUNCATED else []
