"""Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From Catastrophic
Collapse to Effective Unlearning", eq. 3; open-unlearning ``trainer/unlearn/npo.py``).

DPO with the forget answer as the only, dispreferred, response. With ``d = log pi_theta(y|x) - log pi_ref(y|x)``
summed over the answer tokens (reference = the model with its adapter disabled, precomputed once):

    L = -(2 / beta) * log sigmoid(-beta * d)        (mean over the batch) + retain_weight * retain term

Default beta = 0.1 (open-unlearning's NPO and RWKU's). As beta -> 0 the loss tends to gradient ascent on the
summed log-likelihood; unlike ascent it is bounded, which is what keeps it from collapsing. Logged: ``log_ratio``,
the batch mean of ``d`` (negative once the model has moved away from the forget answers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .base import Method, sequence_logprob


@dataclass(frozen=True)
class NPOSettings:
    beta: float = 0.1


def npo_loss(log_ratio: torch.Tensor, beta: float) -> torch.Tensor:
    """``-(2 / beta) * log sigmoid(-beta * d)`` averaged over the batch, from log-ratios ``d`` ``[batch]``."""
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


@register
class NPO(Method):
    name = "npo"
    Settings = NPOSettings
    reference_sequences = ("forget",)

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        logp, _ = sequence_logprob(model, batch["forget"])
        log_ratio = logp - batch["ref_forget"]
        return npo_loss(log_ratio, self.settings.beta), {"log_ratio": log_ratio.detach().mean()}
