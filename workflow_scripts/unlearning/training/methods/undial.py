"""UNDIAL: self-distillation with adjusted logits (Dong et al. 2025, "UNDIAL: Self-Distillation with Adjusted
Logits for Robust Unlearning in Large Language Models", NAACL; open-unlearning ``compute_undial_loss``).

The student (the model with its adapter) is trained towards the reference's (adapter disabled) distribution at
each answer position, with the logit of the true next token lowered by ``beta``:

    target_t = softmax(z_ref,t - beta * onehot(y_t)),   L = mean_t CE(target_t, softmax(z_theta,t)) + retain term

Only the answer positions are distilled (open-unlearning averages over every position of the sequence, where the
unchanged prompt positions dilute the loss). Default beta = 10 (the paper's range is 3 to 30; it was published
with LoRA r = 8, alpha = 16, learning rate 1e-4). The reference logits need a forward with the adapter disabled at
every step. Logged: ``true_token_prob``, the student's mean probability of the true answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...inference.packed_rows import answer_logits
from . import register
from .base import Method


@dataclass(frozen=True)
class UNDIALSettings:
    beta: float = 10.0  # how far the true token's logit is lowered in the distillation target


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean cross-entropy of the student ``logits [n, vocab]`` against softmax(``ref_logits`` with the ``targets``
    logit lowered by ``beta``), over the ``n`` answer positions."""
    adjusted = ref_logits.detach().scatter_add(
        1, targets[:, None], torch.full_like(targets[:, None], -beta, dtype=ref_logits.dtype)
    )
    return F.cross_entropy(logits, F.softmax(adjusted, dim=-1))


@register
class UNDIAL(Method):
    name = "undial"
    Settings = UNDIALSettings

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        forget = batch["forget"]
        with torch.no_grad(), model.disable_adapter():
            ref_logits, targets, _ = answer_logits(model, forget)
        logits, _, _ = answer_logits(model, forget)
        loss = undial_loss(logits, ref_logits, targets, self.settings.beta)
        true_prob = F.softmax(logits.detach(), dim=-1).gather(1, targets[:, None]).mean()
        return loss, {"true_token_prob": true_prob}
