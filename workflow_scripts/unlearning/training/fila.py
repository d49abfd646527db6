"""FILA: the Fisher-weighted LoRA initialisation of LoKU (Cha et al., ICLR 2025, "Towards Robust and
Parameter-Efficient Knowledge Unlearning for LLMs", section 4.2; reference code csm9493/efficient-llm-unlearning,
``TOFU/measure_importance.py`` and ``TOFU/forget.py``). ``lora: {init: fila}`` in an entry selects it.

1. **Fisher diagonals.** With the adapter off, the squared gradient of the mean answer NLL with respect to every
   adapted weight ``W [out, in]``, weighted by the batch's answer-token count, summed over the batches and divided
   by the total count: ``F_forget`` on the forget_train QA, ``F_retain`` on the retain term's QA.
2. **Importance.** ``I = F_forget / (1e-5 + F_retain)`` elementwise: large where a weight matters to the forget
   facts and not to the retained ones. Row weights ``w = sqrt(sum_in I)`` ``[out]``.
3. **Weighted low-rank SVD.** ``diag(w) W = U S V^T``; with ``s`` the LoRA scale (alpha / r) and the top ``r``
   singular triplets, ``A = (V_r sqrt(S_r / s))^T`` ``[r, in]`` and ``B = diag(1 / (w + 1e-5)) U_r sqrt(S_r / s)``
   ``[out, r]``, so that ``s B A`` is the rank-``r`` approximation of ``W`` that is best where ``w`` is large.
4. **The model is unchanged at step 0.** LoKU subtracts ``s B A`` from the base weight. That would also change the
   model with the adapter off, which is the reference every method reads (NPO's ``pi_ref``, the KL retain term),
   and the saved adapter would no longer apply to the original weights. Here the base weight stays as it is and
   the adapter has rank ``2r``: ``A' = [A; A]``, ``B' = [B, -B]``, with the second half frozen (its gradients are
   zeroed, and the optimizer has no weight decay), so the adapter computes ``s (B_t A_t - B A)``: zero at step 0,
   the same training dynamics as LoKU's, and a plain PEFT adapter of rank ``2r`` (``alpha`` doubled, same scale)
   that applies to the original weights. PEFT saves PiSSA-initialised adapters the same way
   (``path_initial_model_for_weight_conversion``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from peft import LoraConfig
from tqdm.auto import tqdm

from ..core.errors import InputError
from .methods.base import answer_nll

log = logging.getLogger(__name__)
FISHER_EPS = 1e-5  # LoKU's: keeps the ratio finite where the retain Fisher is zero, and 1 / w where w is zero


@dataclass
class FisherPass:
    """What the Fisher pass cost: seconds, and the answer tokens it ran on forget and retain data."""

    seconds: float
    forget_tokens: int
    retain_tokens: int


def selected(cfg: Mapping[str, object]) -> bool:
    """Whether an entry's resolved settings ask for FILA: a LoRA adapter with ``lora.init: fila``."""
    return cfg.get("adapter", "lora") == "lora" and cfg["lora"].get("init", "default") == "fila"


def doubled_rank(config: LoraConfig) -> LoraConfig:
    """The LoRA config of a FILA adapter: rank and alpha doubled (the same scale alpha / r), see the module doc."""
    config.r, config.lora_alpha = 2 * config.r, 2 * config.lora_alpha
    return config


def _lora_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every PEFT LoRA layer with its ``default`` adapter, by module name."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }


