"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, "The WMDP Benchmark", section 5;
open-unlearning ``trainer/unlearn/rmu.py``), with LoRA.

At one decoder layer ``l``, the hidden states of forget answer tokens are steered towards a fixed random
direction ``c * u`` (``u`` uniform in [0, 1)^hidden, normalised, seeded), while those of retain answer tokens are
kept where the reference (adapter disabled) puts them:

    L = mean_tokens mean_hidden (h_theta,l(forget) - c * u)^2
        + retain_weight * mean_tokens mean_hidden (h_theta,l(retain) - h_ref,l(retain))^2

so RMU's retain term is this activation match, not the shared NLL/KL (``retain_kind`` does not apply). The
steering coefficient must match the scale of the layer's activations (WMDP used 6.5 for Zephyr-7B and 300 for
Mixtral); by default it is ``adaptive_scale`` times the mean norm of the reference's forget activations at that
layer (Dang et al. 2025, "On Effects of Steering Latent Representation for Large Language Model Unlearning",
adaptive RMU), measured once before training; ``steering_coeff`` sets it outright. ``layer`` defaults to a quarter
of the depth (WMDP: layer 7 of 32). Only layers up to ``l`` influence the loss, so the forward pass stops there,
and LoRA must adapt at least one of them: the run fails before training if it does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ...inference.packed_rows import backbone_and_head
from ..layers import decoder_layers, layer_index
from . import register
from .base import Method


@dataclass(frozen=True)
class RMUSettings:
    layer: int | None = None  # decoder layer whose output is steered (negative: from the last); None = depth / 4
    steering_coeff: float | None = None  # |c * u|'s scale; None = adaptive_scale x the forget activations' norm
    adaptive_scale: float = 5.0


class _Reached(Exception):
    """Raised by the layer hook: nothing after the steered layer is needed."""


def layer_output(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Hidden states ``[batch, length, hidden]`` after decoder layer ``layer``; the forward stops there."""
    captured: dict[str, torch.Tensor] = {}

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        captured["h"] = output[0] if isinstance(output, tuple) else output
        raise _Reached

    decoder, _ = backbone_and_head(model)
    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    except _Reached:
        pass
    finally:
        handle.remove()
    return captured["h"]


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens (``labels != -100``) of the mean squared difference over the hidden dimension."""
    keep = labels != -100
    if target.dim() == hidden.dim():
        target = target[keep]
    return (hidden[keep].float() - target.float()).pow(2).mean()


@register
class RMU(Method):
    name = "rmu"
    Settings = RMUSettings

    def prepare(self, model: torch.nn.Module, entry: str, forget_batches: Iterable[Mapping[str, Any]] = ()) -> None:
        layers = decoder_layers(model)
        layer = layer_index(model, self.settings.layer) if self.settings.layer is not None else len(layers) // 4
        if not any("lora_A" in name for block in layers[: layer + 1] for name, _ in block.named_modules()):
            raise ValueError(
                f"unlearn.{entry}: method rmu steers the output of decoder layer {layer}, but LoRA adapts none of "
                f"layers 0..{layer} (check lora.target_modules and lora.layers): only those layers can move it"
            )
        self.layer = layer
        hidden = model.get_base_model().config.get_text_config().hidden_size
        u = torch.rand(hidden, generator=torch.Generator().manual_seed(self.seed))
        u = u / u.norm()
        coeff = self.settings.steering_coeff
        if coeff is None:
            norms, count = 0.0, 0
            with torch.no_grad(), model.disable_adapter():
                for batch in forget_batches:
                    forget = batch["forget"]
                    h = layer_output(model, forget, layer)[forget["labels"] != -100].float()
                    norms += float(h.norm(dim=-1).sum())
                    count += h.shape[0]
            if not count:
                raise ValueError(f"unlearn.{entry}: rmu found no forget answer tokens to scale its steering by")
            coeff = self.settings.adaptive_scale * norms / count
        self.coeff = float(coeff)
        self.control = coeff * u

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        forget = batch["forget"]
        h = layer_output(model, forget, self.layer)
        return masked_mse(h, self.control.to(h.device), forget["labels"]), {"steering_coeff": torch.tensor(self.coeff)}

    def retain_loss(self, model, batch):  # noqa: ANN001, ANN201
        with torch.no_grad(), model.disable_adapter():
            ref = layer_output(model, batch, self.layer)
        return masked_mse(layer_output(model, batch, self.layer), ref, batch["labels"])
