"""Quantization attack (Zhang et al., ICLR 2025, "Does your LLM truly unlearn? An embarrassingly simple approach"):
the variant as a user deploys it, exported to GGUF in the source file's tensor types (or ``gguf_type``) by the
export stage, and read back as the workflow's GGUF import reads it (transformers' dequantization and tensor
processor; :func:`unlearning.export.gguf_file.load_gguf_weights`).

A LoRA change smaller than half a quantization step rounds back onto the base weight; on a model that came as a
quantized GGUF, whose weights already sit on the grid, most of an unlearning's change can vanish. The score file's
metadata gives how many of the changed weights snapped back (from the export).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..core.errors import InputError
from ..export.gguf_file import check_writable, gguf_name, load_gguf_weights
from ..models.checkpoints import load_model
from ..models.devices import pick_device, pick_dtype
from . import register
from .base import Attack, AttackInputs


@register
class Quantization(Attack):
    kind = "quantization"
    on_base = False  # the base model exported unchanged is the source file (a round-trip test checks it)
    needs_export = True
    defaults = {"gguf_type": None}

    @classmethod
    def settings(cls, spec, where, config):  # noqa: ANN001, ANN206
        out = super().settings(spec, where, config)
        check_writable(out["gguf_type"], f"{where}.gguf_type")
        out["gguf_type"] = out["gguf_type"] or (config.get("export") or {}).get("gguf_type")
        not_gguf = [m for m, spec in config["models"].items() if "gguf" not in spec]
        if not_gguf:
            raise InputError(
                f"{where}: model {not_gguf[0]} was not imported from a GGUF file (no `gguf:` in models.{not_gguf[0]}), "
                "so it has no GGUF export to quantize to; remove the attack or give the model as `gguf:`"
            )
        return out

    def attacked(self, inputs: AttackInputs):  # noqa: ANN201
        file = inputs.export_dir / gguf_name(inputs.settings["gguf_type"])
        if not file.is_file():
            raise InputError(f"{file}: the export stage wrote no such GGUF file (expected for {inputs.variant})")
        # the base model's architecture with the export's weights, dequantized and mapped as transformers' GGUF
        # import does (import_model's; a test checks they agree exactly)
        model, tokenizer = load_model(inputs.manifest, device=torch.device("cpu"), dtype=torch.float32)
        load_gguf_weights(model, file)
        device = pick_device(requested_gpu=inputs.requested_gpu)
        model.to(device=device, dtype=pick_dtype(device))
        stats: dict[str, Any] = json.loads((inputs.export_dir / "export.json").read_text())
        return model, tokenizer, inputs.questions, {"gguf_file": file.name, "export": stats.get(file.name, {})}
