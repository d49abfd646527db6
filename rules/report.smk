# Only the plot file names are needed here: unlearning.report loads neither matplotlib nor Jinja2 on import.
from unlearning.report import plot_names  # noqa: E402


rule report:
    """The report a person reads: report.html (self-contained) and report.md, rendered from one context. Which
    variants and training logs it shows comes from rules/common.smk (REPORT_VARIANTS, report_scores, report_logs)."""
    input:
        summary="results/score/summary.parquet",
        qa="results/data/qa.parquet",
        scores=[path for variants in report_scores().values() for path in variants.values()],
        logs=[path for methods in report_logs().values() for path in methods.values()],
        benchmarks=report_benchmarks(),
        operating_points="results/score/operating_points.parquet",
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
        scores=report_scores(),
        logs=report_logs(),
        variants=REPORT_VARIANTS,
        seed_groups=seed_groups(config),
        config=config,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/report.log",
    script:
        "../workflow_scripts/report.py"
