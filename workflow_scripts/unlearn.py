"""Snakemake entry: unlearning of one model with one unlearn: entry, LoRA or full fine-tuning (rule unlearn)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("unlearn", smk.log) as log:
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.corpus.training_rows import training_rows
    from unlearning.data.qa_table import trainable
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.checkpoints import Manifest
    from unlearning.training import fila  # its Fisher pass reads the retain questions too
    from unlearning.training.engine import train

    cfg = smk.params.cfg
    qa = trainable(read_parquet(smk.input.qa))  # probes are scored, never trained on
    corpus = read_parquet(path) if (path := smk.input.get("corpus")) else None
    entry = f"unlearn.{smk.wildcards.method}"
    forget = training_rows(qa, corpus, cfg.get("forget_data", "qa"), ["forget_train"], f"{entry}.forget_data")
    retain = None
    if cfg["retain_weight"] or fila.selected(cfg):
        retain = training_rows(qa, corpus, cfg.get("retain_data", "qa"), cfg["retain_split"], f"{entry}.retain_data")
    log.info("training rows: forget %s; retain %s", forget["source"].value_counts().to_dict(),
             retain["source"].value_counts().to_dict() if retain is not None else "none")  # fmt: skip
    result = train(
        Manifest.load(f"{smk.input.model}/model.json"),
        cfg,
        forget=forget,
        pairs=read_parquet(path) if (path := smk.input.get("pairs")) else None,
        retain=retain,
        style=PromptStyle(**smk.params.style),
        adapter_dir=smk.output.adapter,
        checkpoint_dir=smk.params.checkpoints,
        entry=smk.wildcards.method,
        requested_gpu=smk.resources.gpu > 0,
    )
    final = result.log.iloc[-1]
    log.info(
        "%s: trained %d steps in %.1f s on %s (resumed from step %d); final loss %.4f (forget %.4f, retain %.4f)",
        cfg["method"],
        int(final["step"]),
        result.seconds,
        result.device,
        result.resumed_from_step,
        final["loss"],
        final["forget_loss"],
        final["retain_loss"],
    )
    extra = {
        "device": result.device,
        "resumed_from_step": result.resumed_from_step,
        "seconds": result.seconds,
        "truncated_prompts": result.truncated_prompts,
        "fisher_seconds": result.fisher_seconds,
    }
    write_parquet(
        result.log,
        smk.output.log,
        stage="unlearn",
        config={"unlearn": cfg, "style": smk.params.style},
        seed=cfg["seed"],
        extra=extra,
    )
