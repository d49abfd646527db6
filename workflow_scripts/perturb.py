"""Snakemake entry: wrong answers for every scored forget and hard-retain question (rule perturb)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("perturb", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.perturbation.wrong_answers import (
        combine,
        empty_table,
        perturb_from_file,
        perturb_with_model,
        scored_questions,
    )

    cfg, seed = smk.params.cfg, smk.params.seed

    def run_perturber(questions):
        # torch and transformers load only when the perturber runs (a pre-made file that covers every question
        # needs neither)
        from unlearning.models.checkpoints import Manifest, load_model, resolve
        from unlearning.models.devices import pick_device

        if smk.input.get("model"):
            manifest = Manifest.load(f"{smk.input.model}/model.json")
        else:
            manifest = resolve(cfg["model"], {"path": cfg["model"]})
        model, tokenizer = load_model(manifest, device=pick_device(requested_gpu=smk.resources.gpu > 0))
        return perturb_with_model(
            model, tokenizer, questions, cfg, perturber=cfg["model"], seed=seed, chat_template=smk.params.chat_template
        )

    # every scored forget and hard-retain question (pairs and probes, train and held-out): the truth ratio and the
    # multiple-choice figures need wrong answers for all of them; build_pairs takes only forget_train's QA pairs
    train = scored_questions(read_parquet(smk.input.qa))
    if cfg.get("premade"):
        threshold = cfg["rouge_threshold"]
        result = perturb_from_file(smk.input.premade, train, train.iloc[:0], seed=seed, threshold=threshold)
        uncovered = result.stats["uncovered_ids"]
        if uncovered and cfg.get("model") and cfg.get("fill_missing", True):
            log.info("perturb: the perturber %s answers %d uncovered question(s)", cfg["model"], len(uncovered))
            result = combine(result, run_perturber(train[train["id"].isin(uncovered)].reset_index(drop=True)))
        elif uncovered:
            why = "perturb.fill_missing is false" if cfg.get("model") else "no perturber (perturb.model) is configured"
            log.warning(
                "perturb: %d question(s) stay without a wrong answer (%s): no truth ratio for them, and forget_train "
                "ones are trained on only through refusals, if perturb.refusals is on",
                len(uncovered),
                why,
            )
    elif cfg.get("model"):
        result = run_perturber(train)
    else:
        result = None
        log.info("no perturber and no pre-made file: only refusals will make pairs")
    table = result.table if result else empty_table()
    stats = result.stats if result else {}
    log.info("perturbations: %d rows; %s", len(table), {k: v for k, v in stats.items() if k != "uncovered_ids"})
    write_parquet(table, smk.output[0], stage="perturb", config=cfg, seed=seed, extra={"stats": stats})
