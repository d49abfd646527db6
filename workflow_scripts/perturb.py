"""Snakemake entry: wrong answers for the forget questions (rule perturb)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.entry).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.entry import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("perturb", smk.log) as log:
    from unlearning.models import Manifest, load_model, pick_device, resolve
    from unlearning.parquet_io import read_parquet, write_parquet
    from unlearning.perturb import empty_table, forget_questions, perturb_from_file, perturb_with_model

    cfg, seed = smk.params.cfg, smk.params.seed
    train, held_out = forget_questions(read_parquet(smk.input.qa))
    if cfg.get("premade"):
        result = perturb_from_file(smk.input.premade, train, held_out, seed=seed)
    elif cfg.get("model"):
        if smk.input.get("model"):
            manifest = Manifest.load(f"{smk.input.model}/model.json")
        else:
            manifest = resolve(cfg["model"], {"path": cfg["model"]})
        model, tokenizer = load_model(manifest, device=pick_device(requested_gpu=smk.resources.gpu > 0))
        result = perturb_with_model(
            model, tokenizer, train, cfg, perturber=cfg["model"], seed=seed, chat_template=smk.params.chat_template
        )
    else:
        result = None
        log.info("no perturber and no pre-made file: only refusals will make pairs")
    table = result.table if result else empty_table()
    stats = result.stats if result else {}
    log.info("perturbations: %d rows; %s", len(table), stats)
    write_parquet(table, smk.output[0], stage="perturb", config=cfg, seed=seed, extra={"stats": stats})
