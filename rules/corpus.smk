rule list_persons:
    """Every person of every set, and whether the set has QA pairs or only names (results/data/persons.parquet)."""
    input:
        local_data_files,
    output:
        "results/data/persons.parquet",
    params:
        persons=config["data"]["persons"],
        seed=config["seed"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/list_persons.log",
    script:
        "../workflow_scripts/list_persons.py"


rule describe:
    """The model's own texts about every person (RWKU's forget corpus): several templates, sampled and filtered with
    counted rejections, some templates per person held out for evaluation (results/corpus/{model}.parquet)."""
    input:
        model="results/models/{model}",
        persons="results/data/persons.parquet",
    output:
        "results/corpus/{model}.parquet",
    params:
        cfg=sorted_keys(config["describe"]),
        seed=config["seed"],
        style=lambda wc: prompt_style(config, wc.model),
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/describe/{model}.log",
    benchmark:
        "results/benchmarks/describe/{model}.tsv"
    script:
        "../workflow_scripts/describe.py"


rule corpus_score:
    """One variant on the corpus's held-out templates: the likelihood of the base model's texts, the ROUGE-L
    recall of those texts in its own answer, and the LOSS / Min-K%++ membership scores."""
    input:
        unpack(adapter_inputs),
        model="results/models/{model}",
        corpus="results/corpus/{model}.parquet",
    output:
        "results/corpus_score/{model}/{variant}.parquet",
    params:
        cfg=sorted_keys(config["describe"]),
        score_batch_size=config["score"]["batch_size"],
        seed=config["seed"],
        style=lambda wc: prompt_style(config, wc.model),
    threads: lambda wc: model_resources(wc.model)["threads"]
    resources:
        gpu=lambda wc: model_resources(wc.model)["gpu"],
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
        runtime=lambda wc: model_resources(wc.model)["runtime"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/corpus_score/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/corpus_score/{model}/{variant}.tsv"
    script:
        "../workflow_scripts/corpus_score.py"
