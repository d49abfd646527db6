rule generate:
    """One greedy answer per evaluation question, by the base model or the unlearned one (with its adapter)."""
    input:
        unpack(adapter_inputs),
        model="results/models/{model}",
        qa="results/data/qa.parquet",
        truthfulqa="results/data/truthfulqa.parquet",
    output:
        "results/generate/{model}/{variant}.parquet",
    params:
        seed=config["seed"],
        cfg=config["generate"],
        style=lambda wc: prompt_style(config, wc.model),
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/generate/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/generate/{model}/{variant}.tsv"
    script:
        "../workflow_scripts/generate.py"
