rule perturb:
    """Plausible wrong answers for every forget and hard-retain question (QA pairs and probes, train and held-out),
    from the perturber LLM or a pre-made file: DPO pairs use forget_train's, scoring all of them (truth ratio)."""
    input:
        unpack(perturber_inputs),
        unpack(premade_inputs),
        qa="results/data/qa.parquet",
    output:
        "results/perturb/perturbations.parquet",
    params:
        cfg=perturb_settings(config),
        seed=config["seed"],
        chat_template=(
            config["models"][perturber_key()].get("chat_template", True) if perturber_key() else True
        ),
    threads: model_resources(perturber_key())["threads"] if perturber_key() else 1
    resources:
        gpu=1 if perturber_may_run() else 0,
        mem_mb=model_resources(perturber_key())["mem_mb"] if perturber_key() else 16000,
        runtime=model_resources(perturber_key())["runtime"] if perturber_key() else 120,
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/perturb.log",
    benchmark:
        "results/benchmarks/perturb.tsv"
    script:
        "../workflow_scripts/perturb.py"


rule build_pairs:
    """DPO pairs: prompt, chosen (wrong answer or refusal), rejected (the true answer)."""
    input:
        qa="results/data/qa.parquet",
        perturbations="results/perturb/perturbations.parquet",
    output:
        "results/perturb/dpo_pairs.parquet",
    params:
        per_question=config["pairs"]["per_question"],
        refusals=config["perturb"]["refusals"],
        seed=config["seed"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/build_pairs.log",
    script:
        "../workflow_scripts/build_pairs.py"


rule build_own_pairs:
    """DPO pairs in one model's own answer format (entries with pairing: own_answer): rejected = the base model's
    greedy answer to a forget_train question, chosen = that answer with the true answer replaced by the wrong one
    that build_pairs samples (same seed); questions whose answer lacks the true one are left out and counted."""
    input:
        qa="results/data/qa.parquet",
        perturbations="results/perturb/perturbations.parquet",
        generations="results/generate/{model}/base.parquet",
    output:
        "results/perturb/own_pairs/{model}.parquet",
    params:
        per_question=config["pairs"]["per_question"],
        refusals=config["perturb"]["refusals"],
        seed=config["seed"],
    conda:
        "../envs/unlearning.yaml"
    log:
        "logs/build_own_pairs/{model}.log",
    script:
        "../workflow_scripts/build_own_pairs.py"
