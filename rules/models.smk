rule import_model:
    """A model manifest; a packaged GGUF is saved once as a plain safetensors checkpoint beside it."""
    output:
        directory("results/models/{model}"),
    params:
        spec=lambda wc: import_settings(config, wc.model),
    resources:
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/import_model/{model}.log",
    script:
        "../workflow_scripts/import_model.py"


rule merge_adapter:
    """Optional: the unlearned model with its adapter merged, for serving elsewhere (not part of `all`)."""
    input:
        model="results/models/{model}",
        adapter="results/unlearn/{model}/{method}/adapter",
    output:
        directory("results/unlearn/{model}/{method}/merged"),
    resources:
        mem_mb=lambda wc: model_resources(wc.model)["mem_mb"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/merge_adapter/{model}/{method}.log",
    script:
        "../workflow_scripts/merge_adapter.py"
