rule score:
    """Per-row scores of one (model, variant): ROUGE, BLEU, answer probability, TruthfulQA MC, fluency."""
    input:
        unpack(adapter_inputs),
        generations="results/generate/{model}/{variant}.parquet",
        model="results/models/{model}",
        truthfulqa="results/data/truthfulqa.parquet",
    output:
        "results/score/{model}/{variant}.parquet",
    params:
        seed=config["seed"],
        cfg=config["score"],
        style=lambda wc: prompt_style(config, wc.model),
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/score/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/score/{model}/{variant}.tsv"
    script:
        "../workflow_scripts/score.py"


rule summarize:
    """The long summary table (model, variant, split, metric, value) with the headline figures."""
    input:
        expand("results/score/{model}/{variant}.parquet", model=MODELS, variant=VARIANTS),
    output:
        "results/score/summary.parquet",
    params:
        seed=config["seed"],
        runs=[(m, v) for m in MODELS for v in VARIANTS],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/summarize.log",
    script:
        "../workflow_scripts/summarize.py"


rule select_operating_points:
    """Per sweep (an unlearn: entry with a grid), every point's forgetting and damage on training-side splits, the
    Pareto front and the chosen entry (unlearning.selection)."""
    input:
        "results/score/summary.parquet",
    output:
        "results/score/operating_points.parquet",
    params:
        sweeps=sweep_of(config),
        select=config["select"],
        seed=config["seed"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/select_operating_points.log",
    script:
        "../workflow_scripts/select_operating_points.py"