def fisher_diagonals(
    model: torch.nn.Module, layers: Mapping[str, torch.nn.Module], batches: Iterable[Mapping[str, torch.Tensor]],
    desc: str,
) -> tuple[dict[str, torch.Tensor], int]:  # fmt: skip
    """Token-weighted mean squared gradient of the answer NLL for each layer's base weight, adapter off.

    ``batches`` are batches of sequences (``input_ids``, ``attention_mask``, ``labels`` ``[n, length]``). Returns
    ``{layer name: [out, in] float32}`` divided by the token count, and the count.
    """
    weights = {name: layer.base_layer.weight for name, layer in layers.items()}
    sums = {name: torch.zeros(w.shape, dtype=torch.float32, device=w.device) for name, w in weights.items()}
    before = {name: w.requires_grad for name, w in weights.items()}
    tokens = 0
    try:
        for w in weights.values():
            w.requires_grad_(True)
        with model.disable_adapter():
            for batch in tqdm(list(batches), desc=f"FILA Fisher ({desc})", leave=False):
                count = int((batch["labels"] != -100).sum())
                answer_nll(model, batch).backward()
                for name, w in weights.items():
                    if w.grad is not None:
                        sums[name] += w.grad.float().pow(2) * count
                    w.grad = None
                tokens += count
    finally:
        for name, w in weights.items():
            w.requires_grad_(before[name])
            w.grad = None
    if not tokens:
        raise InputError(f"FILA: the {desc} data has no answer tokens to measure the Fisher information on")
    return {name: s / tokens for name, s in sums.items()}, tokens


def _freeze_second_half(a: torch.nn.Parameter, b: torch.nn.Parameter, r: int) -> None:
    """Zero the gradients of A's last ``r`` rows and B's last ``r`` columns: the fixed ``-s B0 A0`` part."""
    a.register_hook(lambda g: torch.cat([g[:r], torch.zeros_like(g[r:])], dim=0))
    b.register_hook(lambda g: torch.cat([g[:, :r], torch.zeros_like(g[:, r:])], dim=1))


@torch.no_grad()
def _set_layer(layer: torch.nn.Module, importance: torch.Tensor) -> None:
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    r = a.shape[0] // 2
    scale = float(layer.scaling["default"])
    w = layer.base_layer.weight.float()
    rows = importance.sum(dim=1).sqrt()
    u, s, vh = torch.linalg.svd(rows[:, None] * w, full_matrices=False)
    root = (s[:r] / scale).sqrt()
    lora_a = vh[:r] * root[:, None]
    lora_b = (1.0 / (rows + FISHER_EPS))[:, None] * (u[:, :r] * root[None, :])
    a.copy_(torch.cat([lora_a, lora_a]).to(a.dtype))
    b.copy_(torch.cat([lora_b, -lora_b], dim=1).to(b.dtype))


def initialise(
    model: torch.nn.Module,
    forget_batches: Iterable[Mapping[str, torch.Tensor]],
    retain_batches: Iterable[Mapping[str, torch.Tensor]],
) -> FisherPass:
    """Set every LoRA layer of ``model`` (a PEFT model whose adapter has rank ``2r``, :func:`doubled_rank`) by FILA.

    Raises :class:`InputError` naming the layer when its forget Fisher is zero everywhere (no gradient from the
    forget answers reaches it, e.g. a layer after the last one that matters): its importance, and so its A and B,
    would be zero or undefined, never a useful start.
    """
    start = time.monotonic()
    layers = _lora_layers(model)
    if not layers:
        raise InputError("FILA: the model has no LoRA layers to initialise (check lora.target_modules)")
    forget, forget_tokens = fisher_diagonals(model, layers, forget_batches, "forget")
    retain, retain_tokens = fisher_diagonals(model, layers, retain_batches, "retain")
    for name, layer in layers.items():
        if not bool(forget[name].any()):
            raise InputError(
                f"FILA: the forget data's Fisher information is zero everywhere in layer {name}: no gradient of the "
                "forget answers reaches it, so its importance is undefined; leave it out of lora.target_modules / "
                "lora.layers, or use lora.init: default"
            )
        importance = forget[name] / (FISHER_EPS + retain[name])
        _set_layer(layer, importance)
        r = layer.lora_A["default"].weight.shape[0] // 2
        _freeze_second_half(layer.lora_A["default"].weight, layer.lora_B["default"].weight, r)
    seconds = time.monotonic() - start
    log.info(
        "FILA: initialised %d LoRA layers from the Fisher information of %d forget and %d retain answer tokens "
        "in %.1f s", len(layers), forget_tokens, retain_tokens, seconds,
    )  # fmt: skip
    return FisherPass(seconds, forget_tokens, retain_tokens)
