from unlearning.report import plot_names  # noqa: E402


rule report:
    """The report a person reads: report.html (self-contained) and report.md, from the same data."""
    input:
        summary="results/score/summary.parquet",
        qa="results/data/qa.parquet",
        scores=expand("results/score/{model}/{variant}.parquet", model=MODELS, variant=VARIANTS),
        logs=expand("results/unlearn/{model}/{method}/log.parquet", model=MODELS, method=UNLEARN),
        benchmarks=[
            "results/benchmarks/perturb.tsv",
            *expand("results/benchmarks/unlearn/{model}/{method}.tsv", model=MODELS, method=UNLEARN),
            *expand("results/benchmarks/generate/{model}/{variant}.tsv", model=MODELS, variant=VARIANTS),
            *expand("results/benchmarks/score/{model}/{variant}.tsv", model=MODELS, variant=VARIANTS),
        ],
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        md="results/report/report.md",
        plots=[
            report(
                f"results/report/{name}",
                caption="../report/plot.rst",
                category="Plots",
            )
            for name in plot_names(MODELS)
        ],
    params:
        models=MODELS,
        variants=VARIANTS,
        config=config,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/report.log",
    script:
        "../workflow_scripts/report.py"
