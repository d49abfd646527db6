rule train_dpo_lora:
    """DPO + LoRA unlearning of one model: the adapter only, plus a per-step training log."""
    input:
        model="results/models/{model}",
        pairs="results/perturb/dpo_pairs.parquet",
        qa="results/data/qa.parquet",
    output:
        adapter=directory("results/train/{model}/adapter"),
        log="results/train/{model}/log.parquet",
    params:
        cfg=lambda wc: train_settings(config, wc.model),
        style=lambda wc: prompt_style(config, wc.model),
        # not an output: a failed job keeps its checkpoints, and the rerun resumes from the last one
        checkpoints=lambda wc: f"results/train/{wc.model}/checkpoints",
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"] * TRAIN_RUNTIME_FACTOR,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/train_dpo_lora/{model}.log",
    benchmark:
        "results/benchmarks/train_dpo_lora/{model}.tsv"
    script:
        "../workflow_scripts/train_dpo_lora.py"
