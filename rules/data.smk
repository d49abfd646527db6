rule prepare_data:
    """Load, validate and split the QA data and TruthfulQA (results/data/*.parquet)."""
    input:
        local_data_files,
    output:
        qa="results/data/qa.parquet",
        truthfulqa="results/data/truthfulqa.parquet",
    params:
        data=config["data"],
        seed=config["seed"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/prepare_data.log",
    script:
        "../workflow_scripts/prepare_data.py"
