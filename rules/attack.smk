rule export:
    """One variant as users deploy it: merged into plain weights (merged/), and for a model imported from GGUF,
    re-quantized into a GGUF file in the source's tensor types and in each type an attack asks for."""
    input:
        unpack(adapter_inputs),
        model="results/models/{model}",
    output:
        directory("results/export/{model}/{variant}"),
    params:
        gguf=lambda wc: config["models"][wc.model].get("gguf"),
        gguf_types=export_types,
    resources:
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/export/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/export/{model}/{variant}.tsv"
    script:
        "../workflow_scripts/export.py"


rule attack:
    """One attack (attacks: in the config) on one variant, scored on the held-out known facts of the forget,
    neighbour and general persons (unlearning.attacks)."""
    input:
        unpack(attack_inputs),
        model="results/models/{model}",
        qa="results/data/qa.parquet",
        known="results/known/{model}.parquet",
        perturbations="results/perturb/perturbations.parquet",
    output:
        "results/attack/{model}/{variant}/{attack}.parquet",
    params:
        seed=config["seed"],
        settings=lambda wc: ATTACKS[wc.attack],
        train=lambda wc: attack_train_settings(wc.model),
        generate=config["generate"],
        score=scoring_settings(config),
        style=lambda wc: prompt_style(config, wc.model),
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"] * TRAIN_RUNTIME_FACTOR,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/attack/{model}/{variant}/{attack}.log",
    benchmark:
        "results/benchmarks/attack/{model}/{variant}/{attack}.tsv"
    script:
        "../workflow_scripts/attack.py"
