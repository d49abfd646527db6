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


def all_inputs(wildcards):
    """What `all` needs: the report; when a truncated artifact was found, the checkpoint first. Until it has run,
    `.get()` stands for its output alone, so no job that reads a truncated file is planned before it."""
    marker = [checkpoints.remove_truncated_artifacts.get().output[0]] if TRUNCATED else []
    return [*marker, *rules.report.output]
