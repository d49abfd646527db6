"""``lora.target_modules`` as PEFT's ``target_modules``: ``all-linear``, a list of module names, or a preset.

The presets name a part of every decoder layer: ``attention`` the linear layers inside its attention block (the
layer's ``self_attn``: q/k/v/o for Llama and Gemma 3), ``mlp`` those inside its MLP (the layer's ``mlp``:
gate/up/down). They are found on the model itself, by walking :func:`~unlearning.training.layers.decoder_layers`,
so a model whose projections are named otherwise (Phi-3's fused ``qkv_proj``, ``gate_up_proj``) gets its own.
Without importing transformers, as :mod:`.layers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.errors import InputError
from .layers import _unwrapped, decoder_layers

#: preset -> the attribute of a decoder layer that holds its modules
PRESETS = {"attention": "self_attn", "mlp": "mlp"}
ALLOWED = ("all-linear", *PRESETS)


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def preset_modules(model: torch.nn.Module, preset: str) -> dict[str, int]:
    """Full name -> decoder layer index of every ``nn.Linear`` inside the ``preset``'s block of every decoder layer,
    in layer order; the names are the unwrapped model's ``named_modules()`` ones, which PEFT matches against.
    Raises InputError for an unknown preset, and naming the model's class when the preset matches no module."""
    if preset not in PRESETS:
        raise InputError(f"lora.target_modules: unknown preset {preset!r} (allowed: {', '.join(ALLOWED)})")
    base, part = _unwrapped(model), PRESETS[preset]
    blocks = decoder_layers(base)
    prefix = next(name for name, module in base.named_modules() if module is blocks)
    found = {}
    for i, layer in enumerate(blocks):
        block = getattr(layer, part, None)
        if isinstance(block, torch.nn.Module):
            found |= {
                f"{prefix}.{i}.{part}.{name}": i for name, m in block.named_modules() if isinstance(m, torch.nn.Linear)
            }
    if not found:
        raise InputError(
            f"lora.target_modules: {preset!r} matches no module of {type(base).__name__}: none of its decoder layers "
            f"has an nn.Linear inside a `{part}` block; list the module names instead"
        )
    return found


def resolve_target_modules(
    model: torch.nn.Module, target_modules: str | Sequence[str], layers: Sequence[int] | None = None
) -> str | list[str]:
    """PEFT's ``target_modules`` for ``lora.target_modules`` and ``lora.layers`` (PEFT's ``layers_to_transform``).

    * a list: as it is;
    * ``all-linear``: as it is without ``layers``; with ``layers``, where PEFT needs names, the short names of every
      linear module inside the decoder layers;
    * ``attention``/``mlp``: the short names of the preset's modules (``q_proj``, ...) when those pick out exactly
      them in the whole model; else (another module of the same name, e.g. a vision tower's ``q_proj``) the full
      name of each, only those of ``layers`` (PEFT takes a full name as it is, without ``layers_to_transform``).
    """
    if not isinstance(target_modules, str):
        return list(target_modules)
    if target_modules == "all-linear":
        if layers is None:
            return target_modules
        blocks = decoder_layers(model)
        return sorted({_leaf(n) for n, m in blocks.named_modules() if isinstance(m, torch.nn.Linear)})
    wanted = preset_modules(model, target_modules)
    short = {_leaf(n) for n in wanted}
    if all(n in wanted for n, _ in _unwrapped(model).named_modules() if _leaf(n) in short):
        return sorted(short)
    return [n for n, i in wanted.items() if layers is None or i in layers]
