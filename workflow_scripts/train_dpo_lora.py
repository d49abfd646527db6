"""Snakemake entry: DPO + LoRA unlearning of one model (rule train_dpo_lora)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.entry).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.entry import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("train_dpo_lora", smk.log) as log:
    from unlearning.models import Manifest
    from unlearning.parquet_io import read_parquet, write_parquet
    from unlearning.prompting import PromptStyle
    from unlearning.training import train

    cfg = smk.params.cfg
    qa = read_parquet(smk.input.qa)
    splits = cfg["retain_split"] if isinstance(cfg["retain_split"], list) else [cfg["retain_split"]]
    retain = qa[qa["split"].isin(splits)] if cfg.get("retain_weight") else None
    result = train(
        Manifest.load(f"{smk.input.model}/model.json"),
        read_parquet(smk.input.pairs),
        cfg,
        style=PromptStyle(**smk.params.style),
        adapter_dir=smk.output.adapter,
        checkpoint_dir=smk.params.checkpoints,
        retain=retain,
        requested_gpu=smk.resources.gpu > 0,
    )
    final = result.log.iloc[-1]
    log.info(
        "trained %d steps in %.1f s on %s (resumed from step %d); final loss %.4f, margin %.4f",
        int(final["step"]),
        result.seconds,
        result.device,
        result.resumed_from_step,
        final["loss"],
        final["rewards_margins"],
    )
    extra = {
        "device": result.device,
        "resumed_from_step": result.resumed_from_step,
        "seconds": result.seconds,
        "truncated_prompts": result.truncated_prompts,
    }
    write_parquet(
        result.log,
        smk.output.log,
        stage="train_dpo_lora",
        config={"train": cfg, "style": smk.params.style},
        seed=cfg["seed"],
        extra=extra,
    )
