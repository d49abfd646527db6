rule unlearn:
    """LoRA unlearning of one model with one unlearn: entry: the adapter only, plus a per-step training log."""
    input:
        unpack(pairs_inputs),
        unpack(corpus_inputs),
        model="results/models/{model}",
        qa="results/data/qa.parquet",
    output:
        adapter=directory("results/unlearn/{model}/{method}/adapter"),
        log="results/unlearn/{model}/{method}/log.parquet",
    params:
        cfg=lambda wc: sorted_keys(unlearn_settings(config, wc.model, wc.method)),
        style=lambda wc: prompt_style(config, wc.model),
        # not an output: a failed job keeps its checkpoints, and the rerun resumes from the last one
        checkpoints=lambda wc: f"results/unlearn/{wc.model}/{wc.method}/checkpoints",
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"] * TRAIN_RUNTIME_FACTOR,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/unlearn/{model}/{method}.log",
    benchmark:
        "results/benchmarks/unlearn/{model}/{method}.tsv"
    script:
        "../workflow_scripts/unlearn.py"
