"""Relearning attack on Deeb & Roger's split ("Do unlearning methods remove information from language model
weights?", 2024; also Hu et al., ICLR 2025, "Jogging the memory of unlearned LLMs"): fine-tune the unlearned model
briefly on some facts, then ask the others.

The variant (merged into plain weights by the export stage) gets a fresh LoRA adapter trained with plain gradient
descent on the answers of ``data`` (forget_train by default) under a fixed budget: r 8, alpha 16, lr 1e-4, 3 epochs,
batch 8. It is then asked the held-out known facts, which the attack never saw. The same attack runs on the base
model, and an entry with ``data: general_train`` is the control (Feng et al. 2025): if fine-tuning on unrelated
persons brings the forget facts back as much, the recovery is the model relearning to answer, not the forgotten
facts resurfacing.
"""

from __future__ import annotations

import time
from typing import Any

from ..core.errors import InputError
from ..models.checkpoints import Manifest, load_model
from ..models.devices import pick_device
from . import register
from .base import Attack, AttackInputs
from .scoring import training_facts

TRAIN_SPLITS = ("forget_train", "retain_train", "general_train")


@register
class Relearning(Attack):
    kind = "relearning"
    needs_export = True
    defaults = {"data": "forget_train", "learning_rate": 1.0e-4, "epochs": 3, "batch_size": 8, "r": 8, "alpha": 16}

    @classmethod
    def settings(cls, spec, where, config):  # noqa: ANN001, ANN206
        out = super().settings(spec, where, config)
        if out["data"] not in TRAIN_SPLITS:
            raise InputError(
                f"{where}.data: {out['data']!r} is not a training split; use one of {', '.join(TRAIN_SPLITS)}"
            )
        return out

    def attacked(self, inputs: AttackInputs):  # noqa: ANN201
        from ..training.engine import train

        s = inputs.settings
        facts = training_facts(inputs.qa, s["data"])
        if facts.empty:
            raise InputError(f"attack {inputs.variant}: the split {s['data']} has no questions to relearn from")
        start = inputs.manifest
        if inputs.variant != "base":
            start = Manifest(name=inputs.model, path=str(inputs.export_dir / "merged"), source="local")
        cfg: dict[str, Any] = {
            **inputs.train,
            "method": "grad_descent",
            "settings": {},
            "seed": inputs.seed,
            "adapter": "lora",
            "lora": {"r": s["r"], "alpha": s["alpha"], "dropout": 0.0, "target_modules": "all-linear", "layers": None},
            "learning_rate": s["learning_rate"],
            "epochs": s["epochs"],
            "batch_size": s["batch_size"],
            "grad_accum": 1,
            "retain_weight": 0.0,
            "save_steps": 10**9,
            "gradient_checkpointing": False,
        }
        adapter = inputs.scratch / "adapter"
        begin = time.monotonic()
        result = train(
            start,
            cfg,
            forget=facts,
            style=inputs.style,
            adapter_dir=adapter,
            checkpoint_dir=inputs.scratch / "checkpoints",
            entry=f"attack relearning on {inputs.variant}",
            requested_gpu=inputs.requested_gpu,
        )
        model, tokenizer = load_model(start, adapter=adapter, device=pick_device(requested_gpu=inputs.requested_gpu))
        meta = {
            "relearn_split": s["data"],
            "relearn_facts": len(facts),
            "relearn_steps": int(result.log["step"].max()) if len(result.log) else 0,
            "relearn_seconds": round(time.monotonic() - begin, 1),
            "relearn_final_loss": float(result.log["loss"].iloc[-1]) if len(result.log) else float("nan"),
        }
        return model, tokenizer, inputs.questions, meta
