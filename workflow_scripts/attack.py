"""Snakemake entry: one attack on one variant, scored on the held-out known facts (rule attack)."""

import sys
from pathlib import Path

# This checkout's library, before any other copy an editable install put on sys.path (see unlearning.core.job).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlearning.core.job import stage  # noqa: E402

smk = snakemake  # noqa: F821 (injected by Snakemake)

with stage("attack", smk.log) as log:
    import tempfile
    import time

    from unlearning.attacks import AttackInputs, get_attack
    from unlearning.attacks.scoring import held_out_known, score_attacked
    from unlearning.core.parquet_io import read_parquet, write_parquet
    from unlearning.inference.prompting import PromptStyle
    from unlearning.models.checkpoints import Manifest
    from unlearning.scoring.field_scores import wrong_answers

    wc, settings = smk.wildcards, dict(smk.params.settings)
    where = f"attack {wc.attack} on {wc.model}/{wc.variant}"
    qa = read_parquet(smk.input.qa)
    questions = held_out_known(qa, read_parquet(smk.input.known), where)
    attack = get_attack(settings["attack"])()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"attack-{wc.attack}-") as scratch:
        inputs = AttackInputs(
            model=wc.model,
            variant=wc.variant,
            manifest=Manifest.load(f"{smk.input.model}/model.json"),
            adapter=smk.input.get("adapter"),
            export_dir=Path(smk.input.export) if hasattr(smk.input, "export") else None,
            qa=qa,
            questions=questions,
            style=PromptStyle(**smk.params.style),
            settings=settings,
            train=smk.params.train,
            seed=smk.params.seed,
            scratch=Path(scratch),
            requested_gpu=smk.resources.gpu > 0,
        )
        model, tokenizer, asked, meta = attack.attacked(inputs)
        scores = score_attacked(
            model,
            tokenizer,
            asked,
            inputs.style,
            generate=smk.params.generate,
            batch_size=smk.params.score["batch_size"],
            wrong=wrong_answers(read_parquet(smk.input.perturbations)),
        )
    meta["attack_seconds"] = round(time.monotonic() - start, 1)
    log.info("%s: %d held-out known questions scored in %.0f s", where, len(scores), meta["attack_seconds"])
    write_parquet(
        scores,
        smk.output[0],
        stage="attack",
        config={"attack": settings, "generate": smk.params.generate, "style": smk.params.style},
        seed=smk.params.seed,
        extra=meta,
    )
