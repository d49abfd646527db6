rule score:
    """Per-row scores of one (model, variant): ROUGE, BLEU, answer probability, truth ratio (against the perturbation
    stage's wrong answers), extraction strength, memorization, membership scores, TruthfulQA MC, fluency."""
    input:
        unpack(adapter_inputs),
        generations="results/generate/{model}/{variant}.parquet",
        model="results/models/{model}",
        truthfulqa="results/data/truthfulqa.parquet",
        perturbations="results/perturb/perturbations.parquet",
    output:
        "results/score/{model}/{variant}.parquet",
    params:
        seed=config["seed"],
        cfg=scoring_settings(config),
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


rule known_facts:
    """Which evaluation questions the base model answers correctly (score.known_rule / score.known_threshold)."""
    input:
        "results/score/{model}/base.parquet",
    output:
        "results/known/{model}.parquet",
    params:
        seed=config["seed"],
        cfg=known_settings(config),
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/known_facts/{model}.log",
    script:
        "../workflow_scripts/known_facts.py"


rule summarize:
    """The long summary table (model, variant, split, subset, kind, metric, value, ci_low, ci_high, ci_note): every
    split on all questions and on the base model's known facts, with counts, each variant's changes against base
    with bootstrap intervals, the entries trained with several seeds pooled under their own names, every attack's
    figures and changes on the held-out known facts (column attack), and, where a corpus was written, the held-out
    templates' figures as the splits forget_corpus, retain_corpus and general_corpus."""
    input:
        scores=[f"results/score/{m}/{v}.parquet" for m, v in SUMMARY_RUNS],
        known=expand("results/known/{model}.parquet", model=MODELS) if HAS_QA else [],
        corpus=[f"results/corpus_score/{m}/{v}.parquet" for m, v in CORPUS_RUNS],
        attacks=attack_scores(),
    output:
        "results/score/summary.parquet",
    params:
        seed=config["seed"],
        runs=SUMMARY_RUNS,
        corpus_runs=CORPUS_RUNS,
        attack_runs=ATTACK_RUNS,
        models=MODELS if HAS_QA else [],
        seed_groups=seed_groups(config),
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/summarize.log",
    script:
        "../workflow_scripts/summarize.py"


rule select_operating_points:
    """Per sweep (an unlearn: entry with a grid), every point's forgetting and damage on training-side splits, the
    Pareto front and the chosen entry (unlearning.scoring.operating_points)."""
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
